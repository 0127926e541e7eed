"""One bad message never stops a consumer (real broker, real PostgreSQL): a value nested too deep
for the parser, or a number beyond the column that holds it, is dead-lettered once, naming the
message and what broke, and the valid events after it are applied; handled again (a restart
before the offsets were committed) nothing is parked twice; a batch the database refuses for a
value of one message parks that message and applies the others; and a consumer retrying the
same batch for too long says so to the worker's readiness.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord

from shared import db as dbmod
from shared.incoming import Unparseable, parse_record
from shared.metrics import Metrics
from shared.worker import WatchedConsumers
from tests.conftest import published_headers
from tests.shared.kafka_helpers import produce, read_topic
from tests.shared.test_consumer import Rig, directory, wait_for
from tests.shared.test_consumer_trust import (
    REGISTRY_KEY,
    audited,
    inbox,
    organisation,
    quarantined,
    running,
    send,
    trust_rig,
)

# what the outside tester sent: ~30 KB, 5000 objects deep
DEEP = b'{"a":' * 5000 + b"1" + b"}" * 5000
MAX_POSITION = 2**63 - 1  # a bigint
BEYOND_BIGINT = str(2**63).encode()
DEEP_REASON = "cannot parse the message: it is nested too deep to read"
BEYOND_REASON = (
    "cannot parse the message: header ce_position: position 9223372036854775808 is out of"
    f" range (from 1 to {MAX_POSITION})"
)


@pytest.fixture
async def rig(pg_server: str, kafka_bootstrap: str) -> AsyncIterator[Rig]:
    async with trust_rig(pg_server, kafka_bootstrap) as r:
        yield r


async def dead_letters(rig: Rig) -> list[dict[str, Any]]:
    async with rig.pledges_db.connection() as conn:
        rows = await conn.fetch(
            'SELECT topic, partition, "offset", value, headers, reason FROM dead_letters'
            " ORDER BY id"
        )
    return [dict(r) for r in rows]


async def produce_poison(rig: Rig) -> str:
    """The deep message and a real event's headers with position 2**63 on the registry's
    topic, then the valid registration of Lviv at position 1; returns Lviv's event id."""
    topic = rig.registry.topic("registry")
    headers, _ = published_headers("registry", organisation("x", "X", 1), signer=REGISTRY_KEY)
    await produce(rig.bootstrap, topic, value=DEEP, key=b"organisation-x", headers=headers)
    beyond = organisation("nowhere", "Nowhere", 1)
    await send(rig, "registry", beyond, signer=REGISTRY_KEY, ce_position=BEYOND_BIGINT)
    lviv = organisation("lviv", "Lviv", 1)
    await send(rig, "registry", lviv, signer=REGISTRY_KEY)
    return str(lviv.event_id)


async def test_a_deep_message_and_a_position_beyond_bigint_are_dead_lettered_once(
    rig: Rig,
) -> None:
    lviv = await produce_poison(rig)
    async with running(rig):

        async def applied() -> bool:
            return "lviv" in await directory(rig)

        await wait_for(applied)
    parked = {p["reason"]: p for p in await dead_letters(rig)}
    assert set(parked) == {DEEP_REASON, BEYOND_REASON}
    assert parked[DEEP_REASON]["value"] == DEEP
    assert json.loads(parked[BEYOND_REASON]["headers"])["ce_position"] == BEYOND_BIGINT.decode()
    assert await quarantined(rig) == []
    assert await inbox(rig) == {1: lviv}
    assert rig.runner.dead == 2 and rig.runner.applied == 1

    # fetched again (a restart before the offsets were committed): nothing parked twice
    records = await read_topic(rig.bootstrap, rig.registry.topic("registry"), expect=3)
    assert len(records) == 3
    await rig.runner.handle_batch(records)
    await rig.runner.handle_batch(records[:2])
    assert len(await dead_letters(rig)) == 2
    assert rig.runner.dead == 2 and rig.runner.applied == 1 and rig.runner.duplicates >= 1

    # and restarted: it goes on from where it was, with nothing parked again
    nikopol = organisation("nikopol", "Nikopol", 2)
    async with running(rig):
        async with rig.pledges_db.connection() as conn:
            held = await conn.fetchval("SELECT hash FROM inbox WHERE position = 1")
        await send(rig, "registry", nikopol, previous=bytes(held), signer=REGISTRY_KEY)

        async def both() -> bool:
            return await directory(rig) == {"lviv": "Lviv", "nikopol": "Nikopol"}

        await wait_for(both)
    assert len(await dead_letters(rig)) == 2
    assert await quarantined(rig) == []


