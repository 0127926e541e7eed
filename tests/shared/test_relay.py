"""The relay on real PostgreSQL and a real Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared import kafka
from shared.db import Database
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.metrics import Metrics
from shared.notify import Notifier
from shared.outbox import Relay
from shared.settings import Settings
from tests.conftest import settings_for
from tests.shared.kafka_helpers import produce, read_topic

NOW = datetime(2026, 11, 24, tzinfo=UTC)


@pytest.fixture
async def settings(db_url: str, kafka_bootstrap: str) -> Settings:
    s = settings_for(db_url, kafka_bootstrap, kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.")
    await kafka.ensure_topics(s, [s.topic("registry")])
    return s


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings.database_url, max_size=4)
    await db.open()
    yield db
    await db.close()


async def append_many(url: str, streams: int, per_stream: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        for v in range(per_stream):
            for s in range(streams):
                await PostgresEventStore(conn).append(
                    stream_type="organisation",
                    stream_id=f"org-{s}",
                    expected_version=v,
                    events=[NewEvent("registry.organisation-renamed", {"v": v + 1})],
                    metadata=Metadata(actor="k", organisation="lille", correlation_id=f"c{s}"),
                    now=NOW,
                )
    finally:
        await conn.close()


async def wait_for(condition: object, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_publishes_every_event_once_keyed_by_stream_in_position_order_with_cloudevents(
    settings: Settings,
    database: Database,
    kafka_bootstrap: str,
) -> None:
    await append_many(settings.database_url, streams=5, per_stream=4)
    relay = Relay(service="registry", settings=settings, db=database, metrics=Metrics("registry"))
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await wait_for(lambda: relay.published == 20)
    finally:
        stop.set()
        await task
    records = await read_topic(kafka_bootstrap, settings.topic("registry"), expect=20)
    assert len(records) == 20
    headers = [{k: v.decode() for k, v in r.headers} for r in records]
    assert len({h["ce_id"] for h in headers}) == 20
    for record, h in zip(records, headers, strict=True):
        assert h["ce_specversion"] == "1.0"
        assert h["ce_source"] == "/twinaid/registry"
        assert h["ce_type"] == "registry.organisation-renamed"
        assert datetime.fromisoformat(h["ce_time"]) == NOW
        assert record.key == h["ce_subject"].encode()
        assert json.loads(record.value) == {"v": int(h["ce_streamversion"])}
        assert h["ce_correlationid"] == "c" + h["ce_subject"].removeprefix("org-")
    by_partition: dict[int, list[int]] = defaultdict(list)
    by_stream: dict[str, list[int]] = defaultdict(list)
    for record, h in zip(records, headers, strict=True):
        by_partition[record.partition].append(int(h["ce_position"]))
        by_stream[h["ce_subject"]].append(int(h["ce_streamversion"]))
    assert all(p == sorted(p) for p in by_partition.values())
    assert all(v == [1, 2, 3, 4] for v in by_stream.values())
    assert sorted(int(h["ce_position"]) for h in headers) == list(range(1, 21))
    async with database.connection() as conn:
        assert await conn.fetchval("SELECT position FROM relay_checkpoint") == 20


async def test_only_one_of_two_relays_publishes_and_the_other_takes_over_when_it_stops(
    settings: Settings,
    kafka_bootstrap: str,
) -> None:
    dbs = [Database(settings.database_url, max_size=3) for _ in range(2)]
    for d in dbs:
        await d.open()
    relays = [
        Relay(service="registry", settings=settings, db=d, metrics=Metrics("registry")) for d in dbs
    ]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(r.run(s)) for r, s in zip(relays, stops, strict=True)]
    try:
        await wait_for(lambda: any(r.is_leader for r in relays))
        await asyncio.sleep(0.5)
        assert sum(r.is_leader for r in relays) == 1
        await append_many(settings.database_url, streams=10, per_stream=3)
        await wait_for(lambda: sum(r.published for r in relays) == 30)
        leader = next(i for i, r in enumerate(relays) if r.is_leader)
        assert relays[1 - leader].published == 0
        stops[leader].set()
        await tasks[leader]
        await wait_for(lambda: relays[1 - leader].is_leader)
        await append_many_more(settings.database_url)
        await wait_for(lambda: relays[1 - leader].published == 5)
    finally:
        for s in stops:
            s.set()
        await asyncio.gather(*tasks)
        for d in dbs:
            await d.close()
    records = await read_topic(kafka_bootstrap, settings.topic("registry"), expect=35)
    ids = [dict(r.headers)["ce_id"] for r in records]
    assert len(ids) == 35 and len(set(ids)) == 35


async def append_many_more(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for s in range(5):
            await PostgresEventStore(conn).append(
                stream_type="organisation",
                stream_id=f"late-{s}",
                expected_version=0,
                events=[NewEvent("registry.organisation-registered", {"v": 1})],
                metadata=Metadata(),
                now=NOW,
            )
    finally:
        await conn.close()


async def test_a_notification_wakes_the_relay_long_before_its_poll_interval(
    db_url: str,
    kafka_bootstrap: str,
) -> None:
    s = settings_for(
        db_url,
        kafka_bootstrap,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        relay_poll_interval=30,
    )
    await kafka.ensure_topics(s, [s.topic("registry")])
    db = Database(db_url, max_size=3)
    await db.open()
    relay = Relay(service="registry", settings=s, db=db, metrics=Metrics("registry"))
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await wait_for(lambda: relay.is_leader)
        await asyncio.sleep(0.3)
        await append_many_more(db_url)
        await asyncio.sleep(1)
        assert relay.published == 0, "without a notification it waits for its poll"
        notifier = Notifier(db_url)  # what every API process does after a write commits
        await notifier.start()
        notifier.poke()
        # a 30 s poll interval: only NOTIFY can get it there within 15 s
        await wait_for(lambda: relay.published == 5, timeout=15)
        await notifier.stop()
    finally:
        stop.set()
        await task
        await db.close()


async def test_on_a_broker_new_to_it_the_relay_recreates_its_topic_with_its_partition_count(
    db_url: str, database: Database, kafka_bootstrap: str
) -> None:
    settings = settings_for(
        db_url, kafka_bootstrap, kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.", kafka_partitions=2
    )
    topic = settings.topic("registry")
    # a client asked for the topic first (as consumers do after a broker restart): the broker
    # auto-created it with its own partition count
    await produce(kafka_bootstrap, topic, value=b"{}", key=b"stray", headers=[])
    await append_many(settings.database_url, streams=3, per_stream=2)
    relay = Relay(service="registry", settings=settings, db=database, metrics=Metrics("registry"))
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await wait_for(lambda: relay.published == 6)
    finally:
        stop.set()
        await task
    assert relay.broker_resets == 1
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert len(described["partitions"]) == 2
    records = await read_topic(kafka_bootstrap, topic, expect=6)
    assert sorted(int(dict(r.headers)["ce_position"]) for r in records) == list(range(1, 7))
    assert not await relay.check_broker(), "the broker is marked as the relay's own now"
