"""The relay: seals committed events (global position + hash chain) and publishes them.

One relay per service publishes: the leader holds a session-level advisory lock on its own
connection; other worker replicas wait for it. The leader wakes on NOTIFY and also polls, so a
lost notification only costs latency. Its checkpoint lives in PostgreSQL and moves only after the
broker acknowledged every message of a batch; after a crash the batch is sent again and
consumers drop the duplicates by event id.

A broker that lost what it acknowledged (a memory-only broker restarted, see KAFKA.md) is
noticed by a marker topic (kafka.BrokerEpoch): the leader then recreates its topic and
republishes its whole log; consumers drop what they already applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import rfc8785
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from shared import authenticity, chain, kafka, privacy_migration, sealer, signing
from shared.db import CONNECTION_LOST, Database
from shared.errors import ServiceUnavailable
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.metrics import Metrics
from shared.record_headers import headers_for
from shared.settings import Settings

__all__ = ["LEADER_LOCK", "Relay", "headers_for", "signer_for"]
log = logging.getLogger("twinaid.relay")
LEADER_LOCK = 7424100
_PARTITIONER = DefaultPartitioner()


def signer_for(settings: Settings) -> signing.Signer:
    """The service's key (SIGNING_KEY_FILE); without one, a key that dies with the process
    (nobody pinned it: consumers will not apply what it signs)."""
    if settings.signing_key_file:
        return signing.Signer.from_file(Path(settings.signing_key_file))
    log.warning("no SIGNING_KEY_FILE: events are signed with a key that dies with us")
    return signing.Signer.generate()


class Relay:
    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        db: Database,
        metrics: Metrics,
        producer_factory: Callable[[Settings], AIOKafkaProducer] = kafka.producer,
        signer: signing.Signer | None = None,
    ) -> None:
        self.service = service
        self.topic = settings.topic(service)
        self.settings = settings
        self.db = db
        self.metrics = metrics
        self.producer_factory = producer_factory
        self.is_leader = False
        self.published = 0
        # checkpoints only with a key given by the worker; every published event is signed
        self.checkpoint_signer = signer
        self.signer = signer if signer is not None else signer_for(settings)
        self._wake = asyncio.Event()
        # called when this relay sealed events (the worker wakes its webhook dispatcher)
        self.on_sealed: Callable[[], None] | None = None
        self._checkpointed_at = 0.0
        self._checkpointed_position = 0
        self.sealing = sealer.Watch(metrics)
        self.epoch = kafka.BrokerEpoch(settings, marker=f"{self.topic}.epoch")
        self._epoch_checked_at = -kafka.EPOCH_CHECK_INTERVAL
        self.broker_resets = 0
        # each partition's lane after what this relay last published to it (authenticity.py):
        # it goes on across publish batches, so a consumer draining a backlog checks one
        # signature per run of records it fetched, not one per publish batch; any failure to
        # publish starts every lane again
        self._lanes: dict[int, bytes] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Contend for leadership until `stop` is set; publish while leader."""
        while not stop.is_set():
            try:
                await self._lead(stop)
            except (asyncpg.PostgresError, ServiceUnavailable, *CONNECTION_LOST) as exc:
                log.warning("relay lost its database connection: %s", exc)
            self.is_leader = False
            await _sleep_or_stop(stop, self.settings.relay_poll_interval)

    async def _lead(self, stop: asyncio.Event) -> None:
        lock_conn: asyncpg.Connection = await asyncpg.connect(self.db.url)
        try:
            while not stop.is_set():
                if await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK):
                    break
                await _sleep_or_stop(stop, self.settings.relay_poll_interval)
            if stop.is_set():
                return
            self.is_leader = True
            log.info("relay is the leader for %s", self.topic)
            await lock_conn.add_listener("twinaid_appended", self._notified)
            await self._publish_while_leader(stop, lock_conn)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(lock_conn.close(), 2)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    def wake(self) -> None:
        """Something in this process appended events: look now rather than at the next poll."""
        self._wake.set()

    async def _publish_while_leader(
        self,
        stop: asyncio.Event,
        lock_conn: asyncpg.Connection,
    ) -> None:
        producer: AIOKafkaProducer | None = None
        alive_at = time.monotonic()
        retry = HELD_BACK_RETRY / 2
        try:
            while not stop.is_set():
                if lock_conn.is_closed():
                    return
                self._wake.clear()
                sealed = await self.seal_once()
                if sealed and self.on_sealed is not None:
                    self.on_sealed()
                # committed events left unsealed behind an older transaction still open (one
                # that appends nothing does not wake us when it ends): look again soon rather
                # than at the next poll
                held_back = (
                    sealed < self.settings.relay_batch_size
                    and self.sealing.due()
                    and await lock_conn.fetchval(_UNSEALED_SQL)
                )
                if await self.checkpoint_if_due():
                    self._wake.set()  # seal and publish the checkpoint straight away
                if producer is None:
                    producer = await self._start_producer(stop)
                    if producer is None:
                        continue
                try:
                    due = time.monotonic() - self._epoch_checked_at >= kafka.EPOCH_CHECK_INTERVAL
                    reset = due and await self.check_broker()
                    published = 0 if reset else await self.publish_once(producer)
                except (KafkaError, OSError, TimeoutError) as exc:
                    log.warning("publishing failed, will resend from the checkpoint: %r", exc)
                    await kafka.stop_quietly(producer.stop())
                    producer = None
                    await _sleep_or_stop(stop, 0.5)
                    continue
                if reset:
                    # a new producer: this one's metadata may still hold the partitions of the
                    # topic before it was recreated, and the broker takes records for them
                    await kafka.stop_quietly(producer.stop())
                    producer = None
                    continue
                # A page short of full: everything sealed is published. What commits from now
                # on wakes us (the wake was cleared before sealing), so wait rather than run an
                # empty round of queries first, as it did after every round that found events.
                if published < self.settings.relay_batch_size:
                    # held back: again in 20 ms, then 40, 80... (a long transaction, e.g. a
                    # backup's, is not polled for at 50 Hz), at most the poll interval
                    poll = self.settings.relay_poll_interval
                    retry = min(poll, retry * 2) if held_back else HELD_BACK_RETRY / 2
                    await _wait_any(self._wake, stop, timeout=retry if held_back else poll)
                    # liveness of the lock connection, once a poll interval: if it is gone,
                    # so is our leadership
                    if time.monotonic() - alive_at >= self.settings.relay_poll_interval:
                        await asyncio.wait_for(lock_conn.fetchval("SELECT 1"), 5)
                        alive_at = time.monotonic()
        finally:
            if producer is not None:
                await kafka.stop_quietly(producer.stop())

    async def _start_producer(self, stop: asyncio.Event) -> AIOKafkaProducer | None:
        producer = self.producer_factory(self.settings)
        try:
            await asyncio.wait_for(producer.start(), 15)
            return producer
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("broker unavailable: %r", exc)
            await kafka.stop_quietly(producer.stop())
            await _sleep_or_stop(stop, 1.0)
            return None

    async def check_broker(self) -> bool:
        """If the broker lost this relay's topic (restarted empty), recreate the topic and
        start publishing again from the first event; True when it did."""
        lost = await self.epoch.lost()
        self._epoch_checked_at = time.monotonic()
        if not lost:
            return False
        log.warning("the broker does not hold %s any more: republishing the log", self.topic)
        async with self.db.connection() as conn:
            await conn.execute("DELETE FROM relay_checkpoint WHERE topic = $1", self.topic)
        await kafka.ensure_topics(
            self.settings, [self.topic], partitions=self.settings.kafka_partitions
        )
        await self.epoch.mark()
        self.broker_resets += 1
        return True

    async def seal_once(self) -> int:
        total = 0
        while self.sealing.due():
            try:
                async with self.db.transaction() as conn:
                    n = await PostgresEventStore(conn).seal(limit=self.settings.relay_batch_size)
            except sealer.Unsealable as exc:
                self.sealing.failed(exc)  # reported; retried after a backoff, never fatal
                return total
            self.sealing.passed()
            total += n
            self.metrics.appends.inc(n)
            if n < self.settings.relay_batch_size:
                return total
        return total

    async def checkpoint_if_due(self) -> bool:
        """Append a signed checkpoint of the chain head when the interval has passed and
        something besides our own last checkpoint was sealed since."""
        interval = self.settings.checkpoint_interval
        if self.checkpoint_signer is None or interval <= 0:
            return False
        if self.sealing.blocked is not None:  # never sign a head sealing refused (a cut tail)
            return False
        if time.monotonic() - self._checkpointed_at < interval:
            return False
        async with self.db.transaction() as conn:
            store = PostgresEventStore(conn)
            position, head = await store.head()
            if position <= self._checkpointed_position + 1:
                return False
            stream = f"checkpoint-{self.service}"
            version = await store.current_version(stream)
            now = datetime.now(UTC)
            data = self.checkpoint_signer.checkpoint(
                service=self.service, position=position, head=head, at=now
            )
            await store.append(
                stream_type=signing.STREAM_TYPE,
                stream_id=stream,
                expected_version=version,
                events=[NewEvent(signing.CHECKPOINT, data)],
                metadata=Metadata(actor=f"{self.service}-relay"),
                now=now,
            )
        self._checkpointed_at = time.monotonic()
        self._checkpointed_position = position
        return True

    async def publish_once(self, producer: AIOKafkaProducer) -> int:
        async with self.db.connection() as conn:
            # where we are, in one round trip: a relay round runs on every commit under load
            at = await conn.fetchrow(_WHERE_SQL, self.topic)
            checkpoint, head = int(at["checkpoint"]), int(at["head"] or 0)
            events = await PostgresEventStore(conn).read_all(
                after=checkpoint, limit=self.settings.relay_batch_size
            )
            # read after the events: an event read rewritten in place by a redaction has its
            # log_redactions row committed with it, so it is found here
            redactions = await privacy_migration.carried(conn, [e.position or 0 for e in events])
            previous = bytes(at["previous"]) if checkpoint > 0 and at["previous"] else chain.GENESIS
        self.metrics.relay_lag_events.set(max(0, int(head) - checkpoint))
        if not events:
            self.metrics.relay_lag_seconds.set(0)
            return 0
        age = (datetime.now(UTC) - events[0].recorded_at).total_seconds()
        self.metrics.relay_lag_seconds.set(max(0.0, age))
        started = time.monotonic()
        # the partition of each stream, as the producer would pick it, so that the lanes (one
        # a partition) follow the records a consumer reads of each partition
        partitions = sorted(await producer.partitions_for(self.topic))
        lanes = self._lanes
        self._lanes = {}  # until the whole batch is acknowledged
        pending = []
        for event in events:
            key = event.stream_id.encode()
            partition = _PARTITIONER(key, partitions, partitions)
            headers, lanes[partition] = headers_for(
                self.service,
                event,
                signer=self.signer,
                previous=previous,
                lane=lanes.get(partition, authenticity.LANE_START),
                redaction=redactions.get(event.position or 0),
            )
            previous = event.hash or b""
            pending.append(
                await producer.send(
                    self.topic,
                    key=key,
                    # the data as the chain hashes it (RFC 8785): a consumer checks it as is
                    value=rfc8785.dumps(event.data),
                    headers=headers,
                    partition=partition,
                    timestamp_ms=int(event.recorded_at.timestamp() * 1000),
                )
            )
        timeout = self.settings.relay_poll_interval + 30
        await asyncio.wait_for(asyncio.gather(*pending), timeout)
        self._lanes = lanes
        last = events[-1].position
        async with self.db.connection() as conn:
            await conn.execute(
                "INSERT INTO relay_checkpoint (topic, position) VALUES ($1, $2)"
                " ON CONFLICT (topic) DO UPDATE"
                " SET position = greatest(relay_checkpoint.position, excluded.position),"
                " updated_at = now()",
                self.topic,
                last,
            )
        self.published += len(events)
        self.metrics.relay_published.inc(len(events))
        log.debug(
            "published %d events up to %s in %.3fs", len(events), last, time.monotonic() - started
        )
        return len(events)


async def _wait_any(*events: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


# the relay's checkpoint, the sealed head and the chain hash at the checkpoint (what the next
# event links to)
_WHERE_SQL = """
SELECT c.position AS checkpoint,
       (SELECT position FROM sealer_state) AS head,
       (SELECT hash FROM event_chain WHERE position = c.position) AS previous
FROM (SELECT coalesce((SELECT position FROM relay_checkpoint WHERE topic = $1), 0) AS position) c
"""
HELD_BACK_RETRY = 0.02  # seconds: a look again at events an open transaction held back
_UNSEALED_SQL = (
    "SELECT EXISTS (SELECT 1 FROM events e, sealer_state s"
    " WHERE (e.tx_id, e.id) > (s.last_tx, s.last_id))"
)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
