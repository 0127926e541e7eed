"""Snapshots of folded streams: a cache, so that loading a record costs the same at any history
size (issue 19 point 1).

A snapshot is a stream's state folded up to a version, as JSON, tagged with its format (a name
carrying a version, e.g. `shipments.convoy.v1`). A repository given a SnapshotFormat
(shared/repository.py) loads a record from its snapshot of the current format, if any, and the
events after its version; a snapshot of another format, or ahead of the version asked for, is
ignored (the stream is folded from its start). The handler or projection that folds a record
anyway saves its state after each write (Repository.save_snapshot, save_snapshots), in the
same transaction as the events.

Snapshots are a cache: dropping them changes nothing but speed. The projection that saves them
lists `snapshots` among its tables, so a rebuild empties the table and recreates them. Bump the
format whenever the state's shape, or what its evolve folds into it, changes. Reads of the past
(`as_of`) fold the log from its start: snapshots hold only the latest state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import asyncpg

from shared.codec import Event
from shared.events import RecordedEvent
from shared.rows import COLUMNS, from_row

__all__ = [
    "TABLE",
    "InMemorySnapshots",
    "PostgresSnapshots",
    "Snapshot",
    "SnapshotFormat",
    "SnapshotStore",
    "fold_many",
]

S = TypeVar("S")
TABLE = "snapshots"


@dataclass(frozen=True)
class SnapshotFormat(Generic[S]):
    """How a repository's state is written down (shared/repository.py): `format` names the
    state's JSON shape with its version; decode(encode(state)) must equal state. `initial`
    and `evolve` (on decoded events) are the repository's own when left out; given, they
    must fold as the repository's do."""

    format: str
    encode: Callable[[S], Mapping[str, Any]]
    decode: Callable[[Mapping[str, Any]], S]
    initial: Callable[[str], S] | None = None
    evolve: Callable[[S, Event[Any]], S] | None = None


@dataclass(frozen=True)
class Snapshot:
    stream_id: str
    stream_version: int
    format: str
    state: Mapping[str, Any]


class SnapshotStore(Protocol):
    async def get(self, stream_ids: Sequence[str], format: str) -> dict[str, Snapshot]:
        """The snapshots of `format` of these streams, by stream id (others are left out)."""
        ...

    async def put(self, snapshots: Sequence[Snapshot]) -> None:
        """Keep each unless its stream holds a later one of the same format."""
        ...


class PostgresSnapshots:
    """The `snapshots` table (shared/migrations/shared_0006_snapshots.sql), on the caller's
    connection and transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def get(self, stream_ids: Sequence[str], format: str) -> dict[str, Snapshot]:
        rows = await self.conn.fetch(
            "SELECT stream_id, stream_version, format, state::text AS state FROM snapshots"
            " WHERE stream_id = ANY($1::text[]) AND format = $2",
            list(stream_ids),
            format,
        )
        return {
            r["stream_id"]: Snapshot(
                r["stream_id"], r["stream_version"], r["format"], json.loads(r["state"])
            )
            for r in rows
        }

    async def put(self, snapshots: Sequence[Snapshot]) -> None:
        if not snapshots:
            return
        await self.conn.executemany(
            """
            INSERT INTO snapshots (stream_id, stream_version, format, state)
            VALUES ($1, $2, $3, $4::jsonb)
            ON CONFLICT (stream_id) DO UPDATE SET
                stream_version = excluded.stream_version, format = excluded.format,
                state = excluded.state
            WHERE snapshots.format <> excluded.format
               OR snapshots.stream_version <= excluded.stream_version
            """,
            [
                (
                    s.stream_id,
                    s.stream_version,
                    s.format,
                    json.dumps(s.state, separators=(",", ":")),
                )
                for s in snapshots
            ],
        )


class InMemorySnapshots:
    """For pure tests, beside shared/memory_store.py. States are kept as JSON text, so what
    comes back went through the same round trip as with PostgreSQL."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, str, str]] = {}

    async def get(self, stream_ids: Sequence[str], format: str) -> dict[str, Snapshot]:
        out = {}
        for stream_id in stream_ids:
            row = self.rows.get(stream_id)
            if row is not None and row[1] == format:
                out[stream_id] = Snapshot(stream_id, row[0], row[1], json.loads(row[2]))
        return out

    async def put(self, snapshots: Sequence[Snapshot]) -> None:
        for s in snapshots:
            row = self.rows.get(s.stream_id)
            if row is None or row[1] != s.format or row[0] <= s.stream_version:
                self.rows[s.stream_id] = (s.stream_version, s.format, json.dumps(s.state))


def _start(
    initial: Callable[[str], S],
    decode: Callable[[Mapping[str, Any]], S],
    stream_id: str,
    snapshot: Snapshot | None,
    up_to: int | None,
) -> tuple[S, int]:
    """The state to fold from and its version: the snapshot's, unless it is ahead."""
    if snapshot is None or (up_to is not None and snapshot.stream_version > up_to):
        return initial(stream_id), 0
    return decode(snapshot.state), snapshot.stream_version


async def fold_many(
    conn: asyncpg.Connection,
    up_to: Mapping[str, int],
    *,
    format: str | None,
    initial: Callable[[str], S],
    decode: Callable[[Mapping[str, Any]], S],
    evolve: Callable[[S, RecordedEvent], S],
) -> dict[str, S]:
    """The state of each stream at the version `up_to` gives it, by stream id: from its
    snapshot of `format` (None: from the start; one ahead of that version is ignored) and its
    events between, in two statements however many streams; `initial` takes the stream's
    id. Repository.load_many is this fold for a repository's records."""
    found = {} if format is None else await PostgresSnapshots(conn).get(list(up_to), format)
    starts = {sid: _start(initial, decode, sid, found.get(sid), v) for sid, v in up_to.items()}
    if len(starts) == 1:
        # one stream (a write): the shape of read_stream, which its unique index serves however
        # small the table was when the statement's plan was cached
        [(sid, (_, after))] = starts.items()
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM events e WHERE e.stream_id = $1 AND e.stream_version > $2"
            " AND e.stream_version <= $3 ORDER BY e.stream_version",
            sid,
            after,
            up_to[sid],
        )
    else:
        rows = await conn.fetch(
            f"""
            SELECT {COLUMNS}
            FROM unnest($1::text[], $2::int[], $3::int[]) AS w(stream_id, after, upto)
            JOIN events e ON e.stream_id = w.stream_id
                         AND e.stream_version > w.after AND e.stream_version <= w.upto
            ORDER BY e.stream_id, e.stream_version
            """,
            list(starts),
            [version for _, version in starts.values()],
            [up_to[sid] for sid in starts],
        )
    states = {sid: state for sid, (state, _) in starts.items()}
    for row in rows:
        event = from_row(row)
        states[event.stream_id] = evolve(states[event.stream_id], event)
    return states
