"""One repository seam: stream naming, loading (a fold, from a snapshot when there is one) and
append-with-projection, over the EventStore protocol, inside a unit of work.

A unit of work is what one use case runs in: the event store and snapshots bound to its
transaction, the request's metadata and clock, and the service's projections. Handlers take
it as their second argument; PostgresUnitOfWork runs them for real (the route's or the
consumer's transaction), InMemoryUnitOfWork in fast handler tests.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar, Unpack
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from shared.codec import Event, EventCodec
from shared.event_store import EventStore, PostgresEventStore, StreamPage
from shared.events import Metadata, NewEvent, RecordedEvent
from shared.memory_store import InMemoryEventStore
from shared.projections import Projection, project
from shared.snapshots import (
    InMemorySnapshots,
    PostgresSnapshots,
    Snapshot,
    SnapshotFormat,
    SnapshotStore,
    fold_many,
)

__all__ = [
    "InMemoryUnitOfWork",
    "PostgresUnitOfWork",
    "Repository",
    "UnitOfWork",
]

S = TypeVar("S")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class UnitOfWork(Protocol):
    """What a handler runs in: one transaction's store and snapshots, the request's metadata
    (actor, organisation, correlation, idempotency key) and instant, and the projections."""

    @property
    def store(self) -> EventStore: ...

    @property
    def snapshots(self) -> SnapshotStore | None: ...

    @property
    def metadata(self) -> Metadata: ...

    @property
    def now(self) -> datetime: ...

    async def project(self, events: Sequence[RecordedEvent]) -> None:
        """The service's projections of these just-appended events, in the same transaction."""
        ...


