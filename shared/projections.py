"""Read models: derived from events in the same transaction, rebuildable from the log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import Any, Unpack

import asyncpg

from shared.event_store import Append, PostgresEventStore
from shared.events import RecordedEvent
from shared.rows import COLUMNS, from_row

Apply = Callable[[asyncpg.Connection, RecordedEvent], Awaitable[None]]
ApplyBatch = Callable[[asyncpg.Connection, Sequence[RecordedEvent]], Awaitable[None]]
# events handed to a projection at once while rebuilding: a set-based projection writes each
# table once per page, so the more a page holds the less each event costs (a page of 5,000
# decoded events takes a few megabytes)
REBUILD_BATCH = 5_000


# a rebuild's batch: entered once per rebuild on its connection, handed every page in order, it
# may hold rows back until it exits (what records still change), as long as the rows it leaves
# then are the ones `batch` would have left
Rebuilding = Callable[[asyncpg.Connection], AbstractAsyncContextManager[ApplyBatch]]


@dataclass(frozen=True)
class Projection:
    """`handlers` by event type, one event at a time. `batch`, when given, takes the events
    of those types in order, several at once, and must leave the same rows as the handlers
    would (rebuilds and replays hand over thousands at a time). `rebuilding`, when given,
    takes a rebuild's pages instead of `batch` (see Rebuilding)."""

    name: str
    tables: tuple[str, ...]
    handlers: Mapping[str, Apply]
    batch: ApplyBatch | None = None
    rebuilding: Rebuilding | None = None

    @classmethod
    def batched(
        cls,
        name: str,
        tables: tuple[str, ...],
        event_types: Iterable[str],
        batch: ApplyBatch,
        rebuilding: Rebuilding | None = None,
    ) -> Projection:
        """A projection whose rules are all in its `batch`: an event alone is a batch of one."""

        async def one(conn: asyncpg.Connection, event: RecordedEvent) -> None:
            await batch(conn, [event])

        return cls(name, tables, dict.fromkeys(event_types, one), batch, rebuilding)

    async def apply(
        self,
        conn: asyncpg.Connection,
        events: Sequence[RecordedEvent],
        batch: ApplyBatch | None = None,
    ) -> None:
        """The events of this projection's types, through `batch` (default: its own), else
        each through its handler."""
        batch = batch if batch is not None else self.batch
        if batch is not None:
            mine = [e for e in events if e.event_type in self.handlers]
            if mine:
                await batch(conn, mine)
            return
        for event in events:
            handler = self.handlers.get(event.event_type)
            if handler is not None:
                await handler(conn, event)


def pg_array(values: Iterable[object] | None) -> str | None:
    """The text form of a one-dimensional array (each element quoted, None as NULL), for
    `write_rows`: a page's rows cannot pass their arrays as one array of arrays (they are not
    all the same length), so each goes as its text and is cast back on the server."""
    if values is None:
        return None
    items = (
        "NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
        for v in values
    )
    return "{" + ",".join(items) + "}"


async def write_rows(
    conn: asyncpg.Connection,
    table: str,
    columns: Mapping[str, str],
    rows: Sequence[Sequence[object]],
    conflict: str = "",
) -> None:
    """Insert `rows` into `table` in one statement, however many: INSERT ... SELECT FROM
    unnest(one array per column) followed by `conflict` (e.g. `ON CONFLICT (id) DO NOTHING`).
    `columns` maps each column, in the rows' order, to its SQL type; an array column (`text[]`)
    takes a sequence of its elements (or None), a `json`/`jsonb` column its JSON text. The
    statement's text depends only on the arguments, so the connection prepares it once."""
    if not rows:
        return
    params: list[str] = []
    selects: list[str] = []
    arrays: list[list[object]] = []
    for i, type_ in enumerate(columns.values()):
        values = [row[i] for row in rows]
        if type_.endswith("[]"):  # each row's array as its text
            arrays.append([pg_array(v) for v in values])  # type: ignore[arg-type]
        else:
            arrays.append(values)
        as_text = type_.endswith("[]") or type_ in ("json", "jsonb")
        params.append(f"${i + 1}::text[]" if as_text else f"${i + 1}::{type_}[]")
        selects.append(f"c{i}::{type_}" if as_text else f"c{i}")
    aliases = ", ".join(f"c{i}" for i in range(len(columns)))
    await conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(selects)}"
        f" FROM unnest({', '.join(params)}) AS u({aliases}) {conflict}",
        *arrays,
    )


Row = dict[str, Any]


async def fold_rows(
    conn: asyncpg.Connection,
    events: Sequence[tuple[RecordedEvent, Any]],
    *,
    key: Callable[[Any], str],
    read: str,
    opened: Callable[[RecordedEvent, Any], Row | None],
    evolve: Callable[[Row, RecordedEvent, Any], None],
    start: Callable[[asyncpg.Record], Row] = dict,
) -> list[Row]:
    """The rows of the records `events` (each with its decoded payload, in order) touch, each
    folded as one event at a time would: `key(payload)` names the record; `read` selects the
    existing rows (`$1::text[]` their keys, the key first) and `start` makes each a row; a
    record's opening event (`opened` returns the row it makes, None for any other) makes the row
    unless it exists, and every other event `evolve`s the row, only when the row is older than
    it (its `version` below the event's). Returns the rows that changed, for one statement
    (`write_rows`) that must leave a row as it is unless its version is below the new one's:
    two round trips however many events, one when they all open their records (a batch of
    registrations: no row is read, an existing one stays as it is)."""
    made = [opened(event, payload) for event, payload in events]
    rows: dict[str, Row] = {}
    if any(new is None for new in made):
        keys = list(dict.fromkeys(key(payload) for _, payload in events))
        rows = {r[0]: start(r) for r in await conn.fetch(read, keys)}
    changed: dict[str, None] = {}
    for (event, payload), new in zip(events, made, strict=True):
        k = key(payload)
        row = rows.get(k)
        if new is not None:
            if row is None:  # else opened already
                rows[k] = new
                changed[k] = None
        elif row is not None and row["version"] < event.stream_version:  # else applied
            evolve(row, event, payload)
            changed[k] = None
    return [rows[k] for k in changed]


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
    async with conn.transaction(), AsyncExitStack() as rebuilding:
        await conn.execute("LOCK TABLE events IN SHARE MODE")
        tables = [t for p in projections for t in p.tables]
        if tables:
            await conn.execute(f"TRUNCATE {', '.join(tables)}")
        # what holds rows back writes them when the stack exits, before the commit
        batches = [
            None
            if p.rebuilding is None
            else await rebuilding.enter_async_context(p.rebuilding(conn))
            for p in projections
        ]
        count = 0
        # sealed events in position order, then the not yet sealed in commit-safe order
        cursor = await conn.cursor(
            f"""
            SELECT {COLUMNS} FROM events e LEFT JOIN event_chain c ON c.event_id = e.event_id
            ORDER BY c.position NULLS LAST, e.tx_id, e.id
            """
        )
        while page := await cursor.fetch(REBUILD_BATCH):
            events = [from_row(row) for row in page]
            for projection, batch in zip(projections, batches, strict=True):
                await projection.apply(conn, events, batch)
            count += len(page)
            if progress is not None:
                progress(count)
    return count
