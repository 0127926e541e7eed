"""The AsyncAPI 3.0 document of the topics: each service's `<service>.events` and the consumers'
`<topic>.dlq`, every message built from the published JSON Schemas (shared/published.py), with
the CloudEvents headers the relay sets (shared/outbox.py) and what a consumer checks of them.

`python -m shared.asyncapi --schemas` writes the schemas of the events every service publishes
(shared/schemas/); `python -m shared.asyncapi FILE` writes the document for the default
settings (tools/node/validate-asyncapi.mjs checks it).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from shared import contracts, published
from shared.settings import SERVICES, Settings

VERSION = "1.0.0"
_BINDING = "0.5.0"  # the Kafka bindings' version
_FILE = re.compile(r"^(?P<type>[a-z0-9][a-z0-9.-]*)\.v(?P<version>[0-9]+)\.json$")

HEADERS: dict[str, dict[str, Any]] = {
    "ce_specversion": {"const": "1.0", "description": "CloudEvents version"},
    "ce_id": {"format": "uuid", "description": "the event id: consumers apply it once"},
    "ce_source": {
        "pattern": "^/twinaid/[a-z]+$",
        "description": "`/twinaid/<service>`; a consumer takes the upstream from the topic, never"
        " from a header",
    },
    "ce_type": {"description": "the event type, e.g. `registry.organisation-registered`"},
    "ce_time": {"format": "date-time", "description": "when it occurred (the client's time)"},
    "ce_subject": {"description": "the stream id; also the message key"},
    "ce_dataschema": {
        "pattern": "^urn:twinaid:schema:",
        "description": "`$id` of the payload's JSON Schema, `urn:twinaid:schema:<type>.v<N>`;"
        " every service serves it at `/schemas/<type>.v<N>.json`. Absent on messages"
        " published before it was set",
    },
    "ce_streamtype": {"description": "the stream's type, e.g. `organisation`"},
    "ce_streamversion": {"pattern": "^[0-9]+$", "description": "version within its stream"},
    "ce_position": {"pattern": "^[1-9][0-9]*$", "description": "position in the service's log"},
    "ce_schemaversion": {"pattern": "^[1-9][0-9]*$", "description": "the payload's version"},
    "ce_recordedat": {"format": "date-time", "description": "when the log recorded it"},
    "ce_chainhash": {
        "pattern": "^[0-9a-f]{64}$",
        "description": "hex SHA-256 chain hash at this position: sha256(previous hash || sha256("
        "RFC 8785 text of the event: the payload, these attributes and the metadata))",
    },
    "ce_correlationid": {"description": "the correlation id of the request that caused it"},
    "ce_causationid": {"description": "the id of the event that caused it, if one did"},
    "ce_organisation": {"description": "the organisation that acted"},
    "ce_actor": {"description": "the API key id or process that acted"},
    "ce_idempotencykey": {
        # an older event keeps the raw key (any printable text), and older relays sent an
        # absent attribute as an empty string: a replay of those must still validate
        "maxLength": 200,
        "pattern": "^[^\\x00-\\x1f\\x7f]*$",
        "description": "`sha256:` and the hex SHA-256 of the organisation, a newline and the"
        " caller's Idempotency-Key, when the write had one: the key itself never reaches the"
        " broker. An event recorded before this rule keeps the caller's raw key (1 to 200"
        " printable characters), so a replay of the log still carries it; relays before it"
        " sent an empty string when the write had none",
    },
    "ce_signature": {
        "contentEncoding": "base64",
        "description": "Ed25519 signature by the service's key of the RFC 8785 text of"
        " {service, position, hash, lane}, lane = sha256(ce_laneprev || chain hash): one valid"
        " signature vouches for the run of a partition's records whose lanes follow each other",
    },
    "ce_signingkey": {
        "contentEncoding": "base64",
        "description": "the public key that signed (a hint: verify with the keys pinned for the"
        " service, TRUSTED_KEYS, and the key changes they announced)",
    },
    "ce_prevhash": {"pattern": "^[0-9a-f]{64}$", "description": "chain hash at position - 1"},
    "ce_laneprev": {
        "pattern": "^[0-9a-f]{64}$",
        "description": "the partition's lane before this record",
    },
    "ce_redaction": {
        "contentMediaType": "application/json",
        "description": "only on an event rewritten in place after it was sealed (its personal data"
        " sealed, shared/privacy_migration.py): {before_sha256, after_sha256, public_key,"
        " signature}, the SHA-256 of its canonical body as sealed (which ce_chainhash links) and"
        " as published now, signed by the service's key (RFC 8785 text of {service, position,"
        " event_id, before_sha256, after_sha256}); verify with the pinned keys",
    },
    "content-type": {"const": "application/json", "description": "the payload's media type"},
}
# attributes every message carries; the others are omitted when absent (never empty)
REQUIRED_HEADERS = (
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "ce_subject",
    "ce_streamtype",
    "ce_streamversion",
    "ce_position",
    "ce_schemaversion",
    "ce_recordedat",
    "ce_chainhash",
    "ce_signature",
    "ce_signingkey",
    "ce_prevhash",
    "ce_laneprev",
    "content-type",
)


def schemas() -> dict[str, tuple[str, int, dict[str, Any]]]:
    """{message name (`<type>.v<N>`): (owner, version, schema)} of every schema file."""
    found: dict[str, tuple[str, int, dict[str, Any]]] = {}
    for owner, folder in published.folders().items():
        for path in sorted(folder.glob("*.json")):
            match = _FILE.match(path.name)
            if match is None:
                continue
            name = path.name.removesuffix(".json")
            found[name] = (owner, int(match["version"]), json.loads(path.read_text()))
    return found


def _hoisted(name: str, schema: dict[str, Any], into: dict[str, Any]) -> dict[str, Any]:
    """The schema as an AsyncAPI (draft 7) schema: its `$defs` moved to components as
    `<name>.<def>` and references rewritten to them; `$schema` and `$id` left out (kept in
    `x-schema-id`), so references resolve within the document."""
    body = copy.deepcopy(schema)
    defs = body.pop("$defs", {})
    identifier = body.pop("$id", None)
    body.pop("$schema", None)

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (
                    f"#/components/schemas/{name}.{v.removeprefix('#/$defs/')}"
                    if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
                    else rewrite(v)
                )
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    for def_name, sub in defs.items():
        into[f"{name}.{def_name}"] = rewrite(sub)
    out: dict[str, Any] = rewrite(body)
    if identifier is not None:
        out["x-schema-id"] = identifier
    return out


def _headers(event_type: str | None, identifier: str | None) -> dict[str, Any]:
    properties = {k: {"type": "string", **v} for k, v in HEADERS.items()}
    required = list(REQUIRED_HEADERS)
    if event_type is not None and identifier is not None:
        properties["ce_type"] = {**properties["ce_type"], "const": event_type}
        properties["ce_dataschema"] = {**properties["ce_dataschema"], "const": identifier}
        required.append("ce_dataschema")
    return {"type": "object", "properties": properties, "required": required}


def _pascal(text: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^a-zA-Z0-9]+", text) if part)


def build(
    *,
    topics: Mapping[str, str],
    partitions: int = 3,
    servers: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The document for `topics` ({service: topic name}); `servers` as AsyncAPI servers."""
    found = schemas()
    components_schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    of_owner: dict[str, list[str]] = {}
    for name, (owner, version, schema) in sorted(found.items()):
        event_type = name.rsplit(".v", 1)[0]
        identifier = published.schema_id(event_type, version)
        components_schemas[name] = _hoisted(name, schema, components_schemas)
        messages[name] = {
            "name": event_type,
            "title": event_type,
            "summary": str(schema.get("description", event_type)).replace("`", ""),
            "description": f"Payload schema `{identifier}`, served by every service at"
            f" `{published.schema_path(identifier)}`.",
            "contentType": "application/json",
            "headers": _headers(event_type, identifier),
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "correlationId": {"$ref": "#/components/correlationIds/correlation"},
            "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": _BINDING}},
        }
        of_owner.setdefault(owner, []).append(name)
    messages["deadLetter"] = {
        "name": "dead-letter",
        "title": "A message a consumer could not apply",
        "summary": "The original message, key and headers, plus the reason it was parked",
        "description": "Written by a consumer to `<topic>.dlq` when a message cannot be parsed,"
        " fails a check (signature, chain link, schema, size) or its handler keeps failing."
        " The value is the original's, as received (possibly not JSON).",
        "headers": {
            "type": "object",
            "properties": {
                "twinaid_dlq_reason": {"type": "string", "description": "why it was parked"},
            },
            "required": ["twinaid_dlq_reason"],
        },
        "payload": {"description": "the original message's value, unchanged"},
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for service in [s for s in SERVICES if s in topics]:
        topic = topics[service]
        names = [*of_owner.get(service, ()), *of_owner.get("shared", ())]
        events, dlq = f"{service}Events", f"{service}DeadLetters"
        channels[events] = {
            "address": topic,
            "title": f"{service} events",
            "description": f"Every event of the {service} log, in position order per partition,"
            " keyed by stream id, published by its relay once sealed and signed.",
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
            "bindings": {
                "kafka": {
                    "topic": topic,
                    "partitions": partitions,
                    "topicConfiguration": {"retention.ms": -1},
                    "bindingVersion": _BINDING,
                }
            },
        }
        channels[dlq] = {
            "address": f"{topic}.dlq",
            "title": f"{service} dead letters",
            "description": f"Messages of {topic} a consumer parked, with the reason.",
            "messages": {"deadLetter": {"$ref": "#/components/messages/deadLetter"}},
        }
        operations[f"publish{_pascal(service)}Events"] = {
            "action": "send",
            "title": f"The {service} relay publishes its log",
            "channel": {"$ref": f"#/channels/{events}"},
            "messages": [{"$ref": f"#/channels/{events}/messages/{n}"} for n in names],
        }
        operations[f"consume{_pascal(service)}Events"] = {
            "action": "receive",
            "title": f"Consumers read {topic}",
            "description": "Apply each event once (by `ce_id`), only after its chain link and"
            " signature check against the keys pinned for the service, and its schema.",
            "channel": {"$ref": f"#/channels/{events}"},
            "messages": [{"$ref": f"#/channels/{events}/messages/{n}"} for n in names],
        }
        operations[f"deadLetter{_pascal(service)}Events"] = {
            "action": "send",
            "title": f"Consumers park what they cannot apply from {topic}",
            "channel": {"$ref": f"#/channels/{dlq}"},
            "messages": [{"$ref": f"#/channels/{dlq}/messages/deadLetter"}],
        }
    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "id": "urn:twinaid:asyncapi",
        "info": {
            "title": "twinaid events",
            "version": VERSION,
            "description": _DESCRIPTION,
            "license": {"name": "Proprietary"},
            "tags": [{"name": s, "description": f"the {s} service"} for s in topics],
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": components_schemas,
            "messages": messages,
            "correlationIds": {
                "correlation": {
                    "description": "the request's X-Correlation-ID, carried downstream",
                    "location": "$message.header#/ce_correlationid",
                }
            },
            "securitySchemes": {
                "scram": {
                    "type": "scramSha512",
                    "description": "one principal per service (ACLs: its own topic, what it reads)",
                },
            },
        },
    }
    if servers:
        document["servers"] = {k: dict(v) for k, v in servers.items()}
    return document


