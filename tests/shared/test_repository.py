"""The repository seam (shared/repository.py), the same cases on both units of work: real
PostgreSQL (PostgresUnitOfWork on one connection, a real projection) and in memory
(InMemoryUnitOfWork, for handler tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import asyncpg
import pytest
from pydantic import BaseModel, ConfigDict

from shared.codec import Event, EventCodec
from shared.event_store import ConcurrencyConflict
from shared.events import Metadata, NewEvent, RecordedEvent
from shared.projections import Projection
from shared.repository import InMemoryUnitOfWork, PostgresUnitOfWork, Repository
from shared.snapshots import Snapshot, SnapshotFormat

pytestmark = pytest.mark.once  # plain SQL, the tables tested on both versions by test_migrations

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
META = Metadata(actor="k1", organisation="lille", correlation_id="c-1")


class Counted(BaseModel):
    """Version 2; version 1 named the value `value`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    EVENT_TYPE: ClassVar[str] = "test.counted"
    SCHEMA_VERSION: ClassVar[int] = 2

    n: int


class Reset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    EVENT_TYPE: ClassVar[str] = "test.reset"


def renamed(data: dict[str, Any]) -> dict[str, Any]:
    return {"n": data["value"]}


CODEC = EventCodec([Counted, Reset], upcasters={("test.counted", 1): renamed})


@dataclass(frozen=True)
class Tally:
    record_id: str
    version: int = 0
    total: int = 0
    count: int = 0


def evolve(state: Tally, event: Event[Any]) -> Tally:
    match event.payload:
        case Counted(n=n):
            state = replace(state, total=state.total + n, count=state.count + 1)
        case Reset():
            state = replace(state, total=0, count=0)
    return replace(state, version=event.stream_version)


def encode(state: Tally) -> dict[str, Any]:
    return {
        "record_id": state.record_id,
        "version": state.version,
        "total": state.total,
        "count": state.count,
    }


def decode(d: Mapping[str, Any]) -> Tally:
    return Tally(d["record_id"], d["version"], d["total"], d["count"])


FORMAT = SnapshotFormat(format="test.tally.v1", encode=encode, decode=decode)
TALLIES = Repository(stream_type="tally", codec=CODEC, initial=Tally, evolve=evolve)
SNAPSHOTTED = Repository(
    stream_type="tally", codec=CODEC, initial=Tally, evolve=evolve, snapshot=FORMAT
)