async def test_the_audit_source_names_each_bad_message_and_reads_on(rig: Rig) -> None:
    lviv = await produce_poison(rig)
    read, named = await audited(rig, "registry")
    assert read == {1: lviv}
    topic = rig.registry.topic("registry")
    records = await read_topic(rig.bootstrap, topic, expect=3)
    where = {r.value: (r.partition, r.offset) for r in records}
    beyond = next(r.value for r in records if r.value != DEEP and b"Nowhere" in (r.value or b""))
    assert named == {
        (topic, *where[DEEP], None, DEEP_REASON),
        (topic, *where[beyond], None, BEYOND_REASON),
    }


async def test_a_nul_character_in_a_header_is_parked_once_shown_as_a_replacement(
    rig: Rig,
) -> None:
    """PostgreSQL's jsonb refuses a NUL character: a header holding one is kept as U+FFFD, so
    that parking the message cannot fail (and the consumer stall on it)."""
    unreadable = organisation("unreadable", "Unreadable", 1)
    await send(rig, "registry", unreadable, signer=REGISTRY_KEY, ce_id=b"\x00")
    altered = organisation("altered", "Altered", 1)
    await send(rig, "registry", altered, signer=REGISTRY_KEY, ce_actor=b"ad\x00min")
    lviv = organisation("lviv", "Lviv", 1)
    await send(rig, "registry", lviv, signer=REGISTRY_KEY)
    async with running(rig):

        async def applied() -> bool:
            return "lviv" in await directory(rig) and rig.runner.quarantined == 1

        await wait_for(applied)
    (dead,) = await dead_letters(rig)
    assert json.loads(dead["headers"])["ce_id"] == "\ufffd"
    assert dead["reason"].startswith("cannot parse the message: ValueError(")
    (parked,) = await quarantined(rig)
    assert parked["event_id"] == str(altered.event_id) and not parked["authentic"]
    async with rig.pledges_db.connection() as conn:
        headers = await conn.fetchval("SELECT headers FROM quarantine")
    assert json.loads(headers)["ce_actor"] == "ad\ufffdmin"
    assert await inbox(rig) == {1: str(lviv.event_id)}


def record_of(headers: list[tuple[str, bytes]], value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="registry.events",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=headers,
    )


def real(**changes: bytes | None) -> ConsumerRecord[bytes, bytes]:
    """A relay's message of Lviv's registration, with header `changes` (None drops one)."""
    event = organisation("lviv", "Lviv", 1)
    headers, _ = published_headers("registry", event, signer=REGISTRY_KEY)
    headers = [(k, v) for k, v in headers if k not in changes]
    headers += [(k, v) for k, v in changes.items() if v is not None]
    return record_of(headers, json.dumps(event.data).encode())


def test_a_relays_message_parses_and_its_bounds_hold_at_their_edges() -> None:
    assert parse_record(real(), upstream="registry").position == 1
    edge = parse_record(
        real(ce_position=str(MAX_POSITION).encode(), ce_streamversion=b"2147483647"),
        upstream="registry",
    )
    assert edge.position == MAX_POSITION and edge.stream_version == 2**31 - 1
    nested = b'{"a":' * 64 + b"1" + b"}" * 64  # as deep as an upstream's log holds
    value = parse_record(record_of(real().headers, nested), upstream="registry")
    assert value.data["a"]["a"] is not None


