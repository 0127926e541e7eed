"""The sealer: dense global positions and the hash chain (their verification, `verify`, is
shared/chain_walk.py's).

Run by the relay leader. Only events whose transaction is older than every transaction still
running anywhere on the server (transaction ids are server-wide) are sealed, in (transaction
id, row id) order, so a reader that follows sealed positions never passes an event that could
still commit behind it. See shared/event_store.py for the trade-off.

Positions never go back: a head behind a position the relay already published
(relay_checkpoint) means sealed events were cut from the log's tail (which verify cannot see
when no kept checkpoint reaches them). The sealer then seals nothing, so nothing is chained,
published or signed on top of the cut head, until an operator deals with it (ChainCut).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from shared import chain
from shared.chain_walk import ROW_FAILURES, redactions, verify, why
from shared.metrics import Metrics
from shared.rows import COLUMNS, from_row

__all__ = ["ChainCut", "Unsealable", "Watch", "head", "redactions", "seal", "verify"]
log = logging.getLogger("twinaid.sealer")


async def head(conn: asyncpg.Connection) -> tuple[int, bytes]:
    row = await conn.fetchrow("SELECT position, hash FROM sealer_state")
    return int(row["position"]), bytes(row["hash"])


class Unsealable(Exception):
    """A committed row the chain cannot seal: one written before the database refused such rows
    (events_sealable_v1 in shared/migrations/shared_0001_baseline.sql). Nothing after it can be
    sealed until it is dealt with; every row before it was sealed."""

    def __init__(self, *, position: int, row_id: int, event_id: str, reason: str) -> None:
        super().__init__(f"the event at position {position} cannot be sealed: {reason}")
        self.position = position  # the chain position it would take
        self.row_id = row_id  # events.id
        self.event_id = event_id
        self.reason = reason

    def at(self, position: int) -> Unsealable:
        return Unsealable(
            position=position, row_id=self.row_id, event_id=self.event_id, reason=self.reason
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "row_id": self.row_id,
            "event_id": self.event_id,
            "reason": self.reason,
        }


class ChainCut(Unsealable):
    """The chain's head is behind a position already published: events sealed before were
    removed from the log's tail. Reported and retried as an Unsealable row is (Watch)."""

    def __init__(self, *, head: int, published: int) -> None:
        super().__init__(
            position=head + 1,
            row_id=0,
            event_id="-",
            reason=f"the chain's head is at position {head} but position {published} was"
            " already published: sealed events were removed from the log's tail (bring them"
            " back, or restore a backup); nothing is sealed over a cut head",
        )
        self.head = head
        self.published = published

    def at(self, position: int) -> Unsealable:
        return self


async def seal(conn: asyncpg.Connection, *, limit: int = 1000) -> int:
    """Seal up to `limit` committed events; returns how many. Raises Unsealable when the next
    event in commit order cannot be sealed (the events before it are sealed first)."""
    async with conn.transaction():  # a savepoint when the caller has a transaction
        return await _seal(conn, limit)


async def _seal(conn: asyncpg.Connection, limit: int) -> int:
    state = await conn.fetchrow(
        "SELECT last_tx, last_id, position, hash FROM sealer_state FOR UPDATE"
    )
    published = await conn.fetchval("SELECT max(position) FROM relay_checkpoint")
    if published is not None and published > state["position"]:
        raise ChainCut(head=int(state["position"]), published=int(published))
    # Only transactions older than every one still running: none of them can commit an
    # event that sorts before what we seal now.
    args = (state["last_tx"], state["last_id"], limit)
    unreadable: Unsealable | None = None
    try:
        rows: list[asyncpg.Record] = await conn.fetch(_NEXT_SQL.format(COLUMNS), *args)
    except ROW_FAILURES:
        # a row that cannot even be read: find it, reading the rows one by one
        rows, unreadable = await _readable_rows(conn, args)
    position = int(state["position"])
    previous = bytes(state["hash"])
    positions: list[int] = []
    ids: list[Any] = []
    hashes: list[bytes] = []
    for row in rows:
        try:
            digest = chain.link(previous, from_row(row), position=position + 1)
        except ROW_FAILURES as exc:
            unreadable = Unsealable(
                position=0, row_id=row["id"], event_id=str(row["event_id"]), reason=why(exc)
            )
            break
        position += 1
        previous = digest
        positions.append(position)
        ids.append(row["event_id"])
        hashes.append(previous)
    if not positions:
        if unreadable is not None:
            raise unreadable.at(position + 1)
        return 0
    # the rows before one that cannot be sealed are sealed; the next round reports that one
    await conn.execute(
        "INSERT INTO event_chain (position, event_id, hash)"
        " SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bytea[])",
        positions,
        ids,
        hashes,
    )
    last = rows[len(positions) - 1]
    await conn.execute(
        "UPDATE sealer_state SET last_tx = $1, last_id = $2, position = $3, hash = $4",
        last["tx_id"],
        last["id"],
        position,
        previous,
    )
    return len(positions)


