"""The consumer runner: idempotent handlers over other services' topics.

For each message: parse it, check it (shared/consumer_checks.py), then in ONE transaction
record (consumer, event id) in the inbox and run the handler (shared/consumer_inbox.py); the
Kafka offset is committed only after that transaction. A message that cannot be parsed, or
whose handler still fails after bounded retries, goes to the dead-letter table and the
`<topic>.dlq` topic with the reason; one that fails a check, to the quarantine
(shared/consumer_parking.py), each message parked once however often it is fetched; and the
consumer goes on. A batch the database refuses for a value a message brought
(consumer_inbox.message_fault) is handled again a message at a time, and a message still
refused is dead-lettered as it came; only trouble of the database itself (down, unreachable)
makes the loop fetch the batch again, and `stalled` says so for the worker's readiness once that
lasts. Gaps in an upstream's positions that do not fill, and a broker that restarted empty, are
caught up from the upstream's HTTP feed (shared/consumer_catch_up.py).

The runner is built in layers, each a module of its own: parking <- checks <- inbox <- catch up
<- this module's Kafka loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from shared import kafka, published
from shared.consumer_catch_up import BrokerReset, CatchingUp
from shared.consumer_checks import Batch
from shared.consumer_inbox import message_fault
from shared.db import CONNECTION_LOST, Database
from shared.errors import ServiceUnavailable
from shared.incoming import (
    Handler,
    Incoming,
    Unparseable,
    parse_feed_event,
    parse_record,
)
from shared.keys import KeyRing
from shared.metrics import Metrics
from shared.settings import Settings

log = logging.getLogger("twinaid.consumer")
__all__ = [
    "BrokerReset",
    "ConsumerRunner",
    "Handler",
    "Incoming",
    "parse_feed_event",
    "parse_record",
]
# how often every upstream's prefix is looked at, records or not
GAP_CHECK_INTERVAL = 10.0
# retrying the same batch for longer than this (seconds), the consumer is not ready
STALLED_AFTER = 60.0


class _RewindIfReset(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ConsumerRunner, consumer: AIOKafkaConsumer) -> None:
        self.runner = runner
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self.runner.rewinding and assigned:
            await self.consumer.seek_to_beginning(*assigned)


class ConsumerRunner(CatchingUp):
    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        db: Database,
        metrics: Metrics,
        handlers: Mapping[str, Mapping[str, Handler]],
        http: httpx.AsyncClient | None = None,
        after_commit: Callable[[], None] | None = None,
        contracts: Mapping[str, Path] | None = None,
    ) -> None:
        """`handlers` maps an upstream service to {event type: handler}; `contracts` an
        upstream to the folder of its published JSON Schemas (services/<upstream>/schemas)."""
        self.name = service
        self.settings = settings
        self.db = db
        self.metrics = metrics
        self.handlers = handlers
        self.topics = [settings.topic(upstream) for upstream in handlers]
        self.upstream_of = {settings.topic(upstream): upstream for upstream in handlers}
        self.ring = KeyRing.pinned(settings.trusted_keys)
        self.contracts = {u: published.Contract(path) for u, path in (contracts or {}).items()}
        self.quarantined = 0
        self.http = http
        self.after_commit = after_commit  # e.g. wake this process's relay
        self.applied = 0
        self.duplicates = 0
        self.dead = 0
        self._gap_since = {}
        self._dlq = None
        group = f"{settings.kafka_topic_prefix}{service}.consumers"
        self.epoch = kafka.BrokerEpoch(settings, marker=f"{group}.epoch")
        self._epoch_checked_at = -kafka.EPOCH_CHECK_INTERVAL
        # after a broker reset: upstreams still to catch up from their feeds, whether the
        # group's offsets are still to be rewound (until a commit after the rewind)
        self.resetting = False
        self.rewinding = False
        self.resync = set()
        self.broker_resets = 0
        # since when (monotonic) the loop has been fetching the same batch again, and why
        self.retrying_since: float | None = None
        self.retrying_why = ""
        self.stalled_after = STALLED_AFTER

    def stalled(self) -> str | None:
        """Why the consumer is not ready, when it has been retrying the same batch (the
        database failing) for longer than `stalled_after` seconds."""
        if self.retrying_since is None:
            return None
        waited = time.monotonic() - self.retrying_since
        if waited < self.stalled_after:
            return None
        return f"the consumer has retried the same batch for {waited:.0f} s: {self.retrying_why}"

    async def handle_batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """The upstream of a message is the topic it came from, never one of its headers."""
        batch: Batch = []
        limit = self.settings.consumer_max_event_bytes
        for record in records:
            upstream = self.upstream_of.get(record.topic)
            if upstream is None:
                await self.dead_letter(record, f"{record.topic} is not a topic this consumer reads")
                continue
            size = len(record.value or b"")
            if size > limit:
                reason = f"oversize: {size} bytes, more than the {limit} an event may have"
                await self.quarantine(record, None, reason, upstream=upstream)
                continue
            try:
                batch.append((parse_record(record, upstream=upstream), record))
            except Unparseable as exc:
                await self.dead_letter(record, str(exc))
        batch = await self.checked(batch)
        if batch:
            # verified: also against what was applied, in the transaction that applies them
            await self.apply_batch(batch, against_what_was_applied=self.settings.consumer_verify)

    async def consumed(
        self, records: list[ConsumerRecord[bytes, bytes]], *, every_upstream: bool = False
    ) -> None:
        """A round of the Kafka loop: apply a fetch's `records`, then advance the prefixes they
        may have moved (those of the upstreams they came from), those with a gap still open,
        and with `every_upstream` (every GAP_CHECK_INTERVAL) every upstream's."""
        if records:
            try:
                await self.handle_batch(records)
            except Exception as exc:
                if not message_fault(exc):
                    raise
                log.warning("the database refused a value of the batch (%r): one by one", exc)
                await self._one_by_one(records)
        if every_upstream:
            await self.check_gaps()
        elif records or self.resync or self._gap_since:
            touched = {self.upstream_of.get(r.topic) for r in records}
            await self.check_gaps(
                [u for u in self.handlers if u in touched or u in self._gap_since]
            )

    async def _one_by_one(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Each message of a batch the database refused for a value one of them brought, on
        its own: what is parked already is not parked again (shared/consumer_parking.py), what
        was applied is a duplicate, and the message still refused is dead-lettered as it came
        (its headers and value, no position or event id: those may be what was refused)."""
        for record in records:
            try:
                await self.handle_batch([record])
            except Exception as exc:
                if not message_fault(exc):
                    raise
                reason = f"the database refuses a value of the message: {exc!r}"[:2000]
                await self.dead_letter(record, reason)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._consume(stop)
            except BrokerReset:
                continue
            except (
                KafkaError,
                OSError,  # TimeoutError too: the broker check
                ServiceUnavailable,
                asyncpg.PostgresError,
                *CONNECTION_LOST,
            ) as exc:
                log.warning("consumer interrupted, restarting: %r", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _consume(self, stop: asyncio.Event) -> None:
        await self.load_key_changes()
        await self.check_broker(running=False)
        if self.resync:  # the feeds first: they hold everything, the new broker not yet
            await self.resync_from_feeds()
        group = f"{self.settings.kafka_topic_prefix}{self.name}.consumers"
        consumer = kafka.consumer(self.settings, group=group, topics=[])
        busy_wait = self.settings.kafka_fetch_max_wait_ms
        idle_wait = max(busy_wait, self.settings.kafka_idle_fetch_max_wait_ms)
        idle_after = self.settings.consumer_idle_after
        consumer.subscribe(self.topics, listener=_RewindIfReset(self, consumer))
        self._dlq = kafka.producer(self.settings)
        try:
            await consumer.start()
            await self._dlq.start()
            quiet, heard_at, gaps_at = False, time.monotonic(), 0.0
            while not stop.is_set():
                batches: dict[
                    TopicPartition, list[ConsumerRecord[bytes, bytes]]
                ] = await consumer.getmany(timeout_ms=1000, max_records=200)
                # every partition's records in one transaction (each partition's in its order)
                records = [record for part in batches.values() for record in part]
                now = time.monotonic()
                # idle: fetches wait longer (settings.kafka_idle_fetch_max_wait_ms)
                if records:
                    heard_at = now
                    if quiet:
                        quiet = False
                        kafka.set_fetch_wait(consumer, busy_wait)
                elif not quiet and now - heard_at >= idle_after:
                    quiet = True
                    kafka.set_fetch_wait(consumer, idle_wait)
                try:
                    due = now - gaps_at > GAP_CHECK_INTERVAL
                    await self.consumed(records, every_upstream=due)
                    if due:
                        gaps_at = now
                except (ServiceUnavailable, asyncpg.PostgresError, *CONNECTION_LOST) as exc:
                    # The database's trouble, not the broker's: keep our place in the group
                    # (leaving and joining again costs seconds) and fetch the batch again.
                    log.warning("database unavailable, will retry the batch: %r", exc)
                    if self.retrying_since is None:
                        self.retrying_since = now
                    self.retrying_why = repr(exc)[:300]
                    for tp, part in batches.items():
                        if part:
                            consumer.seek(tp, part[0].offset)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
                    continue
                if records or due:  # a round that reached the database went through
                    self.retrying_since = None
                if records:
                    # After the database commits, never before.
                    await consumer.commit()
                    self.rewinding = False
                await self.check_broker(running=True)
        finally:
            await kafka.stop_quietly(consumer.stop())
            await kafka.stop_quietly(self._dlq.stop())
            self._dlq = None
