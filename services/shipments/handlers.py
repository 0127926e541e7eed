"""Shipments use cases: load, check access, seal the persons named, decide, append, project.
The caller owns the transaction.

Every use case loads the convoy stream it decides on before its first write (see
shared/event_store.py). Loading takes a row lock on the pledge line right after that read: every
load of the same line, on any convoy, waits for the one before it and then sees its allocation,
so concurrent loads never take more than remains.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from services.shipments import auth, domain, privacy, projections, views
from services.shipments import events as ev
from services.shipments.queries import pledge_lines as ledger
from shared import directory, errors, snapshots
from shared import projections as proj
from shared.auth import Principal
from shared.event_store import (
    APPEND_CALL,
    REFUSED_BY_DATABASE,
    ConcurrencyConflict,
    PostgresEventStore,
    append_arguments,
    append_conflict,
    fold,
)
from shared.event_store import recorded as recorded_as
from shared.events import Metadata, NewEvent, RecordedEvent
from shared.rows import COLUMNS, from_row

log = logging.getLogger("twinaid.shipments")


async def load_convoy(
    conn: asyncpg.Connection, convoy_id: str, *, as_of: datetime | None = None
) -> domain.Convoy:
    """The convoy now: its snapshot and the events after it (shared/snapshots.py). As of an
    instant: folded from the start of its log (a snapshot holds only the latest state)."""
    stream_id = f"{ev.STREAM_CONVOY}-{convoy_id}"
    store = PostgresEventStore(conn)
    if as_of is not None:
        history = await store.read_stream(stream_id, as_of=as_of)
        return fold(history, domain.Convoy(convoy_id), domain.evolve)
    state, _ = await snapshots.load(
        store, snapshots.PostgresSnapshots(conn), projections.CONVOY, stream_id
    )
    return state


async def recorded_entries(
    conn: asyncpg.Connection, convoy_id: str, entry_ids: Sequence[str]
) -> dict[str, domain.Entry]:
    """The convoy's road entries recorded under these ids, by id, as the log holds them (the
    timeline finds them: the state keeps no list of entries)."""
    # planned afresh each time (a statement of its own, not the connection's cached one): a
    # plan cached while the timeline was small would go on scanning it whole as it grows
    lookup = await conn.prepare(
        "SELECT event_id FROM convoy_timeline WHERE convoy_id = $1 AND entry_id = ANY($2::text[])"
    )
    ids = await lookup.fetch(convoy_id, sorted(set(entry_ids)))
    if not ids:
        return {}
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM events e WHERE e.event_id = ANY($1::uuid[])"
        " AND e.event_type = ANY($2::text[]) ORDER BY e.stream_version",
        [r["event_id"] for r in ids],
        list(ev.ENTRY_EVENTS.values()),
    )
    found: dict[str, domain.Entry] = {}
    for row in rows:
        entry = domain.entry_of(from_row(row))
        found.setdefault(entry.entry_id, entry)
    return found


def parties(state: domain.Convoy) -> auth.Parties:
    return auth.Parties(state.origin_id, state.destination_id, state.carrier_id, state.donors)


async def _record(
    conn: asyncpg.Connection,
    state: domain.Convoy,
    events: list[NewEvent],
    *,
    metadata: Metadata,
    now: datetime,
) -> domain.Convoy:
    """Append after the version `state` was read at, project, and return the new state."""
    recorded = await proj.record(
        conn,
        projections.ALL,
        stream_type=ev.STREAM_CONVOY,
        stream_id=state.convoy_id,
        expected_version=state.version,
        events=events,
        metadata=metadata,
        now=now,
    )
    return fold(recorded, state, domain.evolve)


def _answer(state: domain.Convoy, **extra: Any) -> dict[str, Any]:
    return {
        "convoy_id": state.convoy_id,
        "status": state.status.value,
        "version": state.version,
        **extra,
    }


async def plan_convoy(
    conn: asyncpg.Connection,
    command: domain.PlanConvoy,
    *,
    caller: Principal,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    """Raises Forbidden, ValidationFailed (unknown organisations, bad plan), Conflict."""
    auth.require_planner(caller, origin_id=command.origin_id, carrier_id=command.carrier_id)
    for field in ("origin_id", "destination_id", "carrier_id"):
        await directory.require(conn, getattr(command, field), field=field)
    state = await load_convoy(conn, command.convoy_id)
    writers = (command.origin_id, command.carrier_id)
    recorder = auth.recorder(caller.organisation, writers, default=command.carrier_id)
    drivers = await privacy.seal_drivers(conn, command.drivers, recorder=recorder, now=now)
    events = domain.plan(state, replace(command, drivers=drivers), now=now)
    return _answer(await _record(conn, state, events, metadata=metadata, now=now))


async def _existing(conn: asyncpg.Connection, convoy_id: str) -> domain.Convoy:
    return domain.require_existing(await load_convoy(conn, convoy_id))


async def load_line(
    conn: asyncpg.Connection,
    convoy_id: str,
    command: domain.LoadLine,
    *,
    caller: Principal,
    if_match: int | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    state = await _existing(conn, convoy_id)
    auth.require_planner(caller, origin_id=state.origin_id, carrier_id=state.carrier_id)
    errors.check_if_match(state.version, if_match)
    line = await ledger.lock(conn, command.pledge_id, command.line_id)
    taken = await ledger.allocated(conn, command.pledge_id, command.line_id)
    events = domain.load(state, command, now=now, pledge_line=line, allocated=taken)
    assert line is not None  # domain.load refuses an unknown line
    # the pledge's correlation id follows its goods onto the convoy
    meta = replace(metadata, correlation_id=line.correlation_id or metadata.correlation_id)
    state = await _record(conn, state, events, metadata=meta, now=now)
    loaded = events[0].data
    return _answer(
        state,
        manifest_line_id=command.manifest_line_id,
        quantity=loaded["quantity"],
        weight_kg=loaded["weight_kg"],
        remaining_on_pledge_line=domain.text(line.quantity - taken - command.quantity),
    )


async def unload_line(
    conn: asyncpg.Connection,
    convoy_id: str,
    command: domain.UnloadLine,
    *,
    caller: Principal,
    if_match: int | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    state = await _existing(conn, convoy_id)
    auth.require_planner(caller, origin_id=state.origin_id, carrier_id=state.carrier_id)
    errors.check_if_match(state.version, if_match)
    events = domain.unload(state, command, now=now)
    state = await _record(conn, state, events, metadata=metadata, now=now)
    return _answer(state, manifest_line_id=command.manifest_line_id, given_back=events[0].data)


async def cancel_convoy(
    conn: asyncpg.Connection,
    convoy_id: str,
    command: domain.CancelConvoy,
    *,
    caller: Principal,
    if_match: int | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    state = await _existing(conn, convoy_id)
    auth.require_planner(caller, origin_id=state.origin_id, carrier_id=state.carrier_id)
    errors.check_if_match(state.version, if_match)
    events = domain.cancel(state, command, now=now)
    state = await _record(conn, state, events, metadata=metadata, now=now)
    return _answer(state, released=events[0].data["released"])


async def record_entries(
    conn: asyncpg.Connection,
    convoy_id: str,
    entries: Sequence[domain.FieldEntry],
    *,
    caller: Principal,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    """A batch of field entries, all or nothing; re-sent entries are answered as before."""
    state = await _existing(conn, convoy_id)
    auth.require_road_writer(caller, parties(state))
    named = sorted({org for entry in entries for _, org in entry.organisations()})
    known = {
        r["organisation_id"]
        for r in await conn.fetch(
            "SELECT organisation_id FROM directory WHERE organisation_id = ANY($1)", named
        )
    }
    lines = await ledger.lines(conn, [(x.pledge_id, x.line_id) for x in state.loaded])
    recorded = await recorded_entries(conn, convoy_id, [entry.entry_id for entry in entries])
    decision = domain.record_entries(
        state,
        [
            await _sealed(conn, state, entry, recorded.get(entry.entry_id), caller=caller, now=now)
            for entry in entries
        ],
        now=now,
        known_organisations=known,
        pledge_lines=lines,
        recorded=recorded,
    )
    state = await _record(conn, state, decision.events, metadata=metadata, now=now)
    return _answer(
        state,
        recorded=len(decision.events),
        already_recorded=decision.replayed,
        entries=decision.answers,
    )


@dataclass(frozen=True, slots=True)
class EntriesRequest:
    """One request's road entries, as record_entries takes them."""

    entries: Sequence[domain.FieldEntry]
    caller: Principal
    metadata: Metadata
    now: datetime


