"""Snapshots of folded streams (shared/snapshots.py) are a cache: a load from a snapshot and
the events after it gives what folding the whole stream gives; a snapshot of another format,
or ahead of the version asked for, is ignored; dropping them changes no row; a rebuild
recreates them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from shared import snapshots
from shared.event_store import PostgresEventStore, fold
from shared.events import Metadata, NewEvent, RecordedEvent
from shared.memory_store import InMemoryEventStore
from shared.projections import Projection, project, rebuild
from shared.testing import fresh_database

pytestmark = pytest.mark.once  # plain SQL, the table tested on both versions by test_migrations

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Tally:
    """A toy state: how many events, their sum, the latest three values."""

    stream_id: str
    count: int = 0
    total: int = 0
    latest: tuple[int, ...] = ()


def evolve(state: Tally, event: RecordedEvent) -> Tally:
    n = int(event.data["n"])
    return Tally(state.stream_id, state.count + 1, state.total + n, (*state.latest, n)[-3:])


def encode(state: Tally) -> dict[str, Any]:
    return {
        "stream_id": state.stream_id,
        "count": state.count,
        "total": state.total,
        "latest": list(state.latest),
    }


def decode(d: Mapping[str, Any]) -> Tally:
    return Tally(d["stream_id"], d["count"], d["total"], tuple(d["latest"]))


TALLY = snapshots.Kind(
    format="test.tally.v1", initial=Tally, evolve=evolve, encode=encode, decode=decode
)


class Counting(InMemoryEventStore):
    """Remembers the versions each read started after."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []

    async def read_stream(self, stream_id: str, **kw: Any) -> list[RecordedEvent]:
        self.reads.append(kw.get("after_version", 0))
        return await super().read_stream(stream_id, **kw)


async def append(store: Any, stream_id: str, values: Sequence[int], after: int) -> None:
    await store.append(
        stream_type="tally",
        stream_id=stream_id,
        expected_version=after,
        events=[NewEvent("test.counted", {"n": n}) for n in values],
        metadata=Metadata(),
        now=NOW,
    )


async def test_a_load_is_the_snapshot_and_the_events_after_it() -> None:
    events, kept = Counting(), snapshots.InMemorySnapshots()
    await append(events, "tally-a", [1, 2, 3], 0)
    state, version = await snapshots.load(events, kept, TALLY, "tally-a")
    assert (state, version) == (Tally("tally-a", 3, 6, (1, 2, 3)), 3)
    await snapshots.save(kept, TALLY, {"tally-a": (version, state)})
    await append(events, "tally-a", [4, 5], 3)
    events.reads.clear()
    state, version = await snapshots.load(events, kept, TALLY, "tally-a")
    assert events.reads == [3]  # only what follows the snapshot was read
    whole = fold(await events.read_stream("tally-a"), Tally("tally-a"), evolve)
    assert state == whole == Tally("tally-a", 5, 15, (3, 4, 5)) and version == 5
    # an unknown stream: the initial state, nothing read from a snapshot
    assert await snapshots.load(events, kept, TALLY, "tally-none") == (Tally("tally-none"), 0)


async def test_a_snapshot_of_another_format_is_ignored_and_an_older_one_never_replaces() -> None:
    events, kept = Counting(), snapshots.InMemorySnapshots()
    await append(events, "tally-a", [1, 2, 3], 0)
    # an earlier shape of the state, at the latest version: not read
    await kept.put([snapshots.Snapshot("tally-a", 3, "test.tally.v0", {"sum": 99})])
    events.reads.clear()
    state, _ = await snapshots.load(events, kept, TALLY, "tally-a")
    assert state == Tally("tally-a", 3, 6, (1, 2, 3)) and events.reads == [0]
    # the current format replaces it; a snapshot older than the one kept does not
    await snapshots.save(kept, TALLY, {"tally-a": (3, state)})
    await snapshots.save(kept, TALLY, {"tally-a": (1, Tally("tally-a", 1, 1, (1,)))})
    assert (await kept.get(["tally-a"], TALLY.format))["tally-a"].stream_version == 3


