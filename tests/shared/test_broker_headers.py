"""What the relay puts on the broker, read raw from the real broker (issue 21): each message
names its schema (`ce_dataschema`, served at the path its id maps to), attributes without a
value are left out rather than sent empty, and a caller's Idempotency-Key never reaches the
broker (the log keeps a digest of it); the consumer still verifies and applies every message,
those of an older relay with empty attributes and a raw key too."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from shared import authenticity, chain, published
from shared.auth import Role
from shared.events import Metadata, RecordedEvent
from shared.testing import issue_key
from tests.shared.kafka_helpers import produce, read_topic
from tests.shared.test_consumer import Rig, directory, register, wait_for
from tests.shared.test_consumer_trust import (
    REGISTRY_KEY,
    inbox,
    organisation,
    quarantined,
    running,
    trust_rig,
)

# what older relays sent for every attribute: empty strings for those without a value
OPTIONAL = ("ce_correlationid", "ce_causationid", "ce_organisation", "ce_actor")
CALLERS_KEY = "lille-order-2026-0042"


@pytest.fixture
async def rig(pg_server: str, kafka_bootstrap: str) -> AsyncIterator[Rig]:
    async with trust_rig(pg_server, kafka_bootstrap) as r:
        yield r


def headers_of(record: object) -> dict[str, bytes]:
    return dict(getattr(record, "headers", None) or ())


async def test_a_write_reaches_the_broker_naming_its_schema_without_empty_headers_or_its_key(
    rig: Rig,
) -> None:
    admin = await issue_key(
        rig.registry.database_url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN]
    )
    http = rig.runner.http
    assert http is not None
    body = {"organisation_id": "lille", "name": "Lille", "kind": "municipality", "country": "FR"}
    auth = {"Authorization": f"Bearer {admin}", "Idempotency-Key": CALLERS_KEY}
    first = await http.post("http://registry/v1/organisations", json=body, headers=auth)
    assert first.status_code == 201, first.text
    again = await http.post("http://registry/v1/organisations", json=body, headers=auth)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()

    async with running(rig):
        await wait_for(lambda: _has(rig, "lille"))
    records = await read_topic(rig.bootstrap, rig.registry.topic("registry"), expect=1)
    assert len(records) == 1
    record = records[0]
    headers = headers_of(record)

    schema_id = published.schema_id("registry.organisation-registered")
    assert headers["ce_dataschema"] == schema_id.encode()
    assert headers["ce_type"] == b"registry.organisation-registered"
    assert all(value for value in headers.values()), "an attribute sent empty"
    assert "ce_causationid" not in headers  # an API write has no causing event
    assert headers["ce_organisation"] == b"twinaid" and headers["ce_correlationid"]
    # the caller's key is nowhere on the broker; the log and the message keep its digest
    digest = published.idempotency_digest("twinaid", CALLERS_KEY)
    assert headers["ce_idempotencykey"] == digest.encode()
    everything = b"".join([record.value or b"", record.key or b"", *headers.values()])
    assert CALLERS_KEY.encode() not in everything
    async with rig.registry_db.connection() as conn:
        stored = await conn.fetchval("SELECT metadata::text FROM events")
    assert json.loads(stored)["idempotency_key"] == digest
    assert CALLERS_KEY not in stored

    # the schema it names is served at the path its id maps to, and the payload obeys it
    answer = await http.get(f"http://registry{published.schema_path(schema_id)}")
    assert answer.status_code == 200
    assert answer.json()["$id"] == schema_id
    contract = published.Contract(published.service_folder("registry"))
    assert contract.problem("registry.organisation-registered", 1, json.loads(record.value)) is None

    # and the consumer verified it (chain link, signature, schema) and applied it
    assert await directory(rig) == {"lille": "Lille"}
    assert await quarantined(rig) == []
    assert set(await inbox(rig)) == {1}


async def test_a_relayed_checkpoint_names_its_schema_and_is_applied(rig: Rig) -> None:
    rig.relay.checkpoint_signer = REGISTRY_KEY
    rig.relay.settings = rig.relay.settings.model_copy(update={"checkpoint_interval": 0.01})
    await register(rig, "kharkiv", "Kharkiv")
    await register(rig, "bucha", "Bucha")
    async with running(rig):
        await wait_for(lambda: _inbox_holds(rig, 3))  # the two and the checkpoint after them
    records = await read_topic(rig.bootstrap, rig.registry.topic("registry"), expect=3)
    by_type = {headers_of(r)["ce_type"]: headers_of(r) for r in records}
    checkpoint = by_type[b"audit.chain-checkpoint"]
    assert checkpoint["ce_dataschema"] == published.schema_id("audit.chain-checkpoint").encode()
    assert "ce_correlationid" not in checkpoint and "ce_organisation" not in checkpoint
    assert "ce_idempotencykey" not in checkpoint
    assert all(value for value in checkpoint.values())
    assert await quarantined(rig) == []


async def test_messages_of_an_older_relay_with_empty_attributes_and_a_raw_key_still_apply(
    rig: Rig,
) -> None:
    # as an older version stored and published it: the caller's key in the metadata, every
    # attribute without a value sent as an empty string, no ce_dataschema
    first = replace(
        organisation("bucha", "Bucha", 1),
        metadata=Metadata(actor="key-1", organisation="twinaid", idempotency_key="raw-key-1"),
    )
    first = replace(first, hash=chain.link(chain.GENESIS, first, position=1))
    second = organisation("irpin", "Irpin", 2)
    second = replace(second, hash=chain.link(first.hash or b"", second, position=2))
    lane = authenticity.LANE_START
    previous = chain.GENESIS
    for event in (first, second):
        headers, lane = _older_relays_headers(event, previous=previous, lane=lane)
        assert (b"ce_causationid", b"") in [(k.encode(), v) for k, v in headers]
        await produce(
            rig.bootstrap,
            rig.registry.topic("registry"),
            value=json.dumps(dict(event.data)).encode(),
            key=event.stream_id.encode(),
            headers=headers,
        )
        previous = event.hash or b""
    async with running(rig):
        await wait_for(lambda: _inbox_holds(rig, 2))
    assert await directory(rig) == {"bucha": "Bucha", "irpin": "Irpin"}
    assert await quarantined(rig) == []


def _older_relays_headers(
    event: RecordedEvent, *, previous: bytes, lane: bytes
) -> tuple[list[tuple[str, bytes]], bytes]:
    assert event.position is not None and event.hash is not None
    meta = event.metadata
    attrs = {
        "ce_specversion": "1.0",
        "ce_id": str(event.event_id),
        "ce_source": "/twinaid/registry",
        "ce_type": event.event_type,
        "ce_time": event.occurred_at.isoformat(),
        "ce_subject": event.stream_id,
        "ce_streamtype": event.stream_type,
        "ce_streamversion": str(event.stream_version),
        "ce_position": str(event.position),
        "ce_schemaversion": str(event.schema_version),
        "ce_recordedat": event.recorded_at.isoformat(),
        "ce_chainhash": event.hash.hex(),
        "ce_correlationid": meta.correlation_id or "",
        "ce_causationid": meta.causation_id or "",
        "ce_organisation": meta.organisation or "",
        "ce_actor": meta.actor or "",
        "ce_idempotencykey": meta.idempotency_key or "",
        "content-type": "application/json",
    }
    signed, after = authenticity.signature_headers(
        REGISTRY_KEY, "registry", event.position, event.hash, previous, lane
    )
    return [*((k, v.encode()) for k, v in attrs.items()), *signed], after


async def _has(rig: Rig, slug: str) -> bool:
    return slug in await directory(rig)


async def _inbox_holds(rig: Rig, count: int) -> bool:
    return len(await inbox(rig)) >= count


def test_the_digest_is_scoped_to_the_organisation_and_never_the_key() -> None:
    digest = published.idempotency_digest("lille", CALLERS_KEY)
    assert digest.startswith("sha256:") and len(digest) == 71
    assert CALLERS_KEY not in digest
    assert digest == published.idempotency_digest("lille", CALLERS_KEY)
    assert digest != published.idempotency_digest("leeds", CALLERS_KEY)
