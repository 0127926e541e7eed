"""Where an auditor reads a service's history from: its HTTP event feed, or its Kafka topic."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from shared.events import Metadata, RecordedEvent

PAGE = 1000
Progress = Callable[[int], None]


def from_feed_json(raw: dict[str, Any]) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.UUID(raw["event_id"]),
        stream_type=raw["stream_type"],
        stream_id=raw["stream_id"],
        stream_version=int(raw["stream_version"]),
        event_type=raw["event_type"],
        schema_version=int(raw["schema_version"]),
        occurred_at=datetime.fromisoformat(raw["occurred_at"]),
        recorded_at=datetime.fromisoformat(raw["recorded_at"]),
        data=raw["data"],
        metadata=Metadata.from_dict(raw["metadata"]),
        position=int(raw["position"]),
        hash=bytes.fromhex(raw["hash"]) if raw.get("hash") else None,
    )


async def from_feed(
    client: httpx.AsyncClient,
    base_url: str,
    *,
    key: str,
) -> AsyncIterator[RecordedEvent]:
    """Every sealed event of a service, in position order, page by page."""
    after = 0
    while True:
        response = await client.get(
            f"{base_url}/v1/events",
            params={"after": after, "limit": PAGE},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        response.raise_for_status()
        page = response.json()
        for raw in page["events"]:
            yield from_feed_json(raw)
        if len(page["events"]) < PAGE:
            return
        after = page["next_after"]


def from_record(headers: dict[str, str], value: bytes) -> RecordedEvent:
    """Rebuild a stored event from a relayed message: CloudEvents headers plus the data."""

    def opt(name: str) -> str | None:
        return headers.get(name) or None

    return RecordedEvent(
        event_id=uuid.UUID(headers["ce_id"]),
        stream_type=headers["ce_streamtype"],
        stream_id=headers["ce_subject"],
        stream_version=int(headers["ce_streamversion"]),
        event_type=headers["ce_type"],
        schema_version=int(headers["ce_schemaversion"]),
        occurred_at=datetime.fromisoformat(headers["ce_time"]),
        recorded_at=datetime.fromisoformat(headers["ce_recordedat"]),
        data=json.loads(value),
        metadata=Metadata(
            actor=opt("ce_actor"),
            organisation=opt("ce_organisation"),
            correlation_id=opt("ce_correlationid"),
            causation_id=opt("ce_causationid"),
            idempotency_key=opt("ce_idempotencykey"),
        ),
        position=int(headers["ce_position"]),
        hash=bytes.fromhex(headers["ce_chainhash"]) if headers.get("ce_chainhash") else None,
    )


async def from_kafka(
    bootstrap: str,
    topic: str,
    *,
    idle_ms: int = 2000,
) -> AsyncIterator[RecordedEvent]:
    """Every message of `topic` from the earliest offset, without joining a group (nothing is
    committed), de-duplicated by position and yielded in position order. Stops when the
    topic has been quiet for `idle_ms` (end offsets are not trusted: see KAFKA.md)."""
    # no group: every partition, nothing committed
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        by_position: dict[int, RecordedEvent] = {}
        while True:
            batch = await consumer.getmany(timeout_ms=idle_ms, max_records=5000)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    headers = {k: v.decode() for k, v in (record.headers or ())}
                    event = from_record(headers, record.value or b"null")
                    assert event.position is not None
                    by_position.setdefault(event.position, event)
    finally:
        await consumer.stop()
    for position in sorted(by_position):
        yield by_position[position]