_NEXT_SQL = """
SELECT e.id, e.tx_id, {} FROM events e
WHERE (e.tx_id, e.id) > ($1::xid8, $2::bigint)
  AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY e.tx_id, e.id LIMIT $3
"""


async def _readable_rows(
    conn: asyncpg.Connection, args: tuple[Any, ...]
) -> tuple[list[asyncpg.Record], Unsealable | None]:
    """The next rows up to the first that cannot be read, and that one."""
    keys = await conn.fetch(_NEXT_SQL.format("e.event_id"), *args)
    found: list[asyncpg.Record] = []
    for key in keys:
        try:
            row = await conn.fetchrow(
                f"SELECT e.id, e.tx_id, {COLUMNS} FROM events e WHERE e.id = $1", key["id"]
            )
        except ROW_FAILURES as exc:
            reason = why(exc)
            return found, Unsealable(
                position=0, row_id=key["id"], event_id=str(key["event_id"]), reason=reason
            )
        found.append(row)
    return found, None


class Watch:
    """The relay's view of the sealer: the event it cannot seal, if any, reported in the logs,
    in the metrics (twinaid_sealer_blocked*) and in the worker's health answer. Sealing is then
    retried after a backoff (RETRY_FIRST doubling to RETRY_MAX seconds) while what was sealed
    before it goes on being published; the process never exits on a row."""

    RETRY_FIRST = 1.0
    RETRY_MAX = 60.0

    def __init__(self, metrics: Metrics, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.clock = clock
        self.blocked: Unsealable | None = None
        self.since: datetime | None = None
        self.attempts = 0
        self._delay = self.RETRY_FIRST
        self._retry_at = 0.0

    def due(self) -> bool:
        return self.blocked is None or self.clock() >= self._retry_at

    def failed(self, exc: Unsealable) -> None:
        again = self.blocked is not None and self.blocked.event_id == exc.event_id
        if not again:
            self.since = datetime.now(UTC)
            self.attempts = 0
            self._delay = self.RETRY_FIRST
            self.metrics.sealer_blocked.clear()
            self.metrics.sealer_blocked.labels(
                service=self.metrics.service,
                position=str(exc.position),
                event_id=exc.event_id,
                reason=exc.reason[:200],
            ).set(1)
        self.blocked = exc
        self.attempts += 1
        self.metrics.sealer_blocked_position.set(exc.position)
        self.metrics.sealer_failures.inc()
        if isinstance(exc, ChainCut):
            (log.warning if again else log.error)(
                "cannot seal: %s; attempt %d, next in %.0f s",
                exc.reason,
                self.attempts,
                self._delay,
            )
        else:
            (log.warning if again else log.error)(
                "cannot seal the event at position %d (events.id %d, event %s): %s; nothing after"
                " it is sealed or published until it is dealt with; attempt %d, next in %.0f s",
                exc.position,
                exc.row_id,
                exc.event_id,
                exc.reason,
                self.attempts,
                self._delay,
            )
        self._retry_at = self.clock() + self._delay
        self._delay = min(self._delay * 2, self.RETRY_MAX)

    def passed(self) -> None:
        """A round of sealing went through: the event that blocked it, if any, is sealed."""
        if self.blocked is None:
            return
        if isinstance(self.blocked, ChainCut):
            log.warning(
                "the chain's head is no longer behind what was published: sealing again after"
                " %d failed attempts",
                self.attempts,
            )
        else:
            log.warning(
                "the event at position %d (event %s) was sealed after %d failed attempts",
                self.blocked.position,
                self.blocked.event_id,
                self.attempts,
            )
        self.blocked = None
        self.since = None
        self.attempts = 0
        self.metrics.sealer_blocked.clear()
        self.metrics.sealer_blocked_position.set(0)

    def as_dict(self) -> dict[str, Any]:
        if self.blocked is None:
            return {"blocked": False}
        return {
            "blocked": True,
            **self.blocked.as_dict(),
            "since": self.since.isoformat() if self.since else None,
            "attempts": self.attempts,
            "next_attempt_in_seconds": round(max(0.0, self._retry_at - self.clock()), 1),
        }