def servers_for(settings: Settings) -> dict[str, dict[str, Any]]:
    host = settings.kafka_bootstrap_servers.split(",")[0].strip()
    server: dict[str, Any] = {
        "host": host,
        "protocol": "kafka",
        "description": "the deployment's Kafka-protocol broker",
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        server["security"] = [{"$ref": "#/components/securitySchemes/scram"}]
    return {"broker": server}


def for_settings(settings: Settings) -> dict[str, Any]:
    return build(
        topics={s: settings.topic(s) for s in SERVICES},
        partitions=settings.kafka_partitions,
        servers=servers_for(settings),
    )


_DESCRIPTION = """\
Each service publishes every event of its append-only, hash-chained log to `<service>.events`,
CloudEvents 1.0 in binary mode: the attributes as `ce_*` headers, the payload (the event's
`data`, as its RFC 8785 JSON text) as the value, the stream id as the key. An attribute with no
value is omitted, never sent empty (messages from older relays may carry empty ones: read them
as absent).

Trust: verify before applying. Recompute the chain hash from the message (its payload, the
attributes and the metadata headers), check its link to the previous position, check
`ce_signature` against the keys pinned for the service (never `ce_signingkey` alone), and the
payload against the schema named by `ce_dataschema` (unknown fields allowed). Each log also
carries `audit.chain-checkpoint` (a signed chain head) and `audit.signing-key-changed` (a new
key, signed by the previous one).

Schemas: `urn:twinaid:schema:<type>.v<N>` is served by every service at
`/schemas/<type>.v<N>.json`; the list is at `/schemas`.
"""


def write_shared_schemas() -> list[str]:
    docs = contracts.documents(published.SHARED_SCHEMAS, topic="every service's topic")
    return [str(p) for p in contracts.write(published.SHARED_FOLDER, docs)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.asyncapi", description=__doc__)
    parser.add_argument("file", nargs="?", help="write the document here (default: stdout)")
    parser.add_argument("--schemas", action="store_true", help="write shared/schemas/ only")
    args = parser.parse_args(argv)
    if args.schemas:
        print("\n".join(write_shared_schemas()))
        return 0
    text = json.dumps(for_settings(Settings()), indent=2) + "\n"
    if args.file:
        with open(args.file, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
