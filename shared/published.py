"""The published event contract: where each event type's JSON Schema lives, its `$id`, the
path every service serves it at, and an upstream's schemas as a consumer reads them (types,
required fields, sizes and ranges enforced; unknown fields allowed: a tolerant reader, so
`additionalProperties` is not enforced and an upstream may add fields). Pure.

Schema ids are stable URNs, `urn:twinaid:schema:<event type>.v<N>`, the same in every
deployment (a service's base URL is not): the CloudEvents header `ce_dataschema` of each
published event carries it, and every service serves the document at
`/schemas/<event type>.v<N>.json` (`schema_path`). The schemas of a service's own events are
generated from its models into services/<name>/schemas/ (`twinaid contracts`); those of the
events every service appends (the chain checkpoint, the signing key change) into
shared/schemas/ (`python -m shared.asyncapi --schemas`).

A small validator for the keywords the published schemas use (they are generated from the
upstreams' pydantic models): type, required, properties, items, anyOf, oneOf, allOf, $ref to
#/$defs, enum, const, pattern, minimum, maximum, exclusive bounds, min/max length and items.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shared import keys, privacy_migration, privacy_subjects, signing
from shared.settings import SERVICES

ROOT = Path(__file__).resolve().parents[1]
# the events every service appends to its own log and publishes on its own topic
SHARED_FOLDER = ROOT / "shared" / "schemas"
SCHEMA_URN = "urn:twinaid:schema:"
SCHEMA_ROUTE = "/schemas/"


def schema_id(event_type: str, version: int = 1) -> str:
    """The `$id` of an event type's schema, and its events' `ce_dataschema`."""
    return f"{SCHEMA_URN}{event_type}.v{version}"


def schema_path(identifier: str) -> str:
    """The path, relative to any service's base URL, that serves the schema `identifier`."""
    return SCHEMA_ROUTE + identifier.removeprefix(SCHEMA_URN) + ".json"


def service_folder(service: str) -> Path:
    return ROOT / "services" / service / "schemas"


def folders() -> dict[str, Path]:
    """{owner: folder of its schemas}: each service's own events, then "shared" (the events
    every service publishes)."""
    return {**{s: service_folder(s) for s in SERVICES}, "shared": SHARED_FOLDER}


def schema_files() -> dict[str, Path]:
    """{file name (`<event type>.v<N>.json`): path} of every published schema."""
    return {p.name: p for folder in folders().values() for p in sorted(folder.glob("*.json"))}


_Key = Annotated[str, Field(max_length=100)]
_Signature = Annotated[str, Field(max_length=200)]
_Instant = Annotated[str, Field(max_length=64)]


class ChainCheckpoint(BaseModel):
    """A relay's signed checkpoint of its log's chain head (shared/signing.py)."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(max_length=50, description="the service whose log this is")
    position: int = Field(ge=1, description="the position of the chain head signed")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="the chain hash at `position`")
    signed_at: _Instant = Field(description="ISO 8601 instant of the signature")
    public_key: _Key = Field(description="base64 raw Ed25519 key (a hint: verify with pins)")
    signature: _Signature = Field(
        description="base64 Ed25519 signature of the RFC 8785 text of"
        " {service, position, hash, signed_at}"
    )


class SigningKeyChanged(BaseModel):
    """A service's announcement of its new signing key, signed by the previous one."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(max_length=50)
    previous_public_key: _Key
    public_key: _Key
    announced_at: _Instant
    signature: _Signature = Field(
        description="base64 Ed25519 signature, by the previous key, of the RFC 8785 text of"
        " {service, previous_public_key, public_key, announced_at}"
    )


SHARED_SCHEMAS: dict[str, type[BaseModel]] = {
    signing.CHECKPOINT: ChainCheckpoint,
    keys.KEY_CHANGED: SigningKeyChanged,
    privacy_subjects.SUBJECT_ERASED: privacy_subjects.SubjectErased,
    privacy_migration.LOG_REDACTED: privacy_migration.LogRedacted,
}


