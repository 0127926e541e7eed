"""Snapshots of folded streams (shared/snapshots.py, through a Repository's SnapshotFormat) are
a cache: a load from a snapshot and the events after it gives what folding the whole stream
gives; a snapshot of another format, or ahead of the version asked for, is ignored; dropping
them changes no row; a rebuild recreates them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg
import pytest
from pydantic import BaseModel, ConfigDict

from shared import snapshots
from shared.codec import Event, EventCodec
from shared.events import Metadata, RecordedEvent
from shared.memory_store import InMemoryEventStore
from shared.projections import Projection, rebuild
from shared.repository import InMemoryUnitOfWork, PostgresUnitOfWork, Repository
from shared.testing import fresh_database

pytestmark = pytest.mark.once  # plain SQL, the table tested on both versions by test_migrations

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


class Counted(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    EVENT_TYPE: ClassVar[str] = "test.counted"

    n: int


@dataclass(frozen=True)
class Tally:
    """A toy state: how many events, their sum, the latest three values."""

    record_id: str
    count: int = 0
    total: int = 0
    latest: tuple[int, ...] = ()


def evolve(state: Tally, event: Event[Any]) -> Tally:
    n = event.payload.n
    return Tally(state.record_id, state.count + 1, state.total + n, (*state.latest, n)[-3:])


def encode(state: Tally) -> dict[str, Any]:
    return {
        "record_id": state.record_id,
        "count": state.count,
        "total": state.total,
        "latest": list(state.latest),
    }


def decode(d: Mapping[str, Any]) -> Tally:
    return Tally(d["record_id"], d["count"], d["total"], tuple(d["latest"]))


FORMAT = snapshots.SnapshotFormat(format="test.tally.v1", encode=encode, decode=decode)
CODEC = EventCodec([Counted])
# every event is counted: a tally's count is its stream version
TALLY = Repository(
    stream_type="tally",
    codec=CODEC,
    initial=Tally,
    evolve=evolve,
    version=lambda s: s.count,
    snapshot=FORMAT,
)
PLAIN = Repository(
    stream_type="tally", codec=CODEC, initial=Tally, evolve=evolve, version=lambda s: s.count
)


class Counting(InMemoryEventStore):
    """Remembers the versions each read started after."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []

    async def read_stream(self, stream_id: str, **kw: Any) -> list[RecordedEvent]:
        self.reads.append(kw.get("after_version", 0))
        return await super().read_stream(stream_id, **kw)


def in_memory() -> tuple[InMemoryUnitOfWork, Counting, snapshots.InMemorySnapshots]:
    events, kept = Counting(), snapshots.InMemorySnapshots()
    return InMemoryUnitOfWork(events, Metadata(), NOW, snapshots=kept), events, kept


async def append(uow: InMemoryUnitOfWork, record_id: str, values: Sequence[int]) -> None:
    after = (await PLAIN.load(uow, record_id)).count
    await TALLY.append(
        uow, record_id, expected_version=after, events=[Counted(n=n) for n in values]
    )


async def test_a_load_is_the_snapshot_and_the_events_after_it() -> None:
    uow, events, _ = in_memory()
    await append(uow, "a", [1, 2, 3])
    state = await TALLY.load(uow, "a")
    assert state == Tally("a", 3, 6, (1, 2, 3))
    await TALLY.save_snapshot(uow, "a", state)
    await append(uow, "a", [4, 5])
    events.reads.clear()
    state = await TALLY.load(uow, "a")
    assert events.reads == [3]  # only what follows the snapshot was read
    whole = TALLY.fold(Tally("a"), await events.read_stream("tally-a"))
    assert state == whole == Tally("a", 5, 15, (3, 4, 5))
    # an unknown stream: the initial state, nothing read from a snapshot
    assert await TALLY.load(uow, "none") == Tally("none")


async def test_a_snapshot_of_another_format_is_ignored_and_an_older_one_never_replaces() -> None:
    uow, events, kept = in_memory()
    await append(uow, "a", [1, 2, 3])
    # an earlier shape of the state, at the latest version: not read
    await kept.put([snapshots.Snapshot("tally-a", 3, "test.tally.v0", {"sum": 99})])
    events.reads.clear()
    state = await TALLY.load(uow, "a")
    assert state == Tally("a", 3, 6, (1, 2, 3)) and events.reads == [0]
    # the current format replaces it; a snapshot older than the one kept does not
    await TALLY.save_snapshot(uow, "a", state)
    await TALLY.save_snapshot(uow, "a", Tally("a", 1, 1, (1,)))
    assert (await kept.get(["tally-a"], FORMAT.format))["tally-a"].stream_version == 3


