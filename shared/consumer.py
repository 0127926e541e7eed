"""The consumer runner: idempotent handlers over other services' topics.

For each message: parse it, then in ONE transaction record (consumer, event id) in the inbox and
run the handler; the Kafka offset is committed only after that transaction. A message that cannot
be parsed, or whose handler still fails after bounded retries, goes to the dead-letter table and
the `<topic>.dlq` topic with the reason, and the consumer goes on.

The runner also keeps, per upstream service, the contiguous prefix of positions it applied. When
a later position arrives and the gap does not fill within a grace period (or on request), it
catches up from the upstream's HTTP feed, so the system converges even if the broker lost data.

A broker that restarted empty (kafka.BrokerEpoch: our marker topic is gone) holds neither our
committed offsets nor, until the relays republish, the records: the runner then restarts its
Kafka consumer reading every partition from the beginning (what the old one committed there
may be a stale offset of the old broker), and catches up from every upstream's feed. The inbox
drops what was already applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from shared import authenticity, chain, kafka, published
from shared.db import CONNECTION_LOST, Database
from shared.errors import ServiceUnavailable
from shared.incoming import (
    Handler,
    Implausible,
    Incoming,
    Unparseable,
    header_map,
    parse_feed_event,
    parse_record,
)
from shared.keys import KEY_CHANGED, KeyRing, UntrustedKey
from shared.metrics import Metrics
from shared.settings import Settings

log = logging.getLogger("twinaid.consumer")
# not the message's fault: retry the batch later rather than park the message
_DATABASE_TROUBLE: tuple[type[Exception], ...] = (ServiceUnavailable, *CONNECTION_LOST)
__all__ = ["ConsumerRunner", "Handler", "Incoming", "parse_feed_event", "parse_record"]


# The contiguous prefix of applied upstream positions: from the saved one, as far as the inbox
# holds every next position (positions are unique a consumer and upstream, so the k-th row
# after the saved prefix continues it exactly when its position is prefix + k).
ADVANCE_SQL = """
WITH saved AS (
    SELECT coalesce((SELECT position FROM consumer_progress
                     WHERE consumer = $1 AND upstream = $2), 0) AS start
), ahead AS (
    SELECT i.position, row_number() OVER (ORDER BY i.position) AS k
    FROM inbox i, saved
    WHERE i.consumer = $1 AND i.upstream = $2 AND i.position > saved.start
    ORDER BY i.position
    LIMIT 100000
), reached AS (
    SELECT saved.start,
           coalesce((SELECT max(a.position) FROM ahead a WHERE a.position = saved.start + a.k),
                    saved.start) AS contiguous,
           (SELECT count(*) FROM ahead) AS ahead
    FROM saved
), progress AS (
    INSERT INTO consumer_progress (consumer, upstream, position)
    SELECT $1, $2, contiguous FROM reached WHERE contiguous > start
    ON CONFLICT (consumer, upstream) DO UPDATE
        SET position = greatest(consumer_progress.position, excluded.position),
            updated_at = now()
)
SELECT start, contiguous, ahead FROM reached
"""


class _Duplicate(Exception):
    pass


class BrokerReset(Exception):
    """The broker lost our marker: restart the Kafka consumer from the beginning."""


class _RewindIfReset(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ConsumerRunner, consumer: AIOKafkaConsumer) -> None:
        self.runner = runner
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self.runner.rewinding and assigned:
            await self.consumer.seek_to_beginning(*assigned)


class ConsumerRunner:
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
        self._gap_since: dict[str, float] = {}
        self._dlq: AIOKafkaProducer | None = None
        # the event ids `checked` found applied at their own positions (its last call)
        self._seen_at_positions: set[str] = set()
        group = f"{settings.kafka_topic_prefix}{service}.consumers"
        self.epoch = kafka.BrokerEpoch(settings, marker=f"{group}.epoch")
        self._epoch_checked_at = -kafka.EPOCH_CHECK_INTERVAL
        # after a broker reset: upstreams still to catch up from their feeds, whether the
        # group's offsets are still to be rewound (until a commit after the rewind)
        self.resetting = False
        self.rewinding = False
        self.resync: set[str] = set()
        self.broker_resets = 0

    # -- applying ------------------------------------------------------------------------

    async def apply(self, incoming: Incoming) -> bool:
        """Apply once, in its own transaction: False when it was already applied."""
        try:
            async with self.db.transaction() as conn:
                fresh = await self._apply_in(conn, incoming)
        except _Duplicate:
            fresh = False
        self._count(applied=int(fresh), duplicates=int(not fresh))
        return fresh

    async def apply_batch(
        self,
        batch: list[tuple[Incoming, ConsumerRecord[bytes, bytes] | None]],
        *,
        seen: set[str] | None = None,
    ) -> None:
        """Apply a fetched batch in ONE transaction (one commit, not one per event): one query
        for which events the inbox already holds, the handlers in order, then one insert of
        the new inbox rows. If any handler fails, or a replica raced us to an event, nothing
        of the batch is kept and each event goes the careful way: its own transaction,
        bounded retries, dead letters. `seen`: the batch's event ids the inbox held when
        `checked` looked (it reads the inbox at each event's position anyway): given, the
        inbox is not read again; a replica that applied one meanwhile is caught by the
        inbox insert's count, as ever."""
        applied = duplicates = 0
        try:
            async with self.db.transaction() as conn:
                if seen is None:
                    seen = set(
                        await conn.fetchval(
                            "SELECT coalesce(array_agg(event_id::text), '{}') FROM inbox"
                            " WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
                            self.name,
                            [incoming.event_id for incoming, _ in batch],
                        )
                    )
                else:
                    seen = set(seen)
                fresh: list[Incoming] = []
                for incoming, _ in batch:
                    if str(incoming.event_id) in seen:  # applied before, or twice in the batch
                        duplicates += 1
                        continue
                    seen.add(str(incoming.event_id))
                    handler = self.handlers.get(incoming.upstream, {}).get(incoming.event_type)
                    if handler is not None:
                        await handler(conn, incoming)
                    await self._follow_key_change(conn, incoming)
                    fresh.append(incoming)
                if fresh and await self._remember(conn, fresh) != len(fresh):
                    raise _Duplicate  # a replica applied one of them meanwhile
                applied = len(fresh)
        except _DATABASE_TROUBLE:
            raise
        except Exception:
            for incoming, record in batch:
                await self.apply_with_retries(incoming, record)
            return
        self._count(applied=applied, duplicates=duplicates)

    async def _remember(self, conn: asyncpg.Connection, applied: list[Incoming]) -> int:
        """The inbox rows of events just applied; how many were new."""
        written: int = await conn.fetchval(
            "WITH written AS ("
            " INSERT INTO inbox (consumer, event_id, upstream, position, hash)"
            " SELECT $1, e, u, p, h"
            " FROM unnest($2::uuid[], $3::text[], $4::bigint[], $5::bytea[]) AS t(e, u, p, h)"
            " ON CONFLICT DO NOTHING RETURNING 1"
            ") SELECT count(*) FROM written",
            self.name,
            [i.event_id for i in applied],
            [i.upstream for i in applied],
            [i.position for i in applied],
            [i.chain_hash for i in applied],
        )
        return written

    async def _apply_in(self, conn: asyncpg.Connection, incoming: Incoming) -> bool:
        """The inbox row is written last: the handler loads what it needs before the
        transaction's first write, so events it appends sort after those they were decided on
        (see shared/event_store.py on commit order). Raises _Duplicate when another replica
        applied the event meanwhile (the caller must roll back the handler's effect)."""
        seen = await conn.fetchval(
            "SELECT true FROM inbox WHERE consumer = $1 AND event_id = $2",
            self.name,
            incoming.event_id,
        )
        if seen:
            return False
        handler = self.handlers.get(incoming.upstream, {}).get(incoming.event_type)
        if handler is not None:
            await handler(conn, incoming)
        await self._follow_key_change(conn, incoming)
        fresh = await conn.fetchval(
            "INSERT INTO inbox (consumer, event_id, upstream, position, hash)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
            self.name,
            incoming.event_id,
            incoming.upstream,
            incoming.position,
            incoming.chain_hash,
        )
        if not fresh:
            raise _Duplicate
        return True

    def _count(self, *, applied: int, duplicates: int) -> None:
        self.applied += applied
        self.duplicates += duplicates
        if applied and self.after_commit is not None:
            self.after_commit()

    async def apply_with_retries(
        self, incoming: Incoming, record: ConsumerRecord[bytes, bytes] | None
    ) -> None:
        attempts = max(1, self.settings.consumer_max_retries)
        for attempt in range(1, attempts + 1):
            try:
                await self.apply(incoming)
                return
            except _DATABASE_TROUBLE:
                raise  # the database is down: not the message's fault; retry the batch later
            except Implausible as exc:
                await self.quarantine(record, incoming, exc.reason, authentic=True)
                return
            except Exception as exc:
                if attempt == attempts:
                    await self.dead_letter(
                        record, f"handler failed {attempts} times: {exc!r}", incoming=incoming
                    )
                    return
                await asyncio.sleep(0.05 * 2**attempt)

    # -- checking what arrives ----------------------------------------------------------

    async def _follow_key_change(self, conn: asyncpg.Connection, incoming: Incoming) -> None:
        """An upstream's announced key change, applied: trusted from now on, and kept, so that
        a restarted consumer trusts it too (load_key_changes)."""
        if incoming.event_type != KEY_CHANGED:
            return
        with contextlib.suppress(UntrustedKey):
            self.ring.announce(incoming.upstream, incoming.data)
        await conn.execute(
            "INSERT INTO consumer_key_changes (consumer, upstream, position, announcement)"
            " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT DO NOTHING",
            self.name,
            incoming.upstream,
            incoming.position,
            json.dumps(dict(incoming.data)),
        )

    async def load_key_changes(self) -> None:
        """Trust again the key changes this consumer applied before (each still has to be
        signed by a key trusted by then: pinned, or announced before it)."""
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT upstream, announcement FROM consumer_key_changes WHERE consumer = $1"
                " ORDER BY upstream, position",
                self.name,
            )
        for row in rows:
            with contextlib.suppress(UntrustedKey):
                self.ring.announce(row["upstream"], json.loads(row["announcement"]))

    async def checked(
        self,
        batch: list[tuple[Incoming, ConsumerRecord[bytes, bytes] | None]],
        *,
        from_feed: bool = False,
        signed_head: object = None,
    ) -> list[tuple[Incoming, ConsumerRecord[bytes, bytes] | None]]:
        """The events of `batch` that pass every check, in order; the others quarantined.
        From Kafka: chain link and signature (shared/authenticity.py). From the feed: the
        chain link to the previous position (set by `catch_up`) for each event, and the page's
        `signed_head` for the last, signed by a key trusted for the upstream. Both: against
        what was applied (a position taken by another event, a break of the link to the
        applied previous position) and the upstream's published schema."""
        failed: dict[int, str] = {}
        parked: dict[int, str] = {}
        self._seen_at_positions = set()
        if self.settings.consumer_verify:
            if from_feed:
                for n, (incoming, _) in enumerate(batch):
                    if incoming.previous_hash is not None and (
                        problem := authenticity.link_problem(incoming, ring=self.ring)
                    ):
                        failed[n] = f"from the feed: {problem}"
                if batch and not failed:
                    last = batch[-1][0]
                    # a key the page's own events announce may sign its head (each
                    # announcement is signed by a key trusted before it)
                    authenticity.follow_key_changes(self.ring, [i for i, _ in batch])
                    problem = authenticity.head_problem(
                        self.ring,
                        last.upstream,
                        signed_head,
                        position=last.position,
                        chain_hash=last.chain_hash,
                    )
                    if problem is not None:  # nothing of the page is shown authentic
                        failed[0] = f"from the feed: {problem}"
            else:
                members: dict[str, list[int]] = {}
                for n, (incoming, _) in enumerate(batch):
                    members.setdefault(incoming.upstream, []).append(n)
                for indexes in members.values():
                    found = authenticity.verify(self.ring, [batch[n][0] for n in indexes])
                    failed.update({indexes[k]: reason for k, reason in found.items()})
            await self._against_applied(batch, failed)
        for n, (incoming, _) in enumerate(batch):
            contract = self.contracts.get(incoming.upstream)
            if n in failed or contract is None:
                continue
            problem = contract.problem(incoming.event_type, incoming.schema_version, incoming.data)
            if problem is not None:
                parked[n] = f"breaks the published schema of {incoming.event_type}: {problem}"
        if from_feed and failed:  # what follows a break of the chain cannot be checked
            first = min(failed)
            failed = {first: failed[first]}
            batch = batch[: first + 1]
        passed = []
        for n, (incoming, record) in enumerate(batch):
            if n in failed:
                await self.quarantine(record, incoming, failed[n])
            elif n in parked:
                await self.quarantine(record, incoming, parked[n], authentic=True)
            else:
                passed.append((incoming, record))
        return passed

    async def _against_applied(
        self,
        batch: list[tuple[Incoming, ConsumerRecord[bytes, bytes] | None]],
        failed: dict[int, str],
    ) -> None:
        """A position applied as another event is a clash, never a duplicate; an event whose
        previous hash is not the one applied at the position before does not belong."""
        wanted = [
            (i.upstream, p)
            for n, (i, _) in enumerate(batch)
            if n not in failed
            for p in (i.position, i.position - 1)
        ]
        if not wanted:
            return
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT upstream, position, event_id, hash FROM inbox WHERE consumer = $1"
                " AND (upstream, position) IN (SELECT * FROM unnest($2::text[], $3::bigint[]))",
                self.name,
                [u for u, _ in wanted],
                [p for _, p in wanted],
            )
        held = {(r["upstream"], r["position"]): (r["event_id"], r["hash"]) for r in rows}
        for n, (incoming, _) in enumerate(batch):
            if n in failed:
                continue
            at = held.get((incoming.upstream, incoming.position))
            if at is not None:
                if at[0] != incoming.event_id:
                    failed[n] = f"position {incoming.position} was applied as event {at[0]}"
                else:
                    self._seen_at_positions.add(str(incoming.event_id))
                continue
            before = held.get((incoming.upstream, incoming.position - 1))
            if (
                before is not None
                and before[1] is not None
                and incoming.previous_hash is not None
                and bytes(before[1]) != incoming.previous_hash
            ):
                failed[n] = f"does not link to position {incoming.position - 1} as applied"

    async def quarantine(
        self,
        record: ConsumerRecord[bytes, bytes] | None,
        incoming: Incoming | None,
        reason: str,
        *,
        upstream: str | None = None,
        authentic: bool = False,
    ) -> None:
        """Keep a message that failed a check, with the reason, in the quarantine table and
        the `.dlq` topic. An authentic event (its upstream signed it, but it is implausible)
        is parked: its position counts as handled. Anything else is not applied and its
        position not taken: the authentic event is fetched from the upstream's feed."""
        source = incoming.upstream if incoming is not None else upstream or "unknown"
        topic = record.topic if record is not None else self.settings.topic(source)
        headers = header_map(record) if record is not None else {}
        position: int | None = incoming.position if incoming is not None else None
        if position is None:
            with contextlib.suppress(KeyError, ValueError):
                position = int(headers["ce_position"])
        if record is not None:
            value = record.value
        else:
            value = json.dumps(dict(incoming.data) if incoming else {}).encode()
        async with self.db.transaction() as conn:
            await conn.execute(
                'INSERT INTO quarantine (consumer, upstream, topic, partition, "offset",'
                " position, event_id, key, value, headers, reason, authentic)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12)",
                self.name,
                source,
                topic,
                record.partition if record else None,
                record.offset if record else None,
                position,
                str(incoming.event_id) if incoming else headers.get("ce_id"),
                record.key if record else None,
                value,
                json.dumps(headers),
                reason,
                authentic,
            )
            if authentic and incoming is not None:
                await conn.execute(
                    "INSERT INTO inbox (consumer, event_id, upstream, position, hash)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    self.name,
                    incoming.event_id,
                    incoming.upstream,
                    incoming.position,
                    incoming.chain_hash,
                )
        self.quarantined += 1
        self.metrics.quarantined.labels(service=self.name, upstream=source).inc()
        log.warning("quarantined a message from %s at position %s: %s", topic, position, reason)
        if record is not None and not authentic and source in self.handlers:
            self.resync.add(source)  # the authentic event, from the upstream's feed
        await self._to_dlq(record, reason)

    async def _to_dlq(self, record: ConsumerRecord[bytes, bytes] | None, reason: str) -> None:
        if self._dlq is not None and record is not None:
            with contextlib.suppress(KafkaError, TimeoutError):
                await asyncio.wait_for(
                    self._dlq.send_and_wait(
                        f"{record.topic}.dlq",
                        key=record.key,
                        value=record.value,
                        headers=[*(record.headers or ()), ("twinaid_dlq_reason", reason.encode())],
                    ),
                    10,
                )

    async def dead_letter(
        self,
        record: ConsumerRecord[bytes, bytes] | None,
        reason: str,
        *,
        incoming: Incoming | None = None,
    ) -> None:
        topic = (
            record.topic
            if record is not None
            else (self.settings.topic(incoming.upstream) if incoming else "unknown")
        )
        headers = header_map(record) if record is not None else {}
        async with self.db.transaction() as conn:
            await conn.execute(
                'INSERT INTO dead_letters (consumer, topic, partition, "offset", key, value,'
                " headers, reason) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)",
                self.name,
                topic,
                record.partition if record else None,
                record.offset if record else None,
                record.key if record else None,
                record.value
                if record
                else json.dumps(dict(incoming.data) if incoming else {}).encode(),
                json.dumps(headers),
                reason,
            )
            if incoming is not None:
                # Parked, not lost: the position counts as handled so catching up stops here.
                await conn.execute(
                    "INSERT INTO inbox (consumer, event_id, upstream, position)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    self.name,
                    incoming.event_id,
                    incoming.upstream,
                    incoming.position,
                )
        self.dead += 1
        self.metrics.dead_letters.inc()
        log.warning("dead-lettered a message from %s", topic, extra={"reason": reason})
        await self._to_dlq(record, reason)

    # -- progress and catching up --------------------------------------------------------

    async def advance(self, upstream: str) -> tuple[int, bool]:
        """Move the contiguous prefix forward; returns it and whether a gap lies beyond it.
        One statement (it runs after every fetch): replicas that advance at the same time
        each save what they found, and the saved prefix only ever grows."""
        async with self.db.connection() as conn:
            row = await conn.fetchrow(ADVANCE_SQL, self.name, upstream)
        assert row is not None
        start, contiguous, ahead = row["start"], row["contiguous"], row["ahead"]
        self.metrics.consumer_lag(self.name, upstream).set(ahead - (contiguous - start))
        return contiguous, ahead > contiguous - start

    def begin_reset(self) -> None:
        log.warning("the broker restarted empty: rewinding and catching up from the feeds")
        self.resetting = self.rewinding = True
        self.resync = set(self.handlers)
        self.broker_resets += 1

    async def check_broker(self, *, running: bool) -> None:
        """Every EPOCH_CHECK_INTERVAL: a broker found reset begins a reset (raising BrokerReset
        when a Kafka consumer is running, for its positions are the old broker's); once every
        feed was caught up and the rewound offsets committed, the broker is marked as ours."""
        if time.monotonic() - self._epoch_checked_at < kafka.EPOCH_CHECK_INTERVAL:
            return
        lost = await self.epoch.lost()
        self._epoch_checked_at = time.monotonic()
        if not lost:
            return
        if not self.resetting:
            self.begin_reset()
            if running:
                raise BrokerReset
        elif not self.resync and not self.rewinding:
            await self.epoch.mark()
            self.resetting = False

    async def resync_from_feeds(self) -> None:
        for upstream in sorted(self.resync):
            try:
                await self.catch_up(upstream)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("catching up from %s failed, will retry: %r", upstream, exc)
                continue
            self.resync.discard(upstream)

    async def check_gaps(self) -> None:
        if self.resync:
            await self.resync_from_feeds()
        now = time.monotonic()
        for upstream in self.handlers:
            _, gap = await self.advance(upstream)
            if not gap:
                self._gap_since.pop(upstream, None)
                continue
            since = self._gap_since.setdefault(upstream, now)
            if now - since >= self.settings.consumer_gap_grace:
                log.warning("a gap in %s did not fill: catching up from its feed", upstream)
                try:
                    await self.catch_up(upstream)
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    log.warning("catching up from %s failed, will retry: %r", upstream, exc)
                    continue
                self._gap_since.pop(upstream, None)

    async def catch_up(self, upstream: str) -> int:
        """Apply everything after the contiguous prefix from the upstream's HTTP feed."""
        base = self.settings.upstream_feeds.get(upstream)
        if base is None or self.http is None:
            log.warning("no feed configured for %s: cannot catch up", upstream)
            return 0
        headers = {"Authorization": f"Bearer {self.settings.feed_api_key or ''}"}
        applied = 0
        after, _ = await self.advance(upstream)
        previous = chain.GENESIS if after == 0 else await self._applied_hash(upstream, after)
        while True:
            response = await self.http.get(
                f"{base}/v1/events",
                params={"after": after, "limit": 500},
                headers=headers,
                timeout=10,
            )
            response.raise_for_status()
            page = response.json()
            before = self.applied
            batch: list[tuple[Incoming, ConsumerRecord[bytes, bytes] | None]] = []
            for raw in page["events"]:
                incoming = replace(parse_feed_event(upstream, raw), previous_hash=previous)
                previous = incoming.chain_hash
                batch.append((incoming, None))
            passed = await self.checked(batch, from_feed=True, signed_head=page.get("signed_head"))
            if passed:
                await self.apply_batch(passed)
            applied += self.applied - before
            if not page["events"] or len(passed) < len(batch):
                break
            after = page["next_after"]
        await self.advance(upstream)
        return applied

    async def _applied_hash(self, upstream: str, position: int) -> bytes | None:
        async with self.db.connection() as conn:
            found = await conn.fetchval(
                "SELECT hash FROM inbox WHERE consumer = $1 AND upstream = $2 AND position = $3",
                self.name,
                upstream,
                position,
            )
        return bytes(found) if found is not None else None

    # -- the Kafka loop ------------------------------------------------------------------

    async def handle_batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """The upstream of a message is the topic it came from, never one of its headers."""
        batch: list[tuple[Incoming, ConsumerRecord[bytes, bytes] | None]] = []
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
            # verified: checked read the inbox at every event's position, its own included
            seen = self._seen_at_positions if self.settings.consumer_verify else None
            await self.apply_batch(batch, seen=seen)

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
                    if records:
                        await self.handle_batch(records)
                    # gaps change only with records; one left open, or a resync, is looked
                    # at every round; and every GAP_CHECK_INTERVAL in any case
                    if records or self.resync or self._gap_since or now - gaps_at > 10.0:
                        await self.check_gaps()
                        gaps_at = now
                except (ServiceUnavailable, asyncpg.PostgresError, *CONNECTION_LOST) as exc:
                    # The database's trouble, not the broker's: keep our place in the group
                    # (leaving and joining again costs seconds) and fetch the batch again.
                    log.warning("database unavailable, will retry the batch: %r", exc)
                    for tp, part in batches.items():
                        if part:
                            consumer.seek(tp, part[0].offset)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
                    continue
                if records:
                    # After the database commits, never before.
                    await consumer.commit()
                    self.rewinding = False
                await self.check_broker(running=True)
        finally:
            await kafka.stop_quietly(consumer.stop())
            await kafka.stop_quietly(self._dlq.stop())
            self._dlq = None
