"""Where an auditor reads a service's history from: its HTTP event feed, or its Kafka topic."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from shared import authenticity
from shared.events import Metadata, RecordedEvent
from shared.incoming import Incoming, Unparseable, parse_record
from shared.keys import KeyRing

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


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message of a topic that is not its service's authentic event, and why."""

    topic: str
    partition: int
    offset: int
    position: int | None
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.topic} partition {self.partition} offset {self.offset}"
            f" position {self.position if self.position is not None else '?'}: {self.reason}"
        )


def _to_stderr(rejected: Rejected) -> None:
    print(f"twinaid: not authentic, left out: {rejected}", file=sys.stderr)


def service_of(topic: str) -> str:
    """`<prefix>registry.events` -> registry."""
    return topic.removesuffix(".events").rsplit(".", 1)[-1]


async def from_kafka(
    bootstrap: str,
    topic: str,
    *,
    keys: KeyRing | None = None,
    named: Callable[[Rejected], None] = _to_stderr,
    idle_ms: int = 2000,
    security: Mapping[str, Any] | None = None,
) -> AsyncIterator[RecordedEvent]:
    """Every authentic event of `topic` from the earliest offset, without joining a group
    (nothing is committed), de-duplicated by position and yielded in position order. Stops
    when the topic has been quiet for `idle_ms` (end offsets are not trusted: see KAFKA.md).

    Each message is checked as a consumer checks it (shared/authenticity.py): its chain hash
    recomputed from the message, its link, and its signature against the keys `keys` pins for
    the topic's service (without pins for it, links only). A message that fails, cannot be
    read, or takes a position another authentic event holds is named (topic, partition,
    offset, position, reason) through `named` and left out.

    `security` is how the client authenticates to the broker, as shared/kafka.py `security`
    gives it (security_protocol, sasl_*, ssl_context); none: plaintext, no authentication."""
    service = service_of(topic)
    # no group: every partition, nothing committed
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
        **(security or {}),
    )
    received: list[tuple[Incoming, ConsumerRecord[bytes, bytes]]] = []

    def reject(record: ConsumerRecord[bytes, bytes], position: int | None, why: str) -> None:
        named(Rejected(record.topic, record.partition, record.offset, position, why))

    try:
        # inside: a start refused (broker unreachable, login or ACL refused) closes the client
        await consumer.start()
        while True:
            batch = await consumer.getmany(timeout_ms=idle_ms, max_records=5000)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    try:
                        received.append((parse_record(record, upstream=service), record))
                    except Unparseable as exc:
                        reject(record, None, str(exc))
    finally:
        await consumer.stop()
    messages = [incoming for incoming, _ in received]
    if keys is not None and keys.keys(service):
        failed = authenticity.verify(keys, messages)
    else:
        failed = {
            n: problem
            for n, incoming in enumerate(messages)
            if (problem := authenticity.link_problem(incoming)) is not None
        }
    candidates: dict[int, dict[uuid.UUID, tuple[Incoming, ConsumerRecord[bytes, bytes]]]] = {}
    for n, (incoming, record) in enumerate(received):
        if n in failed:
            reject(record, incoming.position, failed[n])
            continue
        candidates.setdefault(incoming.position, {}).setdefault(
            incoming.event_id, (incoming, record)
        )
    chosen = _chain_through(candidates)
    for position, found in candidates.items():
        held = chosen[position]
        for event_id, (_, record) in found.items():
            if event_id != held.event_id:
                reject(record, position, f"the position holds event {held.event_id}")
    for position in sorted(chosen):
        yield chosen[position].as_recorded()


def _chain_through(
    candidates: dict[int, dict[uuid.UUID, tuple[Incoming, ConsumerRecord[bytes, bytes]]]],
) -> dict[int, Incoming]:
    """One event per position: where authentic messages disagree on a position (the upstream's
    key signed two events for it), the one the next position's event links to, else the first
    received; from the last position down, so the chain kept is the one that goes on."""
    chosen: dict[int, Incoming] = {}
    for position in sorted(candidates, reverse=True):
        found = [incoming for incoming, _ in candidates[position].values()]
        after = chosen.get(position + 1)
        linked = [i for i in found if after is not None and i.chain_hash == after.previous_hash]
        chosen[position] = (linked or found)[0]
    return chosen