async def _append_all(
    conn: asyncpg.Connection,
    stream_id: str,
    pending: Sequence[tuple[Any, ...]],
    appended: Sequence[RecordedEvent],
) -> None:
    """Every request's append (twinaid_append's arguments, each after the version the one
    before leaves), in one round trip, then a check that each took its versions: an append
    that found the stream moved on inserts nothing, and the events counted would be fewer."""
    if not pending:
        return
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
        actual = await PostgresEventStore(conn).current_version(stream_id)
        raise ConcurrencyConflict(stream_id=stream_id, expected=int(pending[0][2]), actual=actual)


class SavepointsNeeded(Exception):
    """A request of a batch was refused by the database outside a savepoint, which undid the
    whole transaction: run the batch again in a new one, with `savepoints=True`."""


async def record_entries_together(
    conn: asyncpg.Connection,
    convoy_id: str,
    requests: Sequence[EntriesRequest],
    *,
    savepoints: bool = False,
) -> list[dict[str, Any] | Exception]:
    """Requests of road entries to one convoy that arrived together (a group commit per
    convoy), in one transaction the caller owns: the convoy loaded once, each request decided
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
        answer = await record_entries(
            conn,
            convoy_id,
            alone.entries,
            caller=alone.caller,
            metadata=alone.metadata,
            now=alone.now,
        )
        return [answer]
    state = await load_convoy(conn, convoy_id)
    stream_id = f"{ev.STREAM_CONVOY}-{convoy_id}"
    store = PostgresEventStore(conn)
    every = [entry for request in requests for entry in request.entries]
    named = sorted({org for entry in every for _, org in entry.organisations()})
    known = {
        r["organisation_id"]
        for r in await conn.fetch(
            "SELECT organisation_id FROM directory WHERE organisation_id = ANY($1)", named
        )
    }
    lines = await ledger.lines(conn, [(x.pledge_id, x.line_id) for x in state.loaded])
    recorded = await recorded_entries(conn, convoy_id, [entry.entry_id for entry in every])
    outcomes: list[dict[str, Any] | Exception] = []
    appended: list[RecordedEvent] = []
    pending: list[tuple[Any, ...]] = []  # the appends of the requests decided, in order
    for request in requests:
        # a savepoint when the request writes before it is decided (it seals the persons its
        # entries name), or when asked (see SavepointsNeeded); else its refusal wrote nothing
        guarded = savepoints or any(
            entry.details.get(key) for entry in request.entries for key in privacy.PARTIES
        )
        try:
            async with conn.transaction() if guarded else contextlib.nullcontext():
                domain.require_existing(state)
                auth.require_road_writer(request.caller, parties(state))
                decision = domain.record_entries(
                    state,
                    [
                        await _sealed(
                            conn,
                            state,
                            entry,
                            recorded.get(entry.entry_id),
                            caller=request.caller,
                            now=request.now,
                        )
                        for entry in request.entries
                    ],
                    now=request.now,
                    known_organisations=known,
                    pledge_lines=lines,
                    recorded=recorded,
                )
                append: dict[str, Any] = {
                    "stream_type": ev.STREAM_CONVOY,
                    "stream_id": stream_id,
                    "expected_version": state.version,
                    "events": decision.events,
                    "metadata": request.metadata,
                    "now": request.now,
                }
                if savepoints:  # each request's append in its savepoint: refused alone
                    new = await store.append(**append)
                else:  # appended with the others' after the loop; what it will record
                    if decision.events:
                        pending.append(append_arguments(**append))  # Unstorable: refused
                    new = recorded_as(**append)
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
        state = fold(new, state, domain.evolve)
        for event in new:
            entry = domain.entry_of(event)
            recorded.setdefault(entry.entry_id, entry)  # later requests see it
        appended.extend(new)
        outcomes.append(
            _answer(
                state,
                recorded=len(decision.events),
                already_recorded=decision.replayed,
                entries=decision.answers,
            )
        )
    await _append_all(conn, stream_id, pending, appended)
    await proj.project(conn, projections.ALL, appended)
    return outcomes


async def _sealed(
    conn: asyncpg.Connection,
    state: domain.Convoy,
    entry: domain.FieldEntry,
    seen: domain.Entry | None,
    *,
    caller: Principal,
    now: datetime,
) -> domain.FieldEntry:
    """A new entry with the persons it names sealed as the caller's organisation records them
    (auth.road_recorder); an entry sent again with them as it recorded them
    (privacy.as_recorded), to compare digests. Its digest as sent is kept too: entries
    recorded before persons were sealed carry that one.

    A caller who may not see people re-sending an entry is answered on the recorded persons,
    never on the names it sent: not by their digest either (it would tell a right guess).
    `seen`: the entry recorded under its id, if any."""
    if seen is None:
        recorder = auth.road_recorder(caller.organisation, parties(state))
        details = await privacy.seal_parties(conn, entry.details, recorder=recorder, now=now)
        if details == entry.details:
            return entry
        return replace(entry, details=details, sent_digest=entry.digest)
    sees = auth.sees_personal_data(caller, parties(state))
    details = await privacy.as_recorded(conn, entry.details, seen.data, sees_people=sees)
    if details == entry.details:
        return entry
    return replace(entry, details=details, sent_digest=entry.digest if sees else None)


async def confirm_delivery(
    conn: asyncpg.Connection,
    convoy_id: str,
    command: domain.ConfirmDelivery,
    *,
    caller: Principal,
    if_match: int | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    state = await _existing(conn, convoy_id)
    auth.require_recipient(caller, parties(state))
    errors.check_if_match(state.version, if_match)
    # the recipient's key, or a registry administrator's for it: the recipient records them
    recorder = auth.recorder(
        caller.organisation, (state.destination_id,), default=state.destination_id
    )
    receiver = await privacy.seal_receiver(conn, command.confirmed_by, recorder=recorder, now=now)
    events = domain.confirm_delivery(state, replace(command, confirmed_by=receiver), now=now)
    correlations = {x.correlation_id for x in state.loaded}
    if len(correlations) == 1 and None not in correlations:
        # everything on board answers one pledge: the delivery continues its flow
        metadata = replace(metadata, correlation_id=correlations.pop())
    state = await _record(conn, state, events, metadata=metadata, now=now)
    document = views.document(state)
    return _answer(
        state,
        outcome=document["delivery"]["outcome"],
        discrepancies=document["discrepancies"],
    )


async def close_convoy(
    conn: asyncpg.Connection,
    convoy_id: str,
    command: domain.CloseConvoy,
    *,
    caller: Principal,
    if_match: int | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    state = await _existing(conn, convoy_id)
    auth.require_closer(caller, parties(state))
    errors.check_if_match(state.version, if_match)
    events = domain.close(state, command, now=now)
    state = await _record(conn, state, events, metadata=metadata, now=now)
    return _answer(state)