def idempotency_digest(organisation: str | None, key: str) -> str:
    """What an event's metadata keeps of the caller's Idempotency-Key: a digest scoped to the
    organisation (keys are scoped to it too), never the key itself, for the metadata goes to
    the broker and the feeds. The organisation can still match its own key to its events."""
    text = f"{organisation or ''}\n{key}".encode()
    return "sha256:" + hashlib.sha256(text).hexdigest()


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(kind, ()))


class Contract:
    """The schemas of one upstream: `problem(event_type, schema_version, data)`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._schemas: dict[str, dict[str, Any] | None] = {}

    def schema(self, event_type: str, version: int) -> dict[str, Any] | None:
        """The schema of the upstream's own type, else of a type every service publishes."""
        name = f"{event_type}.v{version}.json"
        if name not in self._schemas:
            found = [p for p in (self.folder / name, SHARED_FOLDER / name) if p.is_file()]
            self._schemas[name] = json.loads(found[0].read_text()) if found else None
        return self._schemas[name]

    def problem(self, event_type: str, version: int, data: Mapping[str, Any]) -> str | None:
        """Why `data` breaks the published schema of its type, if it does. A type with no
        published schema (an older upstream's new type) is not checked here."""
        schema = self.schema(event_type, version)
        if schema is None:
            return None
        return _check(schema, data, schema, "data")


def _check(schema: Mapping[str, Any], value: Any, root: Mapping[str, Any], at: str) -> str | None:
    if "$ref" in schema:
        ref = str(schema["$ref"])
        target: Any = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        if (found := _check(target, value, root, at)) is not None:
            return found
    kinds = schema.get("type")
    if kinds is not None:
        allowed = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is(value, kind) for kind in allowed):
            return f"{at} is not of type {' or '.join(allowed)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{at} is not one of {schema['enum']}"
    if "const" in schema and value != schema["const"]:
        return f"{at} is not {schema['const']!r}"
    for key in ("anyOf", "oneOf"):
        if key in schema and all(_check(s, value, root, at) is not None for s in schema[key]):
            return f"{at} matches none of its allowed shapes"
    for sub in schema.get("allOf", ()):
        if (found := _check(sub, value, root, at)) is not None:
            return found
    if isinstance(value, str):
        return _check_text(schema, value, at)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _check_number(schema, value, at)
    if isinstance(value, list):
        return _check_list(schema, value, root, at)
    if isinstance(value, dict):
        return _check_object(schema, value, root, at)
    return None


def _check_text(schema: Mapping[str, Any], value: str, at: str) -> str | None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"{at} is longer than {schema['maxLength']} characters"
    if "minLength" in schema and len(value) < schema["minLength"]:
        return f"{at} is shorter than {schema['minLength']} characters"
    if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
        return f"{at} does not match {schema['pattern']}"
    return None


def _check_number(schema: Mapping[str, Any], value: float, at: str) -> str | None:
    if "minimum" in schema and value < schema["minimum"]:
        return f"{at} is below {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"{at} is above {schema['maximum']}"
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        return f"{at} is not above {schema['exclusiveMinimum']}"
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        return f"{at} is not below {schema['exclusiveMaximum']}"
    return None


def _check_list(
    schema: Mapping[str, Any], value: list[Any], root: Mapping[str, Any], at: str
) -> str | None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        return f"{at} has more than {schema['maxItems']} items"
    if "minItems" in schema and len(value) < schema["minItems"]:
        return f"{at} has fewer than {schema['minItems']} items"
    items = schema.get("items")
    if isinstance(items, dict):
        for n, item in enumerate(value):
            if (found := _check(items, item, root, f"{at}[{n}]")) is not None:
                return found
    return None


def _check_object(
    schema: Mapping[str, Any], value: dict[str, Any], root: Mapping[str, Any], at: str
) -> str | None:
    for name in schema.get("required", ()):
        if name not in value:
            return f"{at}.{name} is missing"
    for name, sub in schema.get("properties", {}).items():
        if name in value and (found := _check(sub, value[name], root, f"{at}.{name}")):
            return found
    return None
