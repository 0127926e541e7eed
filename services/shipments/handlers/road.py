"""Field entries from the road: a batch of one request (RecordEntries), or the requests to one
convoy that arrived together, decided in one transaction (record_entries_together)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from services.shipments import auth, commands, domain
from services.shipments.handlers import sealing
from services.shipments.handlers.common import HANDLERS, answer, as_recorded, existing, record
from services.shipments.handlers.ports import Ports, ports_of
from services.shipments.handlers.repositories import CONVOYS
from shared import errors
from shared.auth import Principal
from shared.event_store import (
    APPEND_CALL,
    REFUSED_BY_DATABASE,
    ConcurrencyConflict,
    append_arguments,
    append_conflict,
)
from shared.events import Metadata, RecordedEvent
from shared.projections import Projection
from shared.repository import PostgresUnitOfWork, UnitOfWork

log = logging.getLogger("twinaid.shipments")


@dataclass(frozen=True, slots=True)
class Known:
    """What a batch of entries is decided on beside the convoy: the registered organisations
    they name, the pledge lines on board, and the entries already recorded under their ids."""

    organisations: set[str]
    lines: dict[tuple[str, str], domain.PledgeLine]
    recorded: dict[str, domain.Entry]


async def _known(world: Ports, state: domain.Convoy, entries: Sequence[domain.FieldEntry]) -> Known:
    named = {org for entry in entries for _, org in entry.organisations()}
    return Known(
        await world.known_organisations(named),
        await world.pledge_lines([(x.pledge_id, x.line_id) for x in state.loaded]),
        await world.recorded_entries(state.convoy_id, [entry.entry_id for entry in entries]),
    )


async def _decide(
    world: Ports,
    state: domain.Convoy,
    entries: Sequence[domain.FieldEntry],
    known: Known,
    *,
    caller: Principal,
    now: datetime,
) -> domain.RoadDecision:
    sealed = [
        await _sealed(world, state, entry, known.recorded.get(entry.entry_id), caller, now)
        for entry in entries
    ]
    return domain.record_entries(
        state,
        sealed,
        now=now,
        known_organisations=known.organisations,
        pledge_lines=known.lines,
        recorded=known.recorded,
    )


def _answer(state: domain.Convoy, decision: domain.RoadDecision) -> dict[str, Any]:
    return answer(
        state,
        recorded=len(decision.events),
        already_recorded=decision.replayed,
        entries=decision.answers,
    )


@HANDLERS.register(commands.RecordEntries)
async def record_entries(command: commands.RecordEntries, uow: UnitOfWork) -> dict[str, Any]:
    """A batch of field entries, all or nothing; re-sent entries are answered as before."""
    world = ports_of(uow)
    state = await existing(uow, command, auth.require_road_writer)
    known = await _known(world, state, command.entries)
    decision = await _decide(
        world, state, command.entries, known, caller=command.caller, now=uow.now
    )
    return _answer(await record(uow, state, decision.events), decision)


async def _sealed(
    world: Ports,
    state: domain.Convoy,
    entry: domain.FieldEntry,
    seen: domain.Entry | None,
    caller: Principal,
    now: datetime,
) -> domain.FieldEntry:
    """A new entry with the persons it names sealed as the caller's organisation records them
    (auth.road_recorder); an entry sent again with them as it recorded them
    (sealing.as_recorded), to compare digests. Its digest as sent is kept too: entries
    recorded before persons were sealed carry that one.

    A caller who may not see people re-sending an entry is answered on the recorded persons,
    never on the names it sent: not by their digest either (it would tell a right guess).
    `seen`: the entry recorded under its id, if any."""
    parties = auth.parties(state)
    if seen is None:
        recorder = auth.road_recorder(caller.organisation, parties)
        details = await world.seal_parties(entry.details, recorder=recorder, now=now)
        if details == entry.details:
            return entry
        return replace(entry, details=details, sent_digest=entry.digest)
    sees = auth.sees_personal_data(caller, parties)
    details = await world.as_recorded(entry.details, seen.data, sees_people=sees)
    if details == entry.details:
        return entry
    return replace(entry, details=details, sent_digest=entry.digest if sees else None)


@dataclass(frozen=True, slots=True)
class EntriesRequest:
    """One request's road entries, as a batch of requests holds them."""

    entries: Sequence[domain.FieldEntry]
    caller: Principal
    metadata: Metadata
    now: datetime


class SavepointsNeeded(Exception):
    """A request of a batch was refused by the database outside a savepoint, which undid the
    whole transaction: run the batch again in a new one, with `savepoints=True`."""


