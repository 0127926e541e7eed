"""Live convoy updates: what the stream sends, and the signal that wakes it.

An update's id is the global log position of the convoy event it reports. Positions go only to
committed events, in commit-safe order (the sealer, shared/event_store.py), so a screen that
resumes after position N misses nothing and sees nothing twice. Streams wake on NOTIFY
`twinaid_sealed` and poll anyway, so a lost notification costs a second at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import FastAPI

from services.shipments import access, queries
from services.shipments import events as ev
from shared.auth import Principal
from shared.deps import ServiceContext

log = logging.getLogger("twinaid.shipments.live")
CHANNEL = "twinaid_sealed"


class SealedSignal:
    """One LISTEN connection per process, waking every open stream when the sealer runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: asyncpg.Connection | None = None
        self._waiters: set[asyncio.Event] = set()

    async def start(self) -> None:
        try:
            self._conn = await asyncpg.connect(self.url)
            await self._conn.add_listener(CHANNEL, self._wake)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("no NOTIFY for live updates, polling only: %r", exc)
            self._conn = None

    async def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None

    def _wake(self, *_: object) -> None:
        for waiter in self._waiters:
            waiter.set()

    async def wait(self, timeout: float) -> None:
        """Until the next sealing, or `timeout` seconds."""
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), timeout)
        finally:
            self._waiters.discard(waiter)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    ctx: ServiceContext = app.state.ctx
    signal = SealedSignal(ctx.settings.database_url)
    await signal.start()
    ctx.extras["sealed"] = signal
    try:
        yield
    finally:
        await signal.stop()


@dataclass(frozen=True, slots=True)
class Filter:
    caller: Principal
    convoy_id: str | None = None
    organisation: str | None = None

    def admits(self, row: asyncpg.Record) -> bool:
        if row["convoy_id"] is None:
            return False
        if self.convoy_id is not None and row["convoy_id"] != self.convoy_id:
            return False
        parties = queries.parties_of(row)
        if self.organisation is not None and self.organisation not in parties.involved:
            return False
        return access.reads_everything(self.caller) or self.caller.organisation in (
            parties.involved
        )


async def head(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT position FROM sealer_state"))


async def updates_after(
    conn: asyncpg.Connection, position: int, who: Filter, *, limit: int = 200
) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """(updates the filter admits, the last position looked at) after `position`."""
    rows = await conn.fetch(
        f"""
        SELECT c.position, e.event_type, e.occurred_at, e.recorded_at, e.data,
               v.convoy_id, v.origin_id, v.destination_id, v.carrier_id, v.donors, v.document
        FROM event_chain c JOIN events e ON e.event_id = c.event_id
        LEFT JOIN convoys v ON e.stream_type = '{ev.STREAM_CONVOY}'
                           AND v.convoy_id = e.data ->> 'convoy_id'
        WHERE c.position > $1 ORDER BY c.position LIMIT $2
        """,
        position,
        limit,
    )
    out = []
    for row in rows:
        if not who.admits(row):
            continue
        parties = queries.parties_of(row)
        document = json.loads(row["document"])
        donors = access.line_donors(document)
        data = access.seen_by(who.caller, parties, json.loads(row["data"]), donors=donors)
        convoy = access.seen_by(who.caller, parties, document, donors=donors)
        out.append(
            (
                row["position"],
                {
                    "position": row["position"],
                    "convoy_id": row["convoy_id"],
                    "event_type": row["event_type"],
                    "occurred_at": row["occurred_at"].isoformat(),
                    "recorded_at": row["recorded_at"].isoformat(),
                    "data": data,
                    "convoy": queries.summary(convoy),
                },
            )
        )
    opened = await access.revealed(conn, [update for _, update in out])
    out = [(pos, update) for (pos, _), update in zip(out, opened, strict=True)]
    return out, (rows[-1]["position"] if rows else position)