async def _keep(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await conn.execute(
        "INSERT INTO projected VALUES ($1, $2, $3)",
        event.stream_id,
        event.stream_version,
        event.event_type,
    )


KEEP = Projection(
    name="projected",
    tables=("projected",),
    handlers={"test.counted": _keep, "test.reset": _keep},
)


class Case:
    """One unit of work under test and what its projection was handed."""

    def __init__(self, uow: PostgresUnitOfWork | InMemoryUnitOfWork) -> None:
        self.uow = uow

    async def projected(self) -> list[tuple[str, int, str]]:
        if isinstance(self.uow, InMemoryUnitOfWork):
            return [(e.stream_id, e.stream_version, e.event_type) for e in self.uow.projected]
        rows = await self.uow.conn.fetch("SELECT * FROM projected ORDER BY 1, 2")
        return [(r["stream_id"], r["stream_version"], r["event_type"]) for r in rows]


@pytest.fixture(params=["memory", "postgres"])
async def case(request: pytest.FixtureRequest, db_url: str) -> AsyncIterator[Case]:
    if request.param == "memory":
        yield Case(InMemoryUnitOfWork(metadata=META, now=NOW))
        return
    conn = await asyncpg.connect(db_url)
    await conn.execute(
        "CREATE TABLE projected (stream_id text, stream_version int, event_type text)"
    )
    try:
        yield Case(PostgresUnitOfWork(conn, [KEEP], META, NOW))
    finally:
        await conn.close()


async def test_appends_models_to_the_records_stream_projects_them_and_loads_the_fold(
    case: Case,
) -> None:
    uow = case.uow
    assert await TALLIES.load(uow, "a") == Tally("a")  # no event yet: the initial state
    recorded = await TALLIES.append(
        uow, "a", expected_version=0, events=[Counted(n=2), Counted(n=3)]
    )
    assert [(e.stream_type, e.stream_id, e.stream_version) for e in recorded] == [
        ("tally", "tally-a", 1),
        ("tally", "tally-a", 2),
    ]
    assert [(e.event_type, e.schema_version, dict(e.data)) for e in recorded] == [
        ("test.counted", 2, {"n": 2}),
        ("test.counted", 2, {"n": 3}),
    ]
    assert all(e.metadata == META and e.recorded_at == NOW for e in recorded)
    assert await case.projected() == [
        ("tally-a", 1, "test.counted"),
        ("tally-a", 2, "test.counted"),
    ]
    assert await TALLIES.load(uow, "a") == Tally("a", version=2, total=5, count=2)
    # other metadata when given; a stored NewEvent of an older version is upcast when folded
    other = Metadata(actor="k2", organisation="kharkiv")
    again = await TALLIES.append(
        uow,
        "a",
        expected_version=2,
        events=[NewEvent("test.counted", {"value": 10}, schema_version=1)],
        metadata=other,
    )
    assert again[0].metadata == other and again[0].schema_version == 1
    assert await TALLIES.load(uow, "a") == Tally("a", version=3, total=15, count=3)
    # nothing decided: nothing appended, nothing projected
    assert await TALLIES.append(uow, "a", expected_version=3, events=[]) == []
    assert len(await case.projected()) == 3
    # the state the new events leave, without reading the stream again
    assert TALLIES.fold(Tally("a"), recorded + again) == Tally("a", 3, 15, 3)


async def test_a_stale_expected_version_is_a_concurrency_conflict_and_stores_nothing(
    case: Case,
) -> None:
    await TALLIES.append(case.uow, "a", expected_version=0, events=[Counted(n=1)])
    with pytest.raises(ConcurrencyConflict) as caught:
        await TALLIES.append(case.uow, "a", expected_version=0, events=[Counted(n=5)])
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    assert caught.value.problem()["stream_id"] == "tally-a"
    assert await TALLIES.load(case.uow, "a") == Tally("a", 1, 1, 1)
    assert len(await case.projected()) == 1


async def test_history_pages_the_records_decoded_events(case: Case) -> None:
    await TALLIES.append(case.uow, "a", expected_version=0, events=[Counted(n=i) for i in range(5)])
    await TALLIES.append(case.uow, "b", expected_version=0, events=[Reset()])
    page = await TALLIES.history(case.uow, "a", after_version=1, limit=2)
    assert [(e.stream_version, e.payload) for e in page] == [(2, Counted(n=1)), (3, Counted(n=2))]
    assert [e.stream_version for e in await TALLIES.history(case.uow, "a", after_version=3)] == [
        4,
        5,
    ]
    assert [e.payload for e in await TALLIES.history(case.uow, "b")] == [Reset()]
    assert await TALLIES.history(case.uow, "none") == []


async def test_as_of_folds_the_events_that_had_occurred_by_then(case: Case) -> None:
    days = [NOW - timedelta(days=d) for d in (3, 2, 1)]
    events = [
        CODEC.new(Counted(n=n), occurred_at=day) for n, day in zip((1, 10, 100), days, strict=True)
    ]
    await SNAPSHOTTED.append(case.uow, "a", expected_version=0, events=events)
    assert await TALLIES.load(case.uow, "a", as_of=days[1]) == Tally("a", 2, 11, 2)
    assert await TALLIES.load(case.uow, "a", as_of=days[0] - timedelta(seconds=1)) == Tally("a")
    # a snapshot holds only the latest state: a read of the past ignores it
    await SNAPSHOTTED.save_snapshot(case.uow, "a", Tally("a", 3, 999, 3))
    assert await SNAPSHOTTED.load(case.uow, "a", as_of=days[1]) == Tally("a", 2, 11, 2)
    assert (await SNAPSHOTTED.load(case.uow, "a")).total == 999


async def test_a_load_from_a_snapshot_and_the_events_after_equals_the_plain_fold(
    case: Case,
) -> None:
    uow = case.uow
    await SNAPSHOTTED.append(uow, "a", expected_version=0, events=[Counted(n=1), Counted(n=2)])
    await SNAPSHOTTED.save_snapshot(uow, "a", await SNAPSHOTTED.load(uow, "a"))
    await SNAPSHOTTED.append(uow, "a", expected_version=2, events=[Reset(), Counted(n=7)])
    assert await SNAPSHOTTED.load(uow, "a") == await TALLIES.load(uow, "a") == Tally("a", 4, 7, 1)
    assert uow.snapshots is not None
    kept = await uow.snapshots.get(["tally-a"], FORMAT.format)
    assert kept["tally-a"].stream_version == 2  # the snapshot was read, the tail folded on it
    # the snapshot is what the load starts from: one marked at version 3 shows through
    await uow.snapshots.put([Snapshot("tally-a", 3, FORMAT.format, encode(Tally("a", 3, 50, 9)))])
    assert await SNAPSHOTTED.load(uow, "a") == Tally("a", 4, 57, 10)
    # a snapshot of another format is not read; a repository without a format reads none
    await uow.snapshots.put([Snapshot("tally-a", 4, "test.tally.v0", {"sum": 1})])
    assert await SNAPSHOTTED.load(uow, "a") == await TALLIES.load(uow, "a") == Tally("a", 4, 7, 1)
    await TALLIES.save_snapshot(uow, "a", Tally("a", 4, 1, 1))  # no format: a no-op
    assert (await uow.snapshots.get(["tally-a"], "test.tally.v0"))["tally-a"].state == {"sum": 1}


async def test_the_repository_alone_names_streams(case: Case) -> None:
    assert TALLIES.stream_id("kharkiv-1") == "tally-kharkiv-1"
    assert TALLIES.record_id("tally-kharkiv-1") == "kharkiv-1"
    with pytest.raises(ValueError, match="not a tally stream"):
        TALLIES.record_id("convoy-1")
    await TALLIES.append(case.uow, "kharkiv-1", expected_version=0, events=[Counted(n=4)])
    [stored] = await case.uow.store.read_stream("tally-kharkiv-1")
    assert (stored.stream_type, stored.stream_id) == ("tally", "tally-kharkiv-1")
    assert await case.uow.store.read_stream("kharkiv-1") == []


async def test_load_many_folds_each_record_up_to_a_version_from_its_snapshot(
    db_url: str,
) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        uow = PostgresUnitOfWork(conn, [], META, NOW)
        await SNAPSHOTTED.append(uow, "a", expected_version=0, events=[Counted(n=1), Counted(n=2)])
        await SNAPSHOTTED.append(uow, "a", expected_version=2, events=[Counted(n=4)])
        await SNAPSHOTTED.append(uow, "b", expected_version=0, events=[Counted(n=8), Reset()])
        # a's snapshot (marked, to show it is the start) at 2; b's ahead of the version asked
        await SNAPSHOTTED.save_snapshots(
            uow.snapshots, {"a": Tally("a", 2, 30, 2), "b": Tally("b", 2, 0, 0)}
        )
        states = await SNAPSHOTTED.load_many(conn, {"a": 3, "b": 1})
        assert states == {"a": Tally("a", 3, 34, 3), "b": Tally("b", 1, 8, 1)}
        # without a format: folded from the start, the same as a plain load
        plain = await TALLIES.load_many(conn, {"a": 3, "b": 2, "none": 0})
        assert plain == {
            "a": await TALLIES.load(uow, "a"),
            "b": await TALLIES.load(uow, "b"),
            "none": Tally("none"),
        }
        assert await SNAPSHOTTED.load_many(conn, {}) == {}
    finally:
        await conn.close()