async def _append_all(
    uow: PostgresUnitOfWork,
    stream_id: str,
    pending: Sequence[tuple[Any, ...]],
    appended: Sequence[RecordedEvent],
) -> None:
    """Every request's append (twinaid_append's arguments, each after the version the one
    before leaves), in one round trip, then a check that each took its versions: an append
    that found the stream moved on inserts nothing, and the events counted would be fewer."""
    if not pending:
        return
    conn = uow.conn
    try:
        await conn.executemany(f"SELECT {APPEND_CALL}", pending)
    except asyncpg.UniqueViolationError as exc:
        expected = int(pending[0][2])
        raise append_conflict(exc, stream_id=stream_id, expected=expected) from exc
    except REFUSED_BY_DATABASE as exc:
        raise SavepointsNeeded from exc
    stored = await conn.fetchval(
        "SELECT count(*) FROM events WHERE stream_id = $1 AND event_id = ANY($2::uuid[])",
        stream_id,
        [e.event_id for e in appended],
    )
    if stored != len(appended):
        actual = await uow.store.current_version(stream_id)
        raise ConcurrencyConflict(stream_id=stream_id, expected=int(pending[0][2]), actual=actual)


async def record_entries_together(
    conn: asyncpg.Connection,
    convoy_id: str,
    requests: Sequence[EntriesRequest],
    *,
    projections: Sequence[Projection],
    savepoints: bool = False,
) -> list[dict[str, Any] | Exception]:
    """Requests of road entries to one convoy that arrived together (a group commit per
    convoy), in one transaction the caller owns on `conn` (the unit of work, with the
    service's `projections`, is the handler's): the convoy loaded once, each request decided
    in turn on the state the previous ones left, its events appended with its own metadata,
    and everything projected once. Each request is answered as record_entries would have
    answered it alone, in this order: its answer, or the error it raises. A refusal undoes
    that request only: a request that writes before it is decided (it seals persons) runs in
    a savepoint. The appends go together, in one round trip, after every request is decided;
    should the database refuse one of them (what check_storable lets through), the batch
    raises SavepointsNeeded, to be run again with each request in a savepoint, appending
    alone. A lost race for the convoy (ConcurrencyConflict) or a failure of the
    database fails the whole batch. A batch of one is record_entries itself: its refusal is
    raised (the caller's transaction undoes it)."""
    if len(requests) == 1:
        [alone] = requests
        command = commands.RecordEntries(
            convoy_id=convoy_id, entries=tuple(alone.entries), caller=alone.caller
        )
        one = PostgresUnitOfWork(conn, projections, alone.metadata, alone.now)
        return [await record_entries(command, one)]
    # the batch's (each request's events go with its own metadata and instant)
    uow = PostgresUnitOfWork(conn, projections, Metadata(), requests[0].now)
    world = ports_of(uow)
    state = await CONVOYS.load(uow, convoy_id)
    stream_id = CONVOYS.stream_id(convoy_id)
    known = await _known(world, state, [e for request in requests for e in request.entries])
    outcomes: list[dict[str, Any] | Exception] = []
    appended: list[RecordedEvent] = []
    pending: list[tuple[Any, ...]] = []  # the appends of the requests decided, in order
    for request in requests:
        # a savepoint when the request writes before it is decided (it seals the persons its
        # entries name), or when asked (see SavepointsNeeded); else its refusal wrote nothing
        guarded = savepoints or any(
            entry.details.get(key) for entry in request.entries for key in sealing.PARTIES
        )
        try:
            async with uow.conn.transaction() if guarded else contextlib.nullcontext():
                domain.require_existing(state)
                auth.require_road_writer(request.caller, auth.parties(state))
                decision = await _decide(
                    world, state, request.entries, known, caller=request.caller, now=request.now
                )
                append: dict[str, Any] = {
                    "stream_type": CONVOYS.stream_type,
                    "stream_id": stream_id,
                    "expected_version": state.version,
                    "events": decision.events,
                    "metadata": request.metadata,
                    "now": request.now,
                }
                if savepoints:  # each request's append in its savepoint: refused alone;
                    # projected with the batch's, at its end
                    unprojected = PostgresUnitOfWork(uow.conn, (), request.metadata, request.now)
                    await CONVOYS.append(
                        unprojected,
                        convoy_id,
                        expected_version=state.version,
                        events=decision.events,
                    )
                elif decision.events:  # appended with the others' after the loop
                    pending.append(append_arguments(**append))  # Unstorable: refused
                new = as_recorded(
                    state, decision.events, metadata=request.metadata, now=request.now
                )
        except ConcurrencyConflict:
            raise  # the convoy moved on under the batch: every request runs again
        except errors.TwinaidError as refused:
            outcomes.append(refused)
            continue
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            raise  # the database's trouble (the transaction may be lost): every request's
        except Exception as failed:
            # raised before anything of it was written (its appends wait for the loop's end;
            # a savepoint undid what sealing wrote): the others are answered as alone
            log.exception("road entries of one request of a batch failed")
            outcomes.append(failed)
            continue
        decoded = CONVOYS.codec.decode_all(new)
        for event in decoded:
            state = CONVOYS.evolve(state, event)
            entry = domain.entry_of(event)
            known.recorded.setdefault(entry.entry_id, entry)  # later requests see it
        appended.extend(new)
        outcomes.append(_answer(state, decision))
    await _append_all(uow, stream_id, pending, appended)
    if appended:  # the projection starts from it (handlers/common.py record)
        await CONVOYS.save_snapshot(uow, convoy_id, state)
        await uow.project(appended)
    return outcomes