@pytest.fixture
async def conn(pg_server: str) -> AsyncIterator[asyncpg.Connection]:
    async with fresh_database(pg_server) as url:
        connection = await asyncpg.connect(url)
        await connection.execute(
            "CREATE TABLE tallies (record_id text PRIMARY KEY, count int, total int, latest int[])"
        )
        yield connection
        await connection.close()


async def _tallies(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    """A projection folding through snapshots, as services/shipments/projections.py did."""
    last = {TALLY.record_id(e.stream_id): e.stream_version for e in events}
    states = await TALLY.load_many(conn, last)
    await TALLY.save_snapshots(snapshots.PostgresSnapshots(conn), states)
    await conn.executemany(
        "INSERT INTO tallies VALUES ($1, $2, $3, $4) ON CONFLICT (record_id) DO UPDATE SET"
        " count = excluded.count, total = excluded.total, latest = excluded.latest",
        [(s.record_id, s.count, s.total, list(s.latest)) for s in states.values()],
    )


TALLIES = Projection(
    name="tallies",
    tables=("tallies", snapshots.TABLE),
    handlers={"test.counted": lambda conn, e: _tallies(conn, [e])},
    batch=_tallies,
)


async def write(conn: asyncpg.Connection, record_id: str, values: Sequence[int]) -> None:
    async with conn.transaction():
        uow = PostgresUnitOfWork(conn, [TALLIES], Metadata(), NOW)
        version = await uow.store.current_version(TALLY.stream_id(record_id))
        await TALLY.append(
            uow, record_id, expected_version=version, events=[Counted(n=n) for n in values]
        )


async def rows(conn: asyncpg.Connection, table: str) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1")]


async def test_postgres_snapshots_round_trip_and_are_only_a_cache(
    conn: asyncpg.Connection,
) -> None:
    for i in range(6):
        await write(conn, "a", [i, i + 1])
        await write(conn, "b", [10 * i])
    tallies = await rows(conn, "tallies")
    assert tallies == [("a", 12, 36, [5, 5, 6]), ("b", 6, 150, [30, 40, 50])]
    kept = await rows(conn, "snapshots")
    assert [(r[0], r[1], r[2]) for r in kept] == [
        ("tally-a", 12, FORMAT.format),
        ("tally-b", 6, FORMAT.format),
    ]
    uow = PostgresUnitOfWork(conn, [], Metadata(), NOW)
    assert await TALLY.load(uow, "a") == Tally("a", 12, 36, (5, 5, 6))
    # dropped: the next write folds the whole stream, to the same rows
    await conn.execute("TRUNCATE snapshots")
    await write(conn, "a", [7])
    await write(conn, "b", [60])
    dropped = await rows(conn, "tallies")
    await conn.execute("TRUNCATE tallies, snapshots")
    await write(conn, "a", [])  # nothing: no-op
    # a stale snapshot (another format) and one ahead of the version asked for are ignored
    await conn.execute(
        "INSERT INTO snapshots VALUES ('tally-a', 13, 'test.tally.v0', '{}'),"
        " ('tally-b', 99, $1, $2::jsonb)",
        FORMAT.format,
        '{"record_id": "b", "count": -1, "total": -1, "latest": []}',
    )
    states = await TALLY.load_many(conn, {"a": 13, "b": 7})
    assert states == {
        "a": Tally("a", 13, 43, (5, 6, 7)),
        "b": Tally("b", 7, 210, (40, 50, 60)),
    }
    # a rebuild empties and recreates them, and the rows are those of the writes
    replayed = await rebuild(conn, [TALLIES])
    assert replayed == 20
    assert await rows(conn, "tallies") == dropped
    assert [(r[0], r[1], r[2]) for r in await rows(conn, "snapshots")] == [
        ("tally-a", 13, FORMAT.format),
        ("tally-b", 7, FORMAT.format),
    ]
