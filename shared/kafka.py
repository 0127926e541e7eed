"""Kafka clients configured to work on Apache Kafka and on Tansu alike (see KAFKA.md)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.settings import Settings

log = logging.getLogger("twinaid.kafka")


def producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        linger_ms=2,
        request_timeout_ms=10_000,
        max_request_size=4 * 1024 * 1024,
    )


def consumer(settings: Settings, *, group: str, topics: list[str]) -> AIOKafkaConsumer:
    # Never "latest": Tansu answers end offsets wrongly. Committed offsets or the beginning.
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
        max_poll_records=200,
        # Tansu holds a fetch this long even when data is there (Apache Kafka answers at once)
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )


async def ensure_topics(settings: Settings, topics: list[str]) -> None:
    """Create topics explicitly (auto-creation would pick its own partition count)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name=t,
                            num_partitions=settings.kafka_partitions,
                            replication_factor=settings.kafka_replication_factor,
                            # the log is the audit trail: Kafka keeps it (Tansu ignores this)
                            topic_configs={"retention.ms": "-1"},
                        )
                        for t in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def wait_for_broker(settings: Settings, *, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    host, _, port = settings.kafka_bootstrap_servers.split(",")[0].rpartition(":")
    while True:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            return
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
