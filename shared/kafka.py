"""Kafka clients configured to work on Apache Kafka and on Tansu alike (see KAFKA.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError
from aiokafka.helpers import create_ssl_context

from shared.settings import Settings

log = logging.getLogger("twinaid.kafka")


def security(settings: Settings) -> dict[str, Any]:
    """How every client of ours authenticates to the broker (producers, consumers, admin)."""
    protocol = settings.kafka_security_protocol
    found: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        found |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": password.get_secret_value() if password else None,
        }
    if protocol.endswith("SSL"):
        found["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    return found


async def stop_quietly(closing: Awaitable[object], timeout: float = 5) -> None:
    """Await a client's stop or close, whatever it raises: a client stopped because its broker
    went away may fail to stop, and aiokafka's fetcher can even raise the CancelledError of its
    own cancelled fetch task out of `stop()`. Only a cancellation of the caller itself goes on."""
    try:
        await asyncio.wait_for(closing, timeout)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.debug("a Kafka client's stop raised the cancellation of its own task")
    except Exception as exc:
        log.debug("a Kafka client did not stop cleanly: %r", exc)


def producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        **security(settings),
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
        **security(settings),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
        max_poll_records=200,
        # Tansu holds a fetch this long even when data is there (Apache Kafka answers at once)
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )


# How often a relay or a consumer asks the broker whether it is still the one it wrote to.
EPOCH_CHECK_INTERVAL = 2.0


async def ensure_topics(
    settings: Settings, topics: list[str], *, partitions: int | None = None
) -> None:
    """Create topics explicitly (auto-creation would pick its own partition count).

    With `partitions`, an existing topic with another count (auto-created by a client that
    asked for it first, after a broker reset) is deleted and created again: only do this while
    republishing it from the start."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **security(settings)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if partitions is not None:
            present = [t for t in topics if t in existing]
            wrong = [
                d["topic"]
                for d in (await admin.describe_topics(present) if present else [])
                if len(d["partitions"]) != partitions
            ]
            if wrong:
                log.warning("recreating %s with %d partitions", wrong, partitions)
                with contextlib.suppress(UnknownTopicOrPartitionError):
                    await admin.delete_topics(wrong)
                existing -= set(wrong)
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


class BrokerEpoch:
    """Tells whether the broker is still the one this client wrote to.

    A memory-only broker (Tansu) comes back from a restart empty: topics, records, groups and
    committed offsets gone, while clients reconnect to the same address as if nothing happened.
    The client marks the broker with a topic of its own that nobody produces to or subscribes
    to, so no auto-creation brings it back: when the marker is missing, the broker is new (or
    was emptied) and what it acknowledged before is lost. A fresh broker looks the same.
    Cluster ids do not help: Tansu answers the same one after every restart.
    """

    def __init__(self, settings: Settings, *, marker: str) -> None:
        self.settings = settings
        self.marker = marker

    async def lost(self) -> bool:
        """True when the marker is missing. Raises KafkaError/OSError when the broker is down."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            request_timeout_ms=5000,
            **security(self.settings),
        )
        await asyncio.wait_for(admin.start(), 10)
        try:
            return self.marker not in set(await asyncio.wait_for(admin.list_topics(), 10))
        finally:
            await stop_quietly(admin.close())

    async def mark(self) -> None:
        """Call once what the lost broker held has been dealt with (not before: a crash in
        between must find the marker still missing)."""
        settings = self.settings.model_copy(update={"kafka_partitions": 1})
        await ensure_topics(settings, [self.marker])


def set_fetch_wait(consumer: AIOKafkaConsumer, wait_ms: int) -> None:
    """Change how long a running consumer's fetch requests wait for records (aiokafka reads
    its fetcher's fetch_max_wait_ms at every request and has no public setter for it)."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
        fetcher._fetch_max_wait_ms = wait_ms
