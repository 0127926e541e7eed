"""Commands run together: a batch of commands that arrived together (a group commit,
shared/batching.py) runs each command's own registered handler (shared/commands.py) in turn on
one transaction, and appends all their events in one round trip. Nothing here knows a
command: a service says which reads a batch prefetches (its ports) and hands the batch over.

Each command runs in a BatchUnitOfWork: it reads the streams and snapshots as the database
holds them plus what the batch appended so far (so a later command decides on the state the
earlier ones left), and its appends are checked (what the log cannot hold is refused at once:
Unstorable) and kept back, as are its snapshots. A command that fails leaves nothing of itself
in the batch, and the others are answered as if alone: its answer, or the error it raised. At
the end every append goes in one statement, which counts the appends that found their stream
moved on (they insert nothing: ConcurrencyConflict, which fails the batch, to be run again);
then the snapshots kept are written, and everything is projected once.

A command that writes to the database before it has decided (sealing persons, say) is
`guarded`: it runs in a savepoint of its own, so its refusal undoes what it wrote. A batch run
with `savepoints=True` runs every command as alone, in a savepoint, appending and projecting
at once: what a batch whose appends the database refused (SavepointsNeeded) is run again as.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, Unpack

import asyncpg

from shared import errors, event_store
from shared import projections as read_models
from shared.commands import Command, Handlers
from shared.event_store import (
    REFUSED_BY_DATABASE,
    Append,
    ConcurrencyConflict,
    PostgresEventStore,
    Window,
    append_conflict,
    recorded,
)
from shared.events import Metadata, RecordedEvent
from shared.projections import Projection
from shared.repository import PostgresUnitOfWork
from shared.snapshots import PostgresSnapshots, Snapshot

__all__ = [
    "BatchSnapshots",
    "BatchStore",
    "BatchUnitOfWork",
    "Batched",
    "SavepointsNeeded",
    "run_together",
]

log = logging.getLogger("twinaid.group_commit")
C = TypeVar("C", bound=Command)


@dataclass(frozen=True, slots=True)
class Batched:
    """One request's command, with the request's metadata and instant; `guarded`: its handler
    writes before it decides, so it runs in a savepoint of its own."""

    command: Command
    metadata: Metadata
    now: datetime
    guarded: bool = False

    def command_as(self, kind: type[C]) -> C:
        """The command as the one type a service's batch of this kind holds (TypeError for
        another: a route handed the wrong batch a command)."""
        if not isinstance(self.command, kind):
            raise TypeError(f"a batch of {kind.__name__} got a {type(self.command).__name__}")
        return self.command


class SavepointsNeeded(Exception):
    """An append of the batch was refused by the database outside a savepoint, which undid
    the whole transaction: run the batch again in a new one, with `savepoints=True`."""


class BatchSnapshots:
    """The batch's snapshots: the database's, each read once, and those its commands kept,
    written by `flush` (the latest of each stream)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._db = PostgresSnapshots(conn)
        self._read: dict[tuple[str, str], Snapshot | None] = {}
        self.kept: list[Snapshot] = []

    async def get(self, stream_ids: Sequence[str], format: str) -> dict[str, Snapshot]:
        unread = [s for s in stream_ids if (s, format) not in self._read]
        if unread:
            found = await self._db.get(unread, format)
            self._read.update({(s, format): found.get(s) for s in unread})
        out = {}
        for stream_id in stream_ids:
            mine = [k for k in self.kept if (k.stream_id, k.format) == (stream_id, format)]
            latest = mine[-1] if mine else self._read[(stream_id, format)]
            if latest is not None:
                out[stream_id] = latest
        return out

    async def put(self, snapshots: Sequence[Snapshot]) -> None:
        self.kept.extend(snapshots)

    async def flush(self) -> None:
        latest = {s.stream_id: s for s in self.kept}
        await self._db.put(list(latest.values()))


