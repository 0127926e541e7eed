"""Append-only event store: PostgreSQL for real, in memory for pure domain tests.

Global order without skipping (the xid8 choice): writers never lock anything beyond their own
rows. Each event row records its transaction id; the sealer (run by the relay leader) gives dense
global positions only to events whose transaction is older than every transaction still running
(`pg_snapshot_xmin`), in (transaction id, row id) order. A reader that follows the sealed
positions therefore never passes an event that could still commit behind it. The alternative, a
table lock held from append to commit, serialises every writer of a service; we keep writers
parallel and pay a few milliseconds of sealing latency instead.

Rule for use cases: load the streams you decide on before the transaction's first write, so the
transaction id (assigned at the first write) is newer than the events you read.

Both pass the same contract suite (tests/shared/test_event_store_contract.py). A store is bound
to the connection of one use case; it never begins or commits a transaction itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypedDict, Unpack

import asyncpg

from shared import chain, instants, sealer
from shared.errors import Conflict, ValidationFailed
from shared.events import Metadata, NewEvent, RecordedEvent, Selection
from shared.keys import KeyRing
from shared.rows import COLUMNS, from_row


class ConcurrencyConflict(Conflict):
    """The stream moved on since the caller read it: reload and decide again."""

    type_slug = "concurrency-conflict"
    title = "The record was changed by someone else"

    def __init__(self, *, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream_id} is at version {actual}, not the expected {expected}",
            extra={"stream_id": stream_id, "expected_version": expected, "actual_version": actual},
        )
        self.expected = expected
        self.actual = actual


class Append(TypedDict):
    """What an append is given: the events to put after `expected_version` (0 for a new
    stream) of the stream, with their metadata, recorded at `now`."""

    stream_type: str
    stream_id: str
    expected_version: int
    events: Sequence[NewEvent]
    metadata: Metadata
    now: datetime


class StreamPage(TypedDict, total=False):
    """A page of a stream's events: the versions after `after_version` (0, the default: from
    the first), at most `limit` of them (None, the default: all)."""

    after_version: int
    limit: int | None


class Window(StreamPage, total=False):
    """Which events of a stream to read: occurred by `as_of`, recorded by `known_at` (None,
    the default: whenever), in a page of its versions (StreamPage)."""

    as_of: datetime | None
    known_at: datetime | None


class EventStore(Protocol):
    async def append(self, **append: Unpack[Append]) -> list[RecordedEvent]:
        """Append after `expected_version` (0 for a new stream). Raises ConcurrencyConflict."""
        ...

    async def read_stream(self, stream_id: str, **window: Unpack[Window]) -> list[RecordedEvent]:
        """The events of one stream in `window`, in version order."""
        ...

    async def read_all(
        self,
        *,
        after: int,
        limit: int,
        where: Selection | None = None,
    ) -> list[RecordedEvent]:
        """Sealed events after a global position, in position order."""
        ...

    async def seal(self, *, limit: int = 1000) -> int:
        """Give committed events their global position and chain hash; returns how many."""
        ...

    async def verify(self) -> chain.Verdict: ...


# twinaid_append (shared/migrations/shared_0001_baseline.sql) with the arguments of
# `append_arguments`, from $1: for a statement of its own, or inside a service's function that
# appends as part of one statement.
APPEND_CALL = "twinaid_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"


# What the database answers to a row the chain could not seal (events_sealable_v1 in
# shared/migrations/shared_0001_baseline.sql; a JSON text jsonb cannot read fails the check
# with a data error).
REFUSED_BY_DATABASE = (asyncpg.CheckViolationError, asyncpg.DataError)


class Unstorable(ValidationFailed):
    """An event the log cannot hold, because the chain could not seal it (see
    shared/instants.py and chain.encode for the rules). The API's request models refuse such
    values first; this is the same rule one layer down, also enforced by the database."""

    type_slug = "unstorable-event"
    title = "The event cannot be stored in the log"

    def __init__(self, problem: str) -> None:
        super().__init__(f"the event cannot be stored: {problem}")


def check_storable(events: Sequence[NewEvent], *, now: datetime) -> None:
    """Raises Unstorable for an instant outside the log's range or data that is not a JSON
    object; chain.encode refuses what breaks the log's JSON rules."""
    problem = instants.storable(now, field="recorded_at")
    for event in events:
        if problem is None and event.occurred_at is not None:
            problem = instants.storable(event.occurred_at, field="occurred_at")
        if problem is None and not isinstance(event.data, Mapping):
            problem = f"the data of {event.event_type} is not a JSON object"
    if problem is not None:
        raise Unstorable(problem)


def append_arguments(**append: Unpack[Append]) -> tuple[Any, ...]:
    """The arguments of twinaid_append. Data and metadata as RFC 8785 text, so the sealed body
    can be rendered from the columns (shared/chain.py); ValidationFailed (Unstorable) when a
    value has no canonical form or the log cannot hold it (check_storable)."""
    events, now = append["events"], append["now"]
    check_storable(events, now=now)
    return (
        append["stream_type"],
        append["stream_id"],
        append["expected_version"],
        now,
        chain.encode(append["metadata"].as_dict()),
        [e.event_id for e in events],
        [e.event_type for e in events],
        [e.schema_version for e in events],
        [e.occurred_at or now for e in events],
        [chain.encode(e.data) for e in events],
    )