@pytest.fixture
async def conn(pg_server: str) -> AsyncIterator[asyncpg.Connection]:
    async with fresh_database(pg_server) as url:
        connection = await asyncpg.connect(url)
        await connection.execute(
            "CREATE TABLE tallies (stream_id text PRIMARY KEY, count int, total int, latest int[])"
        )
        yield connection
        await connection.close()


async def _tallies(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    """A projection folding through snapshots, as services/shipments/projections.py does."""
    last = {e.stream_id: e.stream_version for e in events}
    states = await snapshots.load_many(conn, TALLY, last)
    await snapshots.save(
        snapshots.PostgresSnapshots(conn), TALLY, {s: (last[s], x) for s, x in states.items()}
    )
    await conn.executemany(
        "INSERT INTO tallies VALUES ($1, $2, $3, $4) ON CONFLICT (stream_id) DO UPDATE SET"
        " count = excluded.count, total = excluded.total, latest = excluded.latest",
        [(s.stream_id, s.count, s.total, list(s.latest)) for s in states.values()],
    )


TALLIES = Projection(
    name="tallies",
    tables=("tallies", snapshots.TABLE),
    handlers={"test.counted": lambda conn, e: _tallies(conn, [e])},
    batch=_tallies,
)


async def write(conn: asyncpg.Connection, stream_id: str, values: Sequence[int]) -> None:
    store = PostgresEventStore(conn)
    async with conn.transaction():
        version = await store.current_version(stream_id)
        recorded = await store.append(
            stream_type="tally",
            stream_id=stream_id,
            expected_version=version,
            events=[NewEvent("test.counted", {"n": n}) for n in values],
            metadata=Metadata(),
            now=NOW,
        )
        await project(conn, [TALLIES], recorded)


async def rows(conn: asyncpg.Connection, table: str) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1")]


async def test_postgres_snapshots_round_trip_and_are_only_a_cache(
    conn: asyncpg.Connection,
) -> None:
    for i in range(6):
        await write(conn, "tally-a", [i, i + 1])
        await write(conn, "tally-b", [10 * i])
    tallies = await rows(conn, "tallies")
    assert tallies == [("tally-a", 12, 36, [5, 5, 6]), ("tally-b", 6, 150, [30, 40, 50])]
    kept = await rows(conn, "snapshots")
    assert [(r[0], r[1], r[2]) for r in kept] == [
        ("tally-a", 12, TALLY.format),
        ("tally-b", 6, TALLY.format),
    ]
    store, cache = PostgresEventStore(conn), snapshots.PostgresSnapshots(conn)
    assert await snapshots.load(store, cache, TALLY, "tally-a") == (
        Tally("tally-a", 12, 36, (5, 5, 6)),
        12,
    )
    # dropped: the next write folds the whole stream, to the same rows
    await conn.execute("TRUNCATE snapshots")
    await write(conn, "tally-a", [7])
    await write(conn, "tally-b", [60])
    dropped = await rows(conn, "tallies")
    await conn.execute("TRUNCATE tallies, snapshots")
    await write(conn, "tally-a", [])  # nothing: no-op
    # a stale snapshot (another format) and one ahead of the version asked for are ignored
    await conn.execute(
        "INSERT INTO snapshots VALUES ('tally-a', 13, 'test.tally.v0', '{}'),"
        " ('tally-b', 99, $1, $2::jsonb)",
        TALLY.format,
        '{"stream_id": "tally-b", "count": -1, "total": -1, "latest": []}',
    )
    states = await snapshots.load_many(conn, TALLY, {"tally-a": 13, "tally-b": 7})
    assert states == {
        "tally-a": Tally("tally-a", 13, 43, (5, 6, 7)),
        "tally-b": Tally("tally-b", 7, 210, (40, 50, 60)),
    }
    # a rebuild empties and recreates them, and the rows are those of the writes
    replayed = await rebuild(conn, [TALLIES])
    assert replayed == 20
    assert await rows(conn, "tallies") == dropped
    assert [(r[0], r[1], r[2]) for r in await rows(conn, "snapshots")] == [
        ("tally-a", 13, TALLY.format),
        ("tally-b", 7, TALLY.format),
    ]
