"""Commands run together (shared/group_commit.py) on real PostgreSQL: each command of a batch is
run by its registered handler as it would be alone, a refusal or a fault is that command's
own and leaves nothing of it, every append goes in one statement and the projections run once;
a stream moved on under the batch fails it whole, and a batch whose append the database
refuses runs again in savepoints, answering each command as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg
import pytest
from pydantic import BaseModel, ConfigDict

from shared import snapshots
from shared.codec import Event, EventCodec
from shared.commands import Command, Handlers
from shared.errors import Conflict, ValidationFailed
from shared.event_store import ConcurrencyConflict, PostgresEventStore, Unstorable
from shared.events import Metadata, RecordedEvent
from shared.group_commit import Batched, SavepointsNeeded, run_together
from shared.projections import Projection
from shared.repository import PostgresUnitOfWork, Repository, UnitOfWork
from shared.testing import fresh_database

pytestmark = pytest.mark.once  # plain SQL, the tables tested on both versions by test_migrations

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
LIMIT = 10  # a tally's total may not pass it


class Counted(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    EVENT_TYPE: ClassVar[str] = "test.counted"

    n: int
    note: str = ""


@dataclass(frozen=True)
class Tally:
    record_id: str
    count: int = 0
    total: int = 0


def evolve(state: Tally, event: Event[Any]) -> Tally:
    return Tally(state.record_id, state.count + 1, state.total + event.payload.n)


TALLY = Repository(
    stream_type="tally",
    codec=EventCodec([Counted]),
    initial=Tally,
    evolve=evolve,
    version=lambda s: s.count,
    snapshot=snapshots.SnapshotFormat(
        format="test.tally.v1",
        encode=lambda s: {"record_id": s.record_id, "count": s.count, "total": s.total},
        decode=lambda d: Tally(d["record_id"], d["count"], d["total"]),
    ),
)


@dataclass(frozen=True, slots=True)
class Add(Command):
    record_id: str
    values: tuple[int, ...]
    note: str = ""


@dataclass(frozen=True, slots=True)
class Broken(Command):
    """A command whose handler has a bug."""


@dataclass(frozen=True, slots=True)
class Wait(Command):
    """Waits for `gate` before it answers (what a slow lookup would do)."""

    gate: asyncio.Event


@dataclass(frozen=True, slots=True)
class NoteThenAdd(Command):
    """Writes a note before it decides: a command run `guarded`."""

    record_id: str
    values: tuple[int, ...]


HANDLERS = Handlers("test")


@HANDLERS.register(Add)
async def add(command: Add, uow: UnitOfWork) -> dict[str, Any]:
    """The tally after the values; Conflict when its total would pass LIMIT. The state after
    is kept as the snapshot before the append (as shipments' handlers do)."""
    state = await TALLY.load(uow, command.record_id)
    if state.total + sum(command.values) > LIMIT:
        raise Conflict(f"{command.record_id} would pass {LIMIT}")
    events = [Counted(n=n, note=command.note) for n in command.values]
    after = Tally(state.record_id, state.count + len(events), state.total + sum(command.values))
    await TALLY.save_snapshot(uow, command.record_id, after)
    await TALLY.append(uow, command.record_id, expected_version=state.count, events=events)
    return {"record_id": after.record_id, "version": after.count, "total": after.total}


@HANDLERS.register(Broken)
async def broken(command: Broken, uow: UnitOfWork) -> None:
    raise ValueError("a bug of this handler's own")


@HANDLERS.register(Wait)
async def wait(command: Wait, uow: UnitOfWork) -> str:
    await command.gate.wait()
    return "waited"


@HANDLERS.register(NoteThenAdd)
async def note_then_add(command: NoteThenAdd, uow: UnitOfWork) -> dict[str, Any]:
    conn: asyncpg.Connection = getattr(uow, "conn")  # noqa: B009 (PostgresUnitOfWork's)
    await conn.execute("INSERT INTO notes VALUES ($1)", command.record_id)
    return await add(Add(command.record_id, command.values), uow)


@dataclass
class Tallies:
    """The projection: a row per tally, folded from its snapshot; remembers each call."""

    calls: list[int]

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        self.calls.append(len(events))
        last = {TALLY.record_id(e.stream_id): e.stream_version for e in events}
        states = await TALLY.load_many(conn, last)
        await conn.executemany(
            "INSERT INTO tallies VALUES ($1, $2, $3) ON CONFLICT (record_id) DO UPDATE SET"
            " count = excluded.count, total = excluded.total",
            [(s.record_id, s.count, s.total) for s in states.values()],
        )

    def projection(self) -> Projection:
        return Projection(
            name="tallies",
            tables=("tallies",),
            handlers={"test.counted": lambda conn, e: self.apply(conn, [e])},
            batch=self.apply,
        )


@pytest.fixture
async def url(pg_server: str) -> AsyncIterator[str]:
    async with fresh_database(pg_server) as database:
        conn = await asyncpg.connect(database)
        try:
            await conn.execute(
                "CREATE TABLE tallies (record_id text PRIMARY KEY, count int, total int);"
                " CREATE TABLE notes (record_id text)"
            )
        finally:
            await conn.close()
        yield database


@pytest.fixture
async def conn(url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(url)
    yield connection
    await connection.close()


def batched(command: Command, actor: str, *, guarded: bool = False) -> Batched:
    return Batched(command, Metadata(actor=actor), NOW, guarded=guarded)


async def together(
    conn: asyncpg.Connection,
    batch: Sequence[Batched],
    tallies: Tallies | None = None,
    *,
    savepoints: bool = False,
) -> list[Any]:
    projection = (tallies or Tallies([])).projection()
    async with conn.transaction():
        return await run_together(
            conn, HANDLERS, batch, projections=[projection], savepoints=savepoints
        )


async def stored(conn: asyncpg.Connection) -> list[tuple[str, int, int, str | None]]:
    """Every event: stream, version, value, the actor of its request."""
    rows = await conn.fetch(
        "SELECT stream_id, stream_version, data::jsonb ->> 'n' AS n,"
        " metadata::jsonb ->> 'actor' AS actor FROM events ORDER BY stream_id, stream_version"
    )
    return [(r["stream_id"], r["stream_version"], int(r["n"]), r["actor"]) for r in rows]


async def read_models(conn: asyncpg.Connection) -> dict[str, Any]:
    tallies = await conn.fetch("SELECT * FROM tallies ORDER BY 1")
    kept = await conn.fetch("SELECT stream_id, stream_version FROM snapshots ORDER BY 1")
    notes = await conn.fetch("SELECT record_id FROM notes ORDER BY 1")
    return {
        "tallies": [tuple(r.values()) for r in tallies],
        "snapshots": [tuple(r.values()) for r in kept],
        "notes": [r["record_id"] for r in notes],
    }


async def test_a_refused_command_and_a_broken_one_answer_alone_and_leave_nothing_behind(
    conn: asyncpg.Connection,
) -> None:
    """A later command decides on what the earlier ones of the batch left (the second 6 on
    `a` passes the limit); a command whose event the log cannot hold is refused after it kept
    its snapshot, which goes with it; a handler's bug is its command's own error."""
    tallies = Tallies([])
    outcomes = await together(
        conn,
        [
            batched(Add("a", (1, 2)), "ann"),
            batched(Add("b", (6,)), "bob"),
            batched(Add("b", (6,)), "bea"),  # 12 > LIMIT with the one before
            batched(Broken(), "bo"),
            batched(Add("a", (3,), note="nul \x00"), "nil"),  # no NUL in the log
            batched(Add("a", (4,)), "amy"),
        ],
        tallies,
    )
    assert outcomes[0] == {"record_id": "a", "version": 2, "total": 3}
    assert outcomes[1] == {"record_id": "b", "version": 1, "total": 6}
    assert isinstance(outcomes[2], Conflict) and str(outcomes[2]) == "b would pass 10"
    assert isinstance(outcomes[3], ValueError) and str(outcomes[3]) == "a bug of this handler's own"
    assert isinstance(outcomes[4], ValidationFailed) and "NUL" in str(outcomes[4])
    assert outcomes[5] == {"record_id": "a", "version": 3, "total": 7}
    assert await stored(conn) == [
        ("tally-a", 1, 1, "ann"),
        ("tally-a", 2, 2, "ann"),
        ("tally-a", 3, 4, "amy"),
        ("tally-b", 1, 6, "bob"),
    ]
    assert await read_models(conn) == {
        "tallies": [("a", 3, 7), ("b", 1, 6)],
        "snapshots": [("tally-a", 3), ("tally-b", 1)],
        "notes": [],
    }
    assert tallies.calls == [4]  # projected once, with every event of the batch
    # a load from the snapshots the batch kept gives what the log folds to
    uow = PostgresUnitOfWork(conn, [], Metadata(), NOW)
    log = await PostgresEventStore(conn).read_stream("tally-a")
    assert await TALLY.load(uow, "a") == TALLY.fold(Tally("a"), log) == Tally("a", 3, 7)


async def test_every_append_of_a_batch_goes_in_one_statement(conn: asyncpg.Connection) -> None:
    """Twelve commands on six streams, two of them new: one statement appends them all, and a
    stream's later command reads nothing the batch did not already read."""
    for record_id in ("c", "d", "e", "f"):
        await together(conn, [batched(Add(record_id, (1,)), "setup")])
    statements: list[str] = []

    def logged(record: Any) -> None:
        statements.append(record.query)

    conn.add_query_logger(logged)
    batch = [batched(Add(r, (1,)), "many") for r in ("c", "d", "e", "f", "g", "h") * 2]
    outcomes = await together(conn, batch)
    conn.remove_query_logger(logged)
    appends = [q for q in statements if "twinaid_append" in q]
    assert len(appends) == 1
    reads = [q for q in statements if "FROM events e" in q and "stream_id = $1" in q]
    assert len(reads) == 6  # each stream once (the snapshot's tail), not once per command
    assert [o["version"] for o in outcomes] == [2, 2, 2, 2, 1, 1, 3, 3, 3, 3, 2, 2]
    assert len(await stored(conn)) == 4 + 12
    assert (await read_models(conn))["tallies"] == [
        ("c", 3, 3),
        ("d", 3, 3),
        ("e", 3, 3),
        ("f", 3, 3),
        ("g", 2, 2),
        ("h", 2, 2),
    ]


async def test_a_stream_moved_on_under_the_batch_fails_it_whole_and_a_new_run_answers_each(
    url: str, conn: asyncpg.Connection
) -> None:
    """Another transaction appends to `a` after the batch read it and before the batch
    appends: the batch raises ConcurrencyConflict and stores nothing; run again, each command
    is decided on the stream as it now is."""
    await together(conn, [batched(Add("a", (1,)), "setup")])
    gate = asyncio.Event()
    batch = [
        batched(Add("a", (2,)), "ann"),
        batched(Wait(gate), "walt"),
        batched(Add("b", (3,)), "bob"),
    ]
    running = asyncio.create_task(together(conn, batch))
    await asyncio.sleep(0.2)
    assert not running.done()  # `a` read, the appends kept back
    other = await asyncpg.connect(url)
    try:
        await together(other, [batched(Add("a", (5,)), "other")])
    finally:
        await other.close()
    gate.set()
    with pytest.raises(ConcurrencyConflict):
        await asyncio.wait_for(running, 10)
    assert await stored(conn) == [("tally-a", 1, 1, "setup"), ("tally-a", 2, 5, "other")]
    again = await together(conn, batch)
    assert again == [
        {"record_id": "a", "version": 3, "total": 8},
        "waited",
        {"record_id": "b", "version": 1, "total": 3},
    ]
    assert (await read_models(conn))["tallies"] == [("a", 3, 8), ("b", 1, 3)]


async def test_an_append_the_database_refuses_runs_again_in_savepoints_as_before(
    conn: asyncpg.Connection,
) -> None:
    """The database refuses one command's event (a rule of its own, which no check in Python
    knows): the one statement of the batch fails, undoing the whole transaction
    (SavepointsNeeded). Run again in savepoints, each command appends and projects at once:
    that command alone is refused, and the others get the answers the batch would have
    given."""
    await conn.execute(
        "ALTER TABLE events ADD CONSTRAINT test_no_seven CHECK (data::jsonb ->> 'n' <> '7')"
    )
    batch = [
        batched(Add("a", (1,)), "ann"),
        batched(Add("b", (7,)), "bob"),  # refused by the database only
        batched(Add("a", (2,)), "amy"),
        batched(Add("a", (9,)), "al"),  # passes the limit: refused by the handler
        batched(Add("c", (4,)), "cy"),
    ]
    with pytest.raises(SavepointsNeeded):
        await together(conn, batch)
    assert await stored(conn) == []
    tallies = Tallies([])
    outcomes = await together(conn, batch, tallies, savepoints=True)
    assert outcomes[0] == {"record_id": "a", "version": 1, "total": 1}
    assert isinstance(outcomes[1], Unstorable)
    assert outcomes[2] == {"record_id": "a", "version": 2, "total": 3}
    assert isinstance(outcomes[3], Conflict)
    assert outcomes[4] == {"record_id": "c", "version": 1, "total": 4}
    assert await stored(conn) == [
        ("tally-a", 1, 1, "ann"),
        ("tally-a", 2, 2, "amy"),
        ("tally-c", 1, 4, "cy"),
    ]
    assert await read_models(conn) == {
        "tallies": [("a", 2, 3), ("c", 1, 4)],
        "snapshots": [("tally-a", 2), ("tally-c", 1)],
        "notes": [],
    }


async def test_a_guarded_command_runs_in_a_savepoint_and_its_refusal_undoes_its_writes(
    conn: asyncpg.Connection,
) -> None:
    """A command that writes before it decides (its note) is run guarded: refused, its note
    goes with it; kept, its note stays and its events are appended with the batch's."""
    outcomes = await together(
        conn,
        [
            batched(NoteThenAdd("a", (4,)), "ann", guarded=True),
            batched(NoteThenAdd("b", (11,)), "bob", guarded=True),  # passes the limit
            batched(Add("a", (5,)), "amy"),
        ],
    )
    assert outcomes[0] == {"record_id": "a", "version": 1, "total": 4}
    assert isinstance(outcomes[1], Conflict)
    assert outcomes[2] == {"record_id": "a", "version": 2, "total": 9}
    assert await stored(conn) == [("tally-a", 1, 4, "ann"), ("tally-a", 2, 5, "amy")]
    assert await read_models(conn) == {
        "tallies": [("a", 2, 9)],
        "snapshots": [("tally-a", 2)],
        "notes": ["a"],
    }


def test_a_batched_command_is_read_as_the_type_its_batch_holds() -> None:
    item = batched(Broken(), "a")
    assert item.command_as(Broken) is item.command
    with pytest.raises(TypeError, match="a batch of Add got a Broken"):
        item.command_as(Add)
