"""The AsyncAPI 3.0 document of the topics and the event schemas, as every service serves them
without a key: the document validated by the pinned AsyncAPI parser, every event type with a
schema (the chain checkpoint and the key change too), each schema served at the path its `$id`
maps to. The apps run in process, without a database: these routes need none."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services import cli
from services.pledges.app import create_app as pledges_app
from services.registry.app import create_app as registry_app
from services.shipments.app import create_app as shipments_app
from shared import asyncapi, contracts, published
from shared.keys import KEY_CHANGED, KeyRing
from shared.signing import CHECKPOINT, Signer
from tests.conftest import settings_for

pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[2]
NODE_TOOLS = ROOT / "tools" / "node"
APPS = {"registry": registry_app, "pledges": pledges_app, "shipments": shipments_app}


@pytest.fixture(scope="module")
def apps() -> dict[str, FastAPI]:
    settings = settings_for("postgresql://nobody@127.0.0.1:1/unused", "kafka.example:9092")
    return {service: create(settings) for service, create in APPS.items()}


@pytest.fixture
async def clients(apps: dict[str, FastAPI]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    opened = {
        s: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{s}")
        for s, app in apps.items()
    }
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.aclose()


def every_event_type() -> dict[str, str]:
    """{event type: the service whose topic carries it}, from the services' models."""
    found = {t: s for s, schemas in cli.CONTRACTS.items() for t in schemas}
    return found | {t: "every" for t in published.SHARED_SCHEMAS}