class BatchStore(PostgresEventStore):
    """The batch's view of the log: each stream read once from the database (or given in
    `streams`, read before, from its start), the batch's own appends after it; appends and
    snapshots kept back for `flush`."""

    def __init__(
        self, conn: asyncpg.Connection, streams: Mapping[str, Sequence[RecordedEvent]] = {}
    ) -> None:
        super().__init__(conn)
        # stream -> (the version read after, the events after it)
        self._read = {s: (0, list(events)) for s, events in streams.items()}
        self.snapshots = BatchSnapshots(conn)
        self.appended: list[RecordedEvent] = []  # in order, every command kept so far
        self.pending: list[tuple[Any, ...]] = []  # their twinaid_append arguments

    async def read_stream(self, stream_id: str, **window: Unpack[Window]) -> list[RecordedEvent]:
        if window.get("as_of") is not None or window.get("known_at") is not None:
            raise ValueError("a batch reads streams as they are now")
        after, limit = window.get("after_version", 0), window.get("limit")
        read = self._read.get(stream_id)
        if read is None or read[0] > after:
            events = await super().read_stream(stream_id, after_version=after)
            read = self._read[stream_id] = (after, events)
        found = [*read[1], *(e for e in self.appended if e.stream_id == stream_id)]
        found = [e for e in found if e.stream_version > after]
        return found if limit is None else found[:limit]

    def _version(self, stream_id: str) -> int | None:
        """The stream's version as the batch knows it (None: not known without asking)."""
        mine = [e.stream_version for e in self.appended if e.stream_id == stream_id]
        if mine:
            return mine[-1]
        read = self._read.get(stream_id)
        if read is None or (read[0] > 0 and not read[1]):
            return None
        return read[1][-1].stream_version if read[1] else 0

    async def current_version(self, stream_id: str) -> int:
        version = self._version(stream_id)
        return await super().current_version(stream_id) if version is None else version

    async def append(self, **append: Unpack[Append]) -> list[RecordedEvent]:
        """Kept back for `flush`. ConcurrencyConflict at once when the batch knows the stream
        is elsewhere (else `flush` finds out); Unstorable at once."""
        if not append["events"]:
            return []
        stream_id, expected = append["stream_id"], append["expected_version"]
        actual = self._version(stream_id)
        if actual is not None and actual != expected:
            raise ConcurrencyConflict(stream_id=stream_id, expected=expected, actual=actual)
        self.pending.append(event_store.append_arguments(**append))  # Unstorable: refused
        new = recorded(**append)
        self.appended.extend(new)
        return new

    def mark(self) -> tuple[int, int, int]:
        """What the batch holds so far, for `undo_to`."""
        return len(self.appended), len(self.pending), len(self.snapshots.kept)

    def undo_to(self, mark: tuple[int, int, int]) -> None:
        """Forget what a failed command appended and kept (the `mark` before it ran)."""
        appended, pending, kept = mark
        del self.appended[appended:], self.pending[pending:], self.snapshots.kept[kept:]

    async def flush(self) -> None:
        """Every append kept, as one statement, then the snapshots kept. ConcurrencyConflict
        when a stream moved on (nothing of the batch stays), SavepointsNeeded when the
        database refused an append."""
        if self.pending:
            await self._append_all()
        await self.snapshots.flush()

    async def _append_all(self) -> None:
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


# Every append of a batch as twinaid_append would make each
# (shared/migrations/shared_0001_baseline.sql), in one statement: $1..$5 each append's stream type,
# stream, expected version, instant and metadata, $6 how many events it has; $7..$12 every event
# (the number of its append, id, type, schema version, occurrence, data). Counts the appends that
# found their stream moved on (they insert nothing). The appends run in order: a later one of a
# stream sees the earlier.
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
    """One command's unit of work in a batch: the batch's store, snapshots, connection and
    ports, the command's request's metadata and instant; projection waits for the batch's
    end (the events are in BatchStore.appended)."""

    def __init__(self, store: BatchStore, ports: Any, metadata: Metadata, now: datetime) -> None:
        self.store = store
        self.snapshots = store.snapshots
        self.conn = store.conn
        self.ports = ports
        self.metadata = metadata
        self.now = now

    async def project(self, events: Sequence[RecordedEvent]) -> None:
        """Projected with the whole batch, after its appends."""


class _AloneUnitOfWork(PostgresUnitOfWork):
    """A command of a batch run as alone (savepoints): appends and projects at once."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        projections: Sequence[Projection],
        item: Batched,
        ports: Any,
    ) -> None:
        super().__init__(conn, projections, item.metadata, item.now)
        self.ports = ports


async def run_together(
    conn: asyncpg.Connection,
    handlers: Handlers,
    batch: Sequence[Batched],
    *,
    projections: Sequence[Projection],
    store: BatchStore | None = None,
    ports: Any = None,
    kept: Callable[[Batched, Any], None] | None = None,
    savepoints: bool = False,
) -> list[Any]:
    """Each command's answer, or the error it raised, in order (see the module's doc), in the
    caller's transaction. `store`: one the service read ahead with (what it prefetched for
    the batch); `ports` serve every command (a unit of work's `ports`: None, the handlers'
    own) and `kept` hears each command that succeeded, to tell them. With `savepoints`, each
    command runs as alone on `conn`, in a savepoint. Raises what fails the batch:
    ConcurrencyConflict, SavepointsNeeded, the database's trouble."""
    store = BatchStore(conn) if store is None else store
    outcomes: list[Any] = []
    for item in batch:
        mark = store.mark()
        try:
            if savepoints:
                async with conn.transaction():
                    alone = _AloneUnitOfWork(conn, projections, item, ports)
                    answer = await handlers.handle(item.command, alone)
            elif item.guarded:
                async with conn.transaction():
                    uow = BatchUnitOfWork(store, ports, item.metadata, item.now)
                    answer = await handlers.handle(item.command, uow)
            else:
                uow = BatchUnitOfWork(store, ports, item.metadata, item.now)
                answer = await handlers.handle(item.command, uow)
        except ConcurrencyConflict:
            raise  # a stream moved on under the batch: every command runs again
        except errors.TwinaidError as refused:
            store.undo_to(mark)
            outcomes.append(refused)
            continue
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            raise  # the database's trouble (the transaction may be lost): every command's
        except Exception as failed:
            # raised before anything of it was written (its appends wait for the end; a
            # savepoint undid what a guarded one wrote), so the others are answered as alone
            log.exception("a command of a batch failed")
            store.undo_to(mark)
            outcomes.append(failed)
            continue
        if kept is not None:
            kept(item, answer)
        outcomes.append(answer)
    await store.flush()
    await read_models.project(conn, projections, store.appended)
    return outcomes
