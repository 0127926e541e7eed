"""Applying upstream events once: the handler's effect and the event's inbox row (consumer,
event id, upstream, position, chain hash) in ONE transaction, a batch at a time, or one event at
a time with bounded retries when a batch fails. A layer of the consumer runner
(shared/consumer.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
from aiokafka import ConsumerRecord

from shared.consumer_checks import Batch, Checking, against_applied, held_at
from shared.db import CONNECTION_LOST
from shared.errors import ServiceUnavailable
from shared.incoming import Implausible, Incoming

# not the message's fault: retry the batch later rather than park the message
DATABASE_TROUBLE: tuple[type[Exception], ...] = (ServiceUnavailable, *CONNECTION_LOST)
# SQLSTATE classes of an error a message's values cause: data exception (out of range, a NUL
# character, too long), integrity constraint violation, program limit exceeded (a row or an
# index entry too large)
MESSAGE_FAULT_CLASSES = frozenset({"22", "23", "54"})


def message_fault(exc: BaseException) -> bool:
    """Whether the database refused a value a message brought (asyncpg's DataError for an
    argument beyond its column's type, "invalid input for query argument", is SQLSTATE 22000;
    or the server's data or constraint error), so that the same message can only fail again:
    it is to be parked, not its batch fetched again as if the database were down."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "")[:2] in MESSAGE_FAULT_CLASSES
    return False


class _Duplicate(Exception):
    pass


class Applying(Checking):
    applied: int
    duplicates: int
    after_commit: Callable[[], None] | None

    async def apply(self, incoming: Incoming) -> bool:
        """Apply once, in its own transaction: False when it was already applied."""
        try:
            async with self.db.transaction() as conn:
                fresh = await self._apply_in(conn, incoming)
        except _Duplicate:
            fresh = False
        self._count(applied=int(fresh), duplicates=int(not fresh))
        return fresh

    async def apply_batch(self, batch: Batch, *, against_what_was_applied: bool = False) -> None:
        """Apply a fetched batch in ONE transaction (one commit, not one per event): one query
        of what the inbox already holds, the handlers in order, then one insert of the new
        inbox rows. With `against_what_was_applied` that query reads the inbox at each event's
        position and the one before, and an event that clashes with it (`against_applied`) is
        quarantined, not applied; else it reads the batch's event ids. If any handler fails, or
        a replica raced us to an event (the inbox insert's count says so), nothing of the batch
        is kept and each event goes the careful way: its own transaction, bounded retries,
        dead letters. `after_commit` is called only when the handlers appended events."""
        applied = duplicates = 0
        appended = False
        clashes: dict[int, str] = {}
        try:
            async with self.db.transaction() as conn:
                events = [incoming for incoming, _ in batch]
                if against_what_was_applied:
                    held = await held_at(conn, self.name, events)
                    clashes, seen = against_applied(events, held)
                else:
                    seen = set(
                        await conn.fetchval(
                            "SELECT coalesce(array_agg(event_id::text), '{}') FROM inbox"
                            " WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
                            self.name,
                            [incoming.event_id for incoming in events],
                        )
                    )
                fresh: list[Incoming] = []
                for n, incoming in enumerate(events):
                    if n in clashes:
                        continue
                    if str(incoming.event_id) in seen:  # applied before, or twice in the batch
                        duplicates += 1
                        continue
                    seen.add(str(incoming.event_id))
                    handler = self.handlers.get(incoming.upstream, {}).get(incoming.event_type)
                    if handler is not None:
                        await handler(conn, incoming)
                    await self._follow_key_change(conn, incoming)
                    fresh.append(incoming)
                appended = bool(fresh) and await self._remember(conn, fresh)
                applied = len(fresh)
        except DATABASE_TROUBLE:
            raise
        except Exception:
            for n, (incoming, record) in enumerate(batch):
                if n not in clashes:
                    await self.apply_with_retries(incoming, record)
        else:
            self._count(applied=applied, duplicates=duplicates, appended=appended)
        for n, reason in clashes.items():
            await self.quarantine(batch[n][1], batch[n][0], reason)

    async def _remember(self, conn: asyncpg.Connection, applied: list[Incoming]) -> bool:
        """Write the inbox rows of events just applied; whether the transaction appended
        events to this service's own log (its relay has something to seal). Raises _Duplicate
        unless every row was new (a replica applied one of them meanwhile)."""
        row = await conn.fetchrow(
            "WITH written AS ("
            " INSERT INTO inbox (consumer, event_id, upstream, position, hash)"
            " SELECT $1, e, u, p, h"
            " FROM unnest($2::uuid[], $3::text[], $4::bigint[], $5::bytea[]) AS t(e, u, p, h)"
            " ON CONFLICT DO NOTHING RETURNING 1"
            ") SELECT (SELECT count(*) FROM written) AS written,"
            " EXISTS (SELECT 1 FROM events WHERE tx_id = pg_current_xact_id()) AS appended",
            self.name,
            [i.event_id for i in applied],
            [i.upstream for i in applied],
            [i.position for i in applied],
            [i.chain_hash for i in applied],
        )
        assert row is not None
        if row["written"] != len(applied):
            raise _Duplicate
        return bool(row["appended"])

    async def _apply_in(self, conn: asyncpg.Connection, incoming: Incoming) -> bool:
        """The inbox row is written last: the handler loads what it needs before the
        transaction's first write, so events it appends sort after those they were decided on
        (see shared/event_store.py on commit order). Raises _Duplicate when another replica
        applied the event meanwhile (the caller must roll back the handler's effect)."""
        seen = await conn.fetchval(
            "SELECT true FROM inbox WHERE consumer = $1 AND event_id = $2",
            self.name,
            incoming.event_id,
        )
        if seen:
            return False
        handler = self.handlers.get(incoming.upstream, {}).get(incoming.event_type)
        if handler is not None:
            await handler(conn, incoming)
        await self._follow_key_change(conn, incoming)
        fresh = await conn.fetchval(
            "INSERT INTO inbox (consumer, event_id, upstream, position, hash)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
            self.name,
            incoming.event_id,
            incoming.upstream,
            incoming.position,
            incoming.chain_hash,
        )
        if not fresh:
            raise _Duplicate
        return True

    def _count(self, *, applied: int, duplicates: int, appended: bool = True) -> None:
        """Count; `after_commit` (the worker wakes its relay) when the events applied appended
        any of this service's own (a batch tells, a single event is taken to)."""
        self.applied += applied
        self.duplicates += duplicates
        if applied and appended and self.after_commit is not None:
            self.after_commit()

    async def apply_with_retries(
        self, incoming: Incoming, record: ConsumerRecord[bytes, bytes] | None
    ) -> None:
        attempts = max(1, self.settings.consumer_max_retries)
        for attempt in range(1, attempts + 1):
            try:
                await self.apply(incoming)
                return
            except DATABASE_TROUBLE:
                raise  # the database is down: not the message's fault; retry the batch later
            except Implausible as exc:
                await self.quarantine(record, incoming, exc.reason, authentic=True)
                return
            except Exception as exc:
                if attempt == attempts:
                    await self.dead_letter(
                        record, f"handler failed {attempts} times: {exc!r}", incoming=incoming
                    )
                    return
                await asyncio.sleep(0.05 * 2**attempt)