def recorded(**append: Unpack[Append]) -> list[RecordedEvent]:
    """The events as twinaid_append stored them."""
    now, after = append["now"], append["expected_version"]
    return [
        RecordedEvent(
            event_id=e.event_id,
            stream_type=append["stream_type"],
            stream_id=append["stream_id"],
            stream_version=after + i + 1,
            event_type=e.event_type,
            schema_version=e.schema_version,
            occurred_at=e.occurred_at or now,
            recorded_at=now,
            data=e.data,
            metadata=append["metadata"],
        )
        for i, e in enumerate(append["events"])
    ]


def append_conflict(
    exc: asyncpg.UniqueViolationError, *, stream_id: str, expected: int
) -> Conflict:
    """What a unique violation during an append means: a reused event id, or a concurrent
    writer that took the version first."""
    if exc.constraint_name == "events_event_id_key":
        return Conflict("an event with this id was already recorded")
    return ConcurrencyConflict(stream_id=stream_id, expected=expected, actual=expected + 1)


class PostgresEventStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def current_version(self, stream_id: str) -> int:
        version = await self.conn.fetchval(
            "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1", stream_id
        )
        return int(version)

    async def append(self, **append: Unpack[Append]) -> list[RecordedEvent]:
        if not append["events"]:
            return []
        stream_id, expected = append["stream_id"], append["expected_version"]
        try:
            # The version check and the insert are one statement (twinaid_append in
            # shared/migrations/shared_0001_baseline.sql); a concurrent writer that passes the
            # check too is stopped by UNIQUE (stream_id, stream_version).
            appended = await self.conn.fetchval(
                f"SELECT {APPEND_CALL}", *append_arguments(**append)
            )
        except asyncpg.UniqueViolationError as exc:
            raise append_conflict(exc, stream_id=stream_id, expected=expected) from exc
        except REFUSED_BY_DATABASE as exc:
            raise Unstorable(f"the database refused it: {exc}") from exc
        if appended != len(append["events"]):
            actual = await self.current_version(stream_id)
            raise ConcurrencyConflict(stream_id=stream_id, expected=expected, actual=actual)
        return recorded(**append)

    async def read_stream(self, stream_id: str, **window: Unpack[Window]) -> list[RecordedEvent]:
        rows = await self.conn.fetch(
            f"""
            SELECT {COLUMNS}, c.position, c.hash FROM events e
            LEFT JOIN event_chain c ON c.event_id = e.event_id
            WHERE e.stream_id = $1
              AND ($2::timestamptz IS NULL OR e.occurred_at <= $2)
              AND ($3::timestamptz IS NULL OR e.recorded_at <= $3)
              AND e.stream_version > $4
            ORDER BY e.stream_version
            LIMIT $5
            """,
            stream_id,
            window.get("as_of"),
            window.get("known_at"),
            window.get("after_version", 0),
            window.get("limit"),
        )
        return [from_row(r, position=r["position"], hash=r["hash"]) for r in rows]

    async def read_streams(self, stream_ids: Sequence[str]) -> dict[str, list[RecordedEvent]]:
        """Several streams whole, in one round trip: each asked for, its events in version order
        (an empty list for a stream with none)."""
        rows = await self.conn.fetch(
            f"""
            SELECT {COLUMNS}, c.position, c.hash FROM events e
            LEFT JOIN event_chain c ON c.event_id = e.event_id
            WHERE e.stream_id = ANY($1::text[])
            ORDER BY e.stream_id, e.stream_version
            """,
            sorted(set(stream_ids)),
        )
        found: dict[str, list[RecordedEvent]] = {s: [] for s in stream_ids}
        for r in rows:
            found[r["stream_id"]].append(from_row(r, position=r["position"], hash=r["hash"]))
        return found

    async def read_all(
        self,
        *,
        after: int,
        limit: int,
        where: Selection | None = None,
    ) -> list[RecordedEvent]:
        w = where or Selection()
        rows = await self.conn.fetch(
            f"""
            SELECT {COLUMNS}, c.position, c.hash FROM event_chain c
            JOIN events e ON e.event_id = c.event_id
            WHERE c.position > $1
              AND ($3::text IS NULL OR e.stream_type = $3)
              AND ($4::text IS NULL OR e.event_type = $4)
              AND ($5::text IS NULL OR e.metadata ->> 'organisation' = $5)
              AND ($6::text IS NULL OR e.metadata ->> 'correlation_id' = $6)
              AND ($7::timestamptz IS NULL OR e.recorded_at >= $7)
              AND ($8::timestamptz IS NULL OR e.recorded_at < $8)
            ORDER BY c.position LIMIT $2
            """,
            after,
            limit,
            w.stream_type,
            w.event_type,
            w.organisation,
            w.correlation_id,
            w.recorded_from,
            w.recorded_to,
        )
        return [from_row(r, position=r["position"], hash=r["hash"]) for r in rows]

    async def head(self) -> tuple[int, bytes]:
        return await sealer.head(self.conn)

    async def seal(self, *, limit: int = 1000) -> int:
        return await sealer.seal(self.conn, limit=limit)

    async def verify(
        self,
        *,
        held_checkpoints: Sequence[Mapping[str, Any]] = (),
        deep: bool = False,
        service: str | None = None,
        keys: KeyRing | None = None,
    ) -> chain.Verdict:
        """See sealer.verify: `deep` canonicalises every event again instead of rendering it;
        checkpoints are checked against the keys `keys` pins for `service`."""
        return await sealer.verify(
            self.conn, held_checkpoints=held_checkpoints, deep=deep, service=service, keys=keys
        )