async def test_every_service_serves_one_asyncapi_document_without_a_key(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    documents = []
    for client in clients.values():
        answer = await client.get("/asyncapi.json")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        documents.append(answer.json())
    assert documents[0] == documents[1] == documents[2]
    document = documents[0]
    assert document["asyncapi"] == "3.0.0"
    addresses = sorted(c["address"] for c in document["channels"].values())
    assert addresses == sorted([f"{s}.events" for s in APPS] + [f"{s}.events.dlq" for s in APPS])
    assert document["servers"]["broker"] == {
        "host": "kafka.example:9092",
        "protocol": "kafka",
        "description": "the deployment's Kafka-protocol broker",
    }


async def test_every_event_type_is_a_message_of_its_topic_with_its_schema(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    document = (await clients["pledges"].get("/asyncapi.json")).json()
    components = document["components"]
    for event_type, service in every_event_type().items():
        name = f"{event_type}.v1"
        topics = APPS if service == "every" else [service]
        for topic_service in topics:
            channel = document["channels"][f"{topic_service}Events"]
            assert channel["address"] == f"{topic_service}.events"
            assert name in channel["messages"], f"{name} missing on {topic_service}.events"
        message = components["messages"][name]
        assert message["payload"] == {"$ref": f"#/components/schemas/{name}"}
        headers = message["headers"]
        assert headers["properties"]["ce_dataschema"]["const"] == published.schema_id(event_type)
        assert headers["properties"]["ce_type"]["const"] == event_type
        assert "ce_signature" in headers["required"] and "ce_chainhash" in headers["required"]
        # the optional attributes are not required: they are omitted when absent
        assert "ce_causationid" not in headers["required"]
        payload = components["schemas"][name]
        served = (await clients["shipments"].get(f"/schemas/{name}.json")).json()
        assert payload["x-schema-id"] == served["$id"] == published.schema_id(event_type)
        assert payload["properties"].keys() == served["properties"].keys()
        assert payload.get("required") == served.get("required")
    # messages of one service never sit on another's topic
    assert not any(
        n.startswith("shipments.") for n in document["channels"]["pledgesEvents"]["messages"]
    )


async def test_each_schema_is_served_at_the_path_its_id_maps_to(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    listed = (await clients["registry"].get("/schemas")).json()["schemas"]
    files = published.schema_files()
    assert {s["path"].removeprefix("/schemas/") for s in listed} == set(files)
    assert {s["event_type"] for s in listed} >= set(every_event_type())
    for entry in listed:
        assert entry["path"] == published.schema_path(entry["id"])
        for client in clients.values():
            answer = await client.get(entry["path"])
            assert answer.status_code == 200, entry
            assert answer.headers["content-type"] == "application/schema+json"
            served = answer.json()
            assert served["$id"] == entry["id"]
            assert served == json.loads(files[Path(entry["path"]).name].read_text())
        # the `$id` (a URN) resolves at /schemas/<$id> too
        by_id = await clients["pledges"].get(f"/schemas/{entry['id']}")
        assert by_id.status_code == 200 and by_id.json()["$id"] == entry["id"], entry


async def test_an_unknown_or_malformed_schema_name_is_a_problem(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    client = clients["registry"]
    missing = await client.get("/schemas/registry.organisation-eloped.v1.json")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "GET /schemas" in missing.json()["detail"]
    for bad in ("..%2Fpyproject.toml", "registry.organisation-registered.json", "A.v1.json"):
        answer = await client.get(f"/schemas/{bad}")
        assert answer.status_code in (404, 422), bad
        assert answer.headers["content-type"] == "application/problem+json", bad


def test_the_shared_schemas_equal_their_models() -> None:
    docs = contracts.documents(published.SHARED_SCHEMAS, topic="every service's topic")
    committed = {p.name: p.read_text() for p in published.SHARED_FOLDER.glob("*.json")}
    assert committed == docs, "run `python -m shared.asyncapi --schemas` and commit shared/schemas"


def test_checkpoints_and_key_changes_obey_their_published_schemas() -> None:
    old, new = Signer.generate(), Signer.generate()
    now = datetime.now(UTC)
    checkpoint = old.checkpoint(service="registry", position=7, head=bytes(32), at=now)
    change = old.announce_change(new, service="registry", at=now)
    KeyRing.pinned({"registry": [old.public_key]}).announce("registry", change)  # authentic
    contract = published.Contract(published.service_folder("registry"))
    assert contract.schema(CHECKPOINT, 1) is not None
    assert contract.problem(CHECKPOINT, 1, checkpoint) is None
    assert contract.problem(KEY_CHANGED, 1, change) is None
    assert contract.problem(CHECKPOINT, 1, {**checkpoint, "hash": "not hex"}) == (
        "data.hash does not match ^[0-9a-f]{64}$"
    )
    assert contract.problem(CHECKPOINT, 1, {**checkpoint, "position": 0}) == (
        "data.position is below 1"
    )
    without = {k: v for k, v in change.items() if k != "previous_public_key"}
    assert contract.problem(KEY_CHANGED, 1, without) == "data.previous_public_key is missing"


def validate(documents: list[dict[str, Any]], tmp_path: Path) -> tuple[int, list[dict[str, Any]]]:
    """The parser's report on each document (one Node process for all)."""
    # the machine's node, else the one `make install` linked into .venv/bin from the wheel
    node = shutil.which("node") or shutil.which("node", path=str(Path(sys.executable).parent))
    assert node is not None, "node is needed (make install)"
    assert (NODE_TOOLS / "node_modules" / "@asyncapi" / "parser").is_dir(), "run make install"
    paths = []
    for n, document in enumerate(documents):
        paths.append(tmp_path / f"asyncapi-{n}.json")
        paths[-1].write_text(json.dumps(document, indent=2))
    done = subprocess.run(
        [node, str(NODE_TOOLS / "validate-asyncapi.mjs"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr
    reports: list[dict[str, Any]] = json.loads(done.stdout)
    return done.returncode, reports


async def test_the_served_document_passes_the_pinned_asyncapi_parser(
    clients: dict[str, httpx.AsyncClient], tmp_path: Path
) -> None:
    document = (await clients["registry"].get("/asyncapi.json")).json()
    # and the check has teeth: the same document with a dangling reference is refused
    broken = copy.deepcopy(document)
    broken["components"]["schemas"]["pledges.pledge-made.v1"]["properties"]["lines"] = {
        "$ref": "#/components/schemas/pledges.pledge-made.v1.Nowhere"
    }
    code, (report, refused) = validate([document, broken], tmp_path)
    print("AsyncAPI parser warnings:", json.dumps(report["warnings"], indent=2))
    print("AsyncAPI parser infos:", json.dumps(report["infos"], indent=2))
    assert report["errors"] == []
    assert report["warnings"] == []
    assert report["parsed"] and report["version"] == "3.0.0"
    assert report["channels"] == 6
    assert report["messages"] == len(document["components"]["messages"])
    assert code == 1
    assert [e["code"] for e in refused["errors"]] == ["invalid-ref"]


def test_the_document_for_settings_names_prefixed_topics_and_the_brokers_login() -> None:
    settings = settings_for(
        "postgresql://nobody@127.0.0.1:1/unused",
        "kafka:9092,kafka2:9092",
        kafka_topic_prefix="city.",
        kafka_partitions=6,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="registry",
        kafka_sasl_password="secret-password",
    )
    document = asyncapi.for_settings(settings)
    channel = document["channels"]["registryEvents"]
    assert channel["address"] == "city.registry.events"
    assert channel["bindings"]["kafka"]["partitions"] == 6
    assert document["channels"]["registryDeadLetters"]["address"] == "city.registry.events.dlq"
    assert document["servers"]["broker"]["host"] == "kafka:9092"
    assert document["servers"]["broker"]["security"] == [
        {"$ref": "#/components/securitySchemes/scram"}
    ]
    # neither the principal nor its password is in what is served publicly
    assert "secret-password" not in json.dumps(document)
    assert "registry" not in json.dumps(document["servers"])
