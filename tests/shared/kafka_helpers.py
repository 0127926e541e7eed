"""Reading what reached the broker, and records as a relay publishes them, for relay and
consumer tests (and bench/consumer_cost.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import rfc8785
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.partitioner import DefaultPartitioner

from shared import authenticity, chain, outbox
from shared.events import RecordedEvent
from shared.signing import Signer

_PARTITIONER = DefaultPartitioner()


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout: float = 30
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` from the beginning, waiting until `expect` arrived."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"reader-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=3000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expect and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                records.extend(part)
        # a little longer, to catch duplicates arriving late
        batch = await consumer.getmany(timeout_ms=300)
        for part in batch.values():
            records.extend(part)
    finally:
        await consumer.stop()
    return records


async def produce(
    bootstrap: str,
    topic: str,
    *,
    value: bytes,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers or [])
    finally:
        await producer.stop()


def relayed(
    service: str,
    events: Sequence[RecordedEvent],
    signers: Sequence[Signer],
    *,
    partitions: int = 4,
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records `service`'s relay publishes for sealed `events` (shared/outbox.py: each
    event on its stream's partition, signed by the signer beside it, a lane per partition
    going on from one to the next), in position order, as a consumer fetches them."""
    parts = list(range(partitions))
    lanes: dict[int, bytes] = {}
    offsets = dict.fromkeys(parts, 0)
    records, previous = [], chain.GENESIS
    for event, signer in zip(events, signers, strict=True):
        key = event.stream_id.encode()
        partition = _PARTITIONER(key, parts, parts)
        headers, lanes[partition] = outbox.headers_for(
            service,
            event,
            signer=signer,
            previous=previous,
            lane=lanes.get(partition, authenticity.LANE_START),
        )
        previous = event.hash or b""
        value = rfc8785.dumps(event.data)
        records.append(
            ConsumerRecord(
                topic=f"{service}.events",
                partition=partition,
                offset=offsets[partition],
                timestamp=int(event.recorded_at.timestamp() * 1000),
                timestamp_type=0,
                key=key,
                value=value,
                checksum=None,
                serialized_key_size=len(key),
                serialized_value_size=len(value),
                headers=headers,
            )
        )
        offsets[partition] += 1
    return records