class PostgresUnitOfWork:
    """A unit of work on one connection, inside the transaction its caller owns; `conn` is
    there for the handler's own ports (queries, locks)."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        projections: Sequence[Projection],
        metadata: Metadata,
        now: datetime,
    ) -> None:
        self.conn = conn
        self.projections = projections
        self.metadata = metadata
        self.now = now
        self.store = PostgresEventStore(conn)
        self.snapshots = PostgresSnapshots(conn)

    async def project(self, events: Sequence[RecordedEvent]) -> None:
        await project(self.conn, self.projections, events)


class InMemoryUnitOfWork:
    """For handler tests: an in-memory store and snapshots (fresh ones unless given);
    `project` keeps the events it is handed in `projected`, in order."""

    def __init__(
        self,
        store: InMemoryEventStore | None = None,
        metadata: Metadata | None = None,
        now: datetime | None = None,
        *,
        snapshots: InMemorySnapshots | None = None,
    ) -> None:
        self.store = store if store is not None else InMemoryEventStore()
        self.metadata = metadata if metadata is not None else Metadata()
        self.now = now if now is not None else _utcnow()
        self.snapshots: InMemorySnapshots | None = (
            snapshots if snapshots is not None else InMemorySnapshots()
        )
        self.projected: list[RecordedEvent] = []

    async def project(self, events: Sequence[RecordedEvent]) -> None:
        self.projected.extend(events)


def _version(state: Any) -> int:
    version = state.version
    assert isinstance(version, int)
    return version


RECENT_STATES = 1024  # states a Repository remembers for the projection of their append


@dataclass(frozen=True, kw_only=True, eq=False)  # one repository per stream type: by identity
class Repository(Generic[S]):
    """The records of one stream type: `initial(record_id)` is a record with no event,
    `evolve` folds one decoded event into a state, `version(state)` is the stream version the
    state was folded to. With a `snapshot` format, loads start from the record's snapshot
    (when the unit of work has a snapshot store) and `save_snapshot` keeps one."""

    stream_type: str
    codec: EventCodec
    initial: Callable[[str], S]
    evolve: Callable[[S, Event[Any]], S]
    version: Callable[[S], int] = _version
    snapshot: SnapshotFormat[S] | None = None
    # states handlers computed after events about to be appended, by the last event's id
    # (`remember`), for the projection of that append (`recall`); bounded, oldest out first
    _recent: OrderedDict[UUID, S] = field(default_factory=OrderedDict, repr=False)

    def remember(self, last_event_id: UUID, state: S) -> None:
        """`state` is the record after the event `last_event_id` and those before it, about to
        be appended (and kept as its snapshot): the projection of that append may start from it
        (`recall`) instead of reading and decoding the snapshot again. An event id is never
        used twice, so an append that is rolled back leaves an entry nothing asks for."""
        self._recent[last_event_id] = state
        while len(self._recent) > RECENT_STATES:
            self._recent.popitem(last=False)

    def recall(self, event_id: UUID) -> S | None:
        """The state `remember` kept after this event, once (None: not kept, or asked already)."""
        return self._recent.pop(event_id, None)

    def stream_id(self, record_id: str) -> str:
        """The stream of a record: the only place stream ids are spelled."""
        return f"{self.stream_type}-{record_id}"

    def record_id(self, stream_id: str) -> str:
        """The record of one of this type's streams (ValueError for another type's)."""
        prefix = f"{self.stream_type}-"
        if not stream_id.startswith(prefix):
            raise ValueError(f"{stream_id} is not a {self.stream_type} stream")
        return stream_id[len(prefix) :]

    async def load(self, uow: UnitOfWork, record_id: str, *, as_of: datetime | None = None) -> S:
        """The record now: from its snapshot (with a format and a snapshot store) plus the
        events after it; `as_of`: folded from the start over the events that occurred by
        then. A record with no event is `initial(record_id)`."""
        stream_id = self.stream_id(record_id)
        state, after = self.initial(record_id), 0
        if as_of is None and self.snapshot is not None and uow.snapshots is not None:
            found = (await uow.snapshots.get([stream_id], self.snapshot.format)).get(stream_id)
            if found is not None:
                state, after = self.snapshot.decode(found.state), found.stream_version
        events = await uow.store.read_stream(stream_id, as_of=as_of, after_version=after)
        return self.fold(state, events)

    async def history(
        self, uow: UnitOfWork, record_id: str, **page: Unpack[StreamPage]
    ) -> list[Event[Any]]:
        """A page of the record's events, decoded: the versions after `after_version`, at most
        `limit` of them (None: all)."""
        return self.codec.decode_all(await self.stored(uow, record_id, **page))

    async def stored(
        self, uow: UnitOfWork, record_id: str, **page: Unpack[StreamPage]
    ) -> list[RecordedEvent]:
        """The same page as stored, not decoded: for what shows events as written (a
        record's history), which one event this code cannot read must not stop."""
        return await uow.store.read_stream(self.stream_id(record_id), **page)

    async def append(
        self,
        uow: UnitOfWork,
        record_id: str,
        *,
        expected_version: int,
        events: Sequence[BaseModel | NewEvent],
        metadata: Metadata | None = None,
    ) -> list[RecordedEvent]:
        """Append after `expected_version` (0: a new record) and project, in the unit of
        work; models are encoded by the codec (a NewEvent is taken as it is, e.g. one with an
        occurred_at in the past from `codec.new`). No events: nothing happened ([]).
        Raises ConcurrencyConflict when the stream moved on."""
        if not events:
            return []
        new = [e if isinstance(e, NewEvent) else self.codec.new(e) for e in events]
        recorded = await uow.store.append(
            stream_type=self.stream_type,
            stream_id=self.stream_id(record_id),
            expected_version=expected_version,
            events=new,
            metadata=metadata if metadata is not None else uow.metadata,
            now=uow.now,
        )
        await uow.project(recorded)
        return recorded

    async def opening(self, uow: UnitOfWork, record_id: str) -> S:
        """The record as its first event made it: enough to know whose it is (parties fixed
        when it is made) without reading its whole log, e.g. to decide who may read its
        history, which then shows even an event this code cannot decode."""
        first = await self.stored(uow, record_id, limit=1)
        return self.fold(self.initial(record_id), first)

    def fold(self, state: S, events: Sequence[RecordedEvent]) -> S:
        """The state with these stored events decoded and evolved into it, in order."""
        for event in self.codec.decode_all(events):
            state = self.evolve(state, event)
        return state

    async def save_snapshot(self, uow: UnitOfWork, record_id: str, state: S) -> None:
        """Keep `state` as the record's snapshot (a no-op without a format or a snapshot
        store); a later snapshot of the same format already kept stays."""
        if uow.snapshots is not None:
            await self.save_snapshots(uow.snapshots, {record_id: state})

    async def save_snapshots(self, snapshots: SnapshotStore, states: Mapping[str, S]) -> None:
        """Keep each state (record id -> state) as its record's snapshot, at the state's
        version (a no-op without a format)."""
        if self.snapshot is None or not states:
            return
        encode, format = self.snapshot.encode, self.snapshot.format
        await snapshots.put(
            [
                Snapshot(self.stream_id(record_id), self.version(state), format, encode(state))
                for record_id, state in states.items()
            ]
        )

    async def load_many(self, conn: asyncpg.Connection, up_to: Mapping[str, int]) -> dict[str, S]:
        """Each record's state at the version `up_to` gives it (record id -> version), by
        record id: from its snapshot (with a format; one ahead of that version is ignored)
        and the events between, in two statements however many records. For projections
        that fold the records they project, on their connection."""
        fmt = self.snapshot

        def decode(state: Mapping[str, Any]) -> S:
            assert fmt is not None  # a snapshot is only looked for with a format
            return fmt.decode(state)

        states = await fold_many(
            conn,
            {self.stream_id(record_id): v for record_id, v in up_to.items()},
            format=None if fmt is None else fmt.format,
            initial=lambda stream_id: self.initial(self.record_id(stream_id)),
            decode=decode,
            evolve=lambda state, event: self.evolve(state, self.codec.decode(event)),
        )
        return {self.record_id(stream_id): state for stream_id, state in states.items()}
