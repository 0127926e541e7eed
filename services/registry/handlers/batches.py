"""Commands run together: a batch of commands that arrived together (a group commit,
shared/batching.py) runs each command's own handler in turn on one transaction, and appends
all their events in one round trip. Nothing here knows a command: it is generic (its place is
shared/, beside batching.py; the registry's registrations are its first user).

Each command runs in a BatchUnitOfWork: it reads the streams as the database holds them plus
what the batch appended so far (so a later command decides on the state the earlier ones
left), and its appends are checked (what the log cannot hold is refused at once: Unstorable)
and kept back. A command that fails leaves nothing of itself in the batch, and the others are
answered as if alone: its answer, or the error it raised. At the end every append goes in one
statement, which counts the appends that found their stream moved on (they insert nothing:
ConcurrencyConflict, which fails the batch, to be run again); then everything is projected
once.

A command must not write to the database before it has decided (sealing persons, say): its
refusal would leave that behind. Those are run alone, or the batch with `savepoints=True`:
each command as alone, in a savepoint of its own, appending and projecting at once, which is
also what a batch whose appends the database refuses (SavepointsNeeded) is run again as.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared import errors
from shared.commands import Command, Handlers
from shared.event_store import (
    REFUSED_BY_DATABASE,
    ConcurrencyConflict,
    PostgresEventStore,
    append_arguments,
    append_conflict,
    recorded,
)
from shared.events import Metadata, NewEvent, RecordedEvent
from shared.projections import Projection, project
from shared.repository import PostgresUnitOfWork

log = logging.getLogger("twinaid.batches")


@dataclass(frozen=True, slots=True)
class Batched:
    """One request's command, with the request's metadata and instant."""

    command: Command
    metadata: Metadata
    now: datetime


class SavepointsNeeded(Exception):
    """An append of the batch was refused by the database outside a savepoint, which undid
    the whole transaction: run the batch again in a new one, with `savepoints=True`."""


class BatchStore(PostgresEventStore):
    """The batch's view of the log: the database's streams (those in `streams`, read before,
    as they are there) and the batch's own appends after them; appends kept back for
    `flush`."""

    def __init__(
        self, conn: asyncpg.Connection, streams: Mapping[str, list[RecordedEvent]]
    ) -> None:
        super().__init__(conn)
        self._streams = streams
        self.appended: list[RecordedEvent] = []  # in order, every command kept so far
        self.pending: list[tuple[Any, ...]] = []  # their twinaid_append arguments

    async def read_stream(
        self,
        stream_id: str,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        after_version: int = 0,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        if as_of is not None or known_at is not None:
            raise ValueError("a batch reads streams as they are now")
        found = self._streams.get(stream_id)
        if found is None:
            found = await super().read_stream(stream_id)
        found = [*found, *(e for e in self.appended if e.stream_id == stream_id)]
        found = [e for e in found if e.stream_version > after_version]
        return found if limit is None else found[:limit]

    async def current_version(self, stream_id: str) -> int:
        return len(await self.read_stream(stream_id))

    async def append(
        self,
        *,
        stream_type: str,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        metadata: Metadata,
        now: datetime,
    ) -> list[RecordedEvent]:
        if not events:
            return []
        actual = await self.current_version(stream_id)
        if actual != expected_version:
            raise ConcurrencyConflict(stream_id=stream_id, expected=expected_version, actual=actual)
        append: dict[str, Any] = {
            "stream_type": stream_type,
            "stream_id": stream_id,
            "expected_version": expected_version,
            "events": events,
            "metadata": metadata,
            "now": now,
        }
        self.pending.append(append_arguments(**append))  # Unstorable: refused at once
        new = recorded(**append)
        self.appended.extend(new)
        return new

    def undo_to(self, appended: int, pending: int) -> None:
        """Forget what a failed command appended (the lengths before it ran)."""
        del self.appended[appended:], self.pending[pending:]

    async def flush(self) -> None:
        """Every append kept, as one statement; ConcurrencyConflict when a stream moved on
        (nothing of the batch stays), SavepointsNeeded when the database refused one."""
        if not self.pending:
            return
        appends = list(zip(*self.pending, strict=True))
        events = [(k, *e) for k, p in enumerate(self.pending, 1) for e in zip(*p[5:], strict=True)]
        try:
            short = await self.conn.fetchval(
                APPEND_ALL,
                *(list(column) for column in appends[:5]),
                [len(p[5]) for p in self.pending],
                *(list(column) for column in zip(*events, strict=True)),
            )
        except asyncpg.UniqueViolationError as exc:
            raise append_conflict(exc, stream_id="(a batch)", expected=0) from exc
        except REFUSED_BY_DATABASE as exc:
            raise SavepointsNeeded from exc
        if short:
            raise ConcurrencyConflict(stream_id="(a batch)", expected=0, actual=-1)


# Every append of a batch as twinaid_append would make each (shared/schema.sql), in one
# statement: $1..$5 each append's stream type, stream, expected version, instant and
# metadata, $6 how many events it has; $7..$12 every event (the number of its append, id,
# type, schema version, occurrence, data). Counts the appends that found their stream moved on
# (they insert nothing). The appends run in order: a later one of a stream sees the earlier.
APPEND_ALL = """
SELECT count(*) FILTER (
    WHERE twinaid_append(a.stream_type, a.stream_id, a.expected, a.recorded_at, a.metadata,
                         e.ids, e.types, e.versions, e.occurred, e.data) <> a.n)
FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::text[], $6::int[])
     WITH ORDINALITY AS a(stream_type, stream_id, expected, recorded_at, metadata, n, i)
CROSS JOIN LATERAL (
    SELECT array_agg(v.id ORDER BY v.o), array_agg(v.ty ORDER BY v.o),
           array_agg(v.sv ORDER BY v.o), array_agg(v.oc ORDER BY v.o), array_agg(v.d ORDER BY v.o)
    FROM unnest($7::int[], $8::uuid[], $9::text[], $10::int[], $11::timestamptz[], $12::text[])
         WITH ORDINALITY AS v(k, id, ty, sv, oc, d, o)
    WHERE v.k = a.i
) AS e(ids, types, versions, occurred, data)
"""


class BatchUnitOfWork:
    """One command's unit of work in a batch: the batch's store, connection and ports, the
    command's request's metadata and instant; projection waits for the batch's end."""

    def __init__(self, store: BatchStore, ports: Any, metadata: Metadata, now: datetime) -> None:
        self.store = store
        self.conn = store.conn
        self.ports = ports
        self.snapshots = None
        self.metadata = metadata
        self.now = now

    async def project(self, events: Sequence[RecordedEvent]) -> None:
        """Projected with the whole batch, after its appends (BatchStore.appended)."""


async def run_together(
    conn: asyncpg.Connection,
    handlers: Handlers,
    batch: Sequence[Batched],
    *,
    projections: Sequence[Projection],
    store: BatchStore,
    ports: Any,
    kept: Callable[[Batched, Any], None] | None = None,
    savepoints: bool = False,
) -> list[Any]:
    """Each command's answer, or the error it raised, in order (see the module's doc). `ports`
    serve every command (`kept` hears each command that succeeded, to tell them); with
    `savepoints`, each command runs as alone on `conn`, in a savepoint. Raises what fails
    the batch: ConcurrencyConflict, SavepointsNeeded, the database's trouble."""
    outcomes: list[Any] = []
    for item in batch:
        marks = len(store.appended), len(store.pending)
        try:
            if savepoints:
                async with conn.transaction():
                    uow: Any = PostgresUnitOfWork(conn, projections, item.metadata, item.now)
                    uow.ports = ports
                    answer = await handlers.handle(item.command, uow)
            else:
                uow = BatchUnitOfWork(store, ports, item.metadata, item.now)
                answer = await handlers.handle(item.command, uow)
        except ConcurrencyConflict:
            raise  # a stream moved on under the batch: every command runs again
        except errors.TwinaidError as refused:
            store.undo_to(*marks)
            outcomes.append(refused)
            continue
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            raise  # the database's trouble (the transaction may be lost): every command's
        except Exception as failed:
            # raised before anything of it was written (its appends wait for the end), so
            # the others are answered as alone
            log.exception("a command of a batch failed")
            store.undo_to(*marks)
            outcomes.append(failed)
            continue
        if kept is not None:
            kept(item, answer)
        outcomes.append(answer)
    await store.flush()
    await project(conn, projections, store.appended)
    return outcomes
