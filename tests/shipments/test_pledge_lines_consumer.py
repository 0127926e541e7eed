"""Pledge lines reach shipments over a real Kafka-protocol broker: applied once however often
they arrive, the newest announcement wins, and a malformed one is parked, not fatal."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.shipments import subscriptions
from shared import db as dbmod
from shared import directory, kafka
from shared.chain import GENESIS
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.events import Metadata, RecordedEvent
from shared.metrics import Metrics
from shared.testing import fresh_database
from tests.conftest import published_headers, settings_for
from tests.shared.kafka_helpers import produce

LINE = {
    "pledge_id": "p-gen",
    "line_id": "l1",
    "donor_id": "lille",
    "recipient_id": "kharkiv",
    "partnership_id": "lille-kharkiv-twinning",
    "item": "Medium generator 5 kVA",
    "category": "generators",
    "unit": "pieces",
    "quantity": "50",
    "weight_kg": "4000",
    "delivered": "0",
    "remaining": "50",
    "status": "committed",
    "a_field_shipments_does_not_know": {"ignored": True},
}


_CHAIN: dict[int, bytes] = {0: GENESIS}  # the hash a test's announcement at a position got


def announcement(data: dict[str, Any], position: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    event = RecordedEvent(
        event_id=uuid.uuid4(),
        stream_type="pledge",
        stream_id="pledge-p-gen",
        stream_version=position,
        event_type="pledges.pledge-line-updated",
        schema_version=1,
        occurred_at=datetime(2023, 2, 20, tzinfo=UTC),
        recorded_at=datetime(2023, 2, 20, tzinfo=UTC),
        data=data,
        metadata=Metadata(actor="k", organisation="lille", correlation_id="need-generators"),
        position=position,
    )
    headers, _CHAIN[position] = published_headers("pledges", event, previous=_CHAIN[position - 1])
    return json.dumps(data).encode(), headers


@pytest.fixture
async def runner(pg_server: str, kafka_bootstrap: str) -> AsyncIterator[ConsumerRunner]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    schemas = (directory.SCHEMA, dbmod.schema_text("services.shipments"))
    async with fresh_database(pg_server, *schemas) as url:
        settings = settings_for(url, kafka_bootstrap, kafka_topic_prefix=prefix)
        topics = [settings.topic(s) for s in ("registry", "pledges")]
        await kafka.ensure_topics(settings, [*topics, *(t + ".dlq" for t in topics)])
        db = Database(url, max_size=3)
        await db.open()
        try:
            yield ConsumerRunner(
                service="shipments",
                settings=settings,
                db=db,
                metrics=Metrics("shipments"),
                handlers=subscriptions.HANDLERS,
            )
        finally:
            await db.close()


async def test_pledge_lines_from_the_broker_are_applied_once_and_the_newest_wins(
    runner: ConsumerRunner, kafka_bootstrap: str
) -> None:
    topic = runner.settings.topic("pledges")
    first = announcement(LINE, 1)
    amended = announcement({**LINE, "quantity": "40", "remaining": "40"}, 2)
    poison = announcement({**LINE, "unit": "crates"}, 3)
    for value, headers in (first, first, amended, poison):
        await produce(kafka_bootstrap, topic, value=value, key=b"pledge-p-gen", headers=headers)

    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while runner.applied + runner.dead < 3:
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task

    assert (runner.applied, runner.duplicates, runner.dead) == (2, 1, 1)
    async with runner.db.connection() as conn:
        row = await conn.fetchrow("SELECT * FROM pledge_lines")
        dead = await conn.fetchval("SELECT reason FROM dead_letters")
    assert (row["quantity"], row["status"], row["source_position"]) == (40, "committed", 2)
    assert row["correlation_id"] == "need-generators"
    assert row["partnership_id"] == "lille-kharkiv-twinning"
    assert "unit" in dead