@pytest.mark.parametrize(
    ("changes", "value", "reason"),
    [
        ({"ce_position": BEYOND_BIGINT}, None, "header ce_position: position 9223372036854775808"),
        ({"ce_position": b"-1"}, None, "header ce_position: position is not a whole number"),
        ({"ce_position": b"0"}, None, "header ce_position: position 0 is out of range"),
        ({"ce_position": "٣".encode()}, None, "header ce_position: position is not a whole"),
        ({"ce_position": b"1_000"}, None, "header ce_position: position is not a whole"),
        ({"ce_position": b"9" * 5000}, None, "header ce_position: position is not a whole"),
        ({"ce_streamversion": b"2147483648"}, None, "header ce_streamversion: stream_version"),
        ({"ce_schemaversion": b"0"}, None, "header ce_schemaversion: schema_version 0 is out"),
        ({"ce_time": b"2026-11-24T00:00:00"}, None, "header ce_time: occurred_at is not an"),
        ({"ce_recordedat": b"9999-12-31T23:00:00-05:00"}, None, "header ce_recordedat"),
        ({"ce_redaction": b'{"a":' * 5000 + b"1" + b"}" * 5000}, None, "nested too deep"),
        ({"ce_redaction": b'{"a":' * 65 + b"1" + b"}" * 65}, None, "nested more than 64 deep"),
        ({}, DEEP, "cannot parse the message: it is nested too deep to read"),
        ({}, b'{"a":' * 65 + b"1" + b"}" * 65, "the value is nested more than 64 deep"),
        ({}, b'{"a": ' + b"9" * 5000 + b"}", "Exceeds the limit (4300 digits)"),
        ({}, b'{"a": "\xff"}', "UnicodeDecodeError"),
        ({}, b"[1]", "the value is not a JSON object"),
    ],
)
def test_what_no_upstream_can_publish_is_unparseable_naming_what_broke(
    changes: dict[str, bytes], value: bytes | None, reason: str
) -> None:
    record = real(**changes)
    if value is not None:
        record = record_of(record.headers, value)
    with pytest.raises(Unparseable) as refused:
        parse_record(record, upstream="registry")
    assert reason in str(refused.value)
    assert len(str(refused.value)) < 400


async def test_a_value_the_database_refuses_parks_that_message_and_applies_the_others(
    rig: Rig, pg_server: str
) -> None:
    """The database refuses what one message brought, after parsing (here a constraint on the
    quarantine; in the field a value beyond a column): the batch is handled a message at a
    time, the refused one dead-lettered as it came, the others applied; never retried as if
    the database were down."""
    async with rig.pledges_db.connection() as conn:
        await conn.execute(
            "ALTER TABLE quarantine ADD CONSTRAINT not_seven CHECK (position IS DISTINCT FROM 7)"
        )
    forged = organisation("forged", "Forged", 7)
    await send(rig, "registry", forged, signer=REGISTRY_KEY, ce_signature=b"AAAA")
    lviv = organisation("lviv", "Lviv", 1)
    await send(rig, "registry", lviv, signer=REGISTRY_KEY)
    async with running(rig):

        async def applied() -> bool:
            return "lviv" in await directory(rig)

        await wait_for(applied)
    (parked,) = await dead_letters(rig)
    assert parked["reason"].startswith("the database refuses a value of the message:")
    assert "CheckViolationError" in parked["reason"]
    assert json.loads(parked["headers"])["ce_position"] == "7"
    assert await inbox(rig) == {1: str(lviv.event_id)}
    assert rig.runner.stalled() is None


async def test_a_consumer_retrying_the_same_batch_too_long_is_not_ready(
    rig: Rig, pg_server: str
) -> None:
    runner = WatchedConsumers(
        service="pledges",
        settings=rig.pledges,
        db=rig.pledges_db,
        metrics=Metrics("pledges"),
        handlers=rig.runner.handlers,
    )
    runner.stalled_after = 1.0
    name = dbmod.database_name(rig.pledges.database_url)
    admin = await asyncpg.connect(dbmod.with_database(rig.pledges.database_url, "postgres"))
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        lviv = organisation("lviv", "Lviv", 1)
        hashed = await send(rig, "registry", lviv, signer=REGISTRY_KEY)

        async def applied() -> bool:
            return "lviv" in await directory(rig)

        await wait_for(applied)
        assert runner.stuck() is None
        # the database goes away (no connection accepted): not the message's fault
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await send(
            rig,
            "registry",
            organisation("bucha", "Bucha", 2),
            previous=hashed,
            signer=REGISTRY_KEY,
        )

        async def not_ready() -> bool:
            return runner.stuck() is not None

        await wait_for(not_ready)
        reason = runner.stuck()
        assert reason is not None and "retried the same batch" in reason
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

        async def both() -> bool:
            return await directory(rig) == {"lviv": "Lviv", "bucha": "Bucha"}

        await wait_for(both)
        assert runner.stuck() is None
        assert await dead_letters(rig) == []
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        stop.set()
        await task
