"""A consumer's progress per upstream and catching up from the upstream's HTTP feed.

The runner keeps, per upstream service, the contiguous prefix of positions it applied. When a
later position arrives and the prefix does not move for a grace period (or on request), it
catches up from the upstream's feed, so the system converges even if the broker lost data. A
prefix that keeps moving is not waiting for anything: draining a backlog, the partitions'
records arrive out of position order, so a gap lies beyond the prefix for as long as the drain
lasts, and fetching what the broker is delivering anyway would only slow the drain.

A broker that restarted empty (kafka.BrokerEpoch: our marker topic is gone) holds neither our
committed offsets nor, until the relays republish, the records: the runner then restarts its
Kafka consumer reading every partition from the beginning, and catches up from every upstream's
feed. A layer of the consumer runner (shared/consumer.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace

import httpx

from shared import chain, kafka
from shared.consumer_checks import Batch
from shared.consumer_inbox import Applying
from shared.incoming import parse_feed_event

log = logging.getLogger("twinaid.consumer")

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


class BrokerReset(Exception):
    """The broker lost our marker: restart the Kafka consumer from the beginning."""


class CatchingUp(Applying):
    http: httpx.AsyncClient | None
    epoch: kafka.BrokerEpoch
    _epoch_checked_at: float
    resetting: bool
    rewinding: bool
    broker_resets: int
    # upstream -> (since when its prefix has not moved with a gap beyond it, that prefix)
    _gap_since: dict[str, tuple[float, int]]

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

    async def check_gaps(self, upstreams: Iterable[str] | None = None) -> None:
        """Advance the prefix of `upstreams` (default: every one), and catch up from the feed
        of one whose prefix has not moved for the grace period with a gap beyond it."""
        if self.resync:
            await self.resync_from_feeds()
        now = time.monotonic()
        for upstream in self.handlers if upstreams is None else upstreams:
            contiguous, gap = await self.advance(upstream)
            if not gap:
                self._gap_since.pop(upstream, None)
                continue
            since, at = self._gap_since.get(upstream, (now, contiguous))
            if contiguous > at:  # moving: what lies beyond is on its way
                since, at = now, contiguous
            self._gap_since[upstream] = (since, at)
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
            batch: Batch = []
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
