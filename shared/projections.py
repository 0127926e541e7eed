"""Read models: derived from events in the same transaction, rebuildable from the log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Unpack

import asyncpg

from shared.event_store import Append, PostgresEventStore
from shared.events import RecordedEvent
from shared.rows import COLUMNS, from_row

Apply = Callable[[asyncpg.Connection, RecordedEvent], Awaitable[None]]
ApplyBatch = Callable[[asyncpg.Connection, Sequence[RecordedEvent]], Awaitable[None]]
REBUILD_BATCH = 500  # events handed to a projection at once while rebuilding


@dataclass(frozen=True)
class Projection:
    """`handlers` by event type, one event at a time. `batch`, when given, takes the events
    of those types in order, several at once, and must leave the same rows as the handlers
    would (rebuilds and replays hand over hundreds at a time)."""

    name: str
    tables: tuple[str, ...]
    handlers: Mapping[str, Apply]
    batch: ApplyBatch | None = None

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        if self.batch is not None:
            mine = [e for e in events if e.event_type in self.handlers]
            if mine:
                await self.batch(conn, mine)
            return
        for event in events:
            handler = self.handlers.get(event.event_type)
            if handler is not None:
                await handler(conn, event)


async def project(
    conn: asyncpg.Connection, projections: Sequence[Projection], events: Sequence[RecordedEvent]
) -> None:
    for projection in projections:
        await projection.apply(conn, events)


async def record(
    conn: asyncpg.Connection, projections: Sequence[Projection], **append: Unpack[Append]
) -> list[RecordedEvent]:
    """Append to `<stream_type>-<stream_id>` (`stream_id` the record's id) and project, in the
    caller's transaction. No events: nothing happened (an idempotent no-op)."""
    append["stream_id"] = f"{append['stream_type']}-{append['stream_id']}"
    recorded = await PostgresEventStore(conn).append(**append)
    await project(conn, projections, recorded)
    return recorded


async def rebuild(
    conn: asyncpg.Connection,
    projections: Sequence[Projection],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Empty every read model and replay the whole log into it; returns events replayed
    (`progress` hears the count after each batch).

    Runs in one transaction holding a SHARE lock on `events`: writers wait, readers do not.
    """
    async with conn.transaction():
        await conn.execute("LOCK TABLE events IN SHARE MODE")
        tables = [t for p in projections for t in p.tables]
        if tables:
            await conn.execute(f"TRUNCATE {', '.join(tables)}")
        count = 0
        # sealed events in position order, then the not yet sealed in commit-safe order
        cursor = await conn.cursor(
            f"""
            SELECT {COLUMNS} FROM events e LEFT JOIN event_chain c ON c.event_id = e.event_id
            ORDER BY c.position NULLS LAST, e.tx_id, e.id
            """
        )
        while page := await cursor.fetch(REBUILD_BATCH):
            await project(conn, projections, [from_row(row) for row in page])
            count += len(page)
            if progress is not None:
                progress(count)
    return count
