"""Field entries from the road: a batch of one request (RecordEntries), or the requests to one
convoy that arrived together, each run by that handler in one transaction (a group commit,
shared/group_commit.py: record_entries_together)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.shipments import auth, commands, domain
from services.shipments import events as ev
from services.shipments.handlers import sealing
from services.shipments.handlers.common import HANDLERS, answer, existing, record
from services.shipments.handlers.ports import PledgeLines, Ports, PostgresPorts, ports_of
from services.shipments.handlers.repositories import CONVOYS
from shared import group_commit
from shared.auth import Principal
from shared.events import Metadata
from shared.projections import Projection
from shared.repository import UnitOfWork


@dataclass(frozen=True, slots=True)
class Known:
    """What a batch of entries is decided on beside the convoy: the registered organisations
    they name, the pledge lines on board (and, for a dispatch, what every convoy holds of
    them), and the entries already recorded under their ids."""

    organisations: set[str]
    lines: dict[tuple[str, str], domain.PledgeLine]
    recorded: dict[str, domain.Entry]
    allocated: dict[tuple[str, str], Decimal] | None  # None: not read (no dispatch)


async def _known(world: Ports, state: domain.Convoy, entries: Sequence[domain.FieldEntry]) -> Known:
    named = {org for entry in entries for _, org in entry.organisations()}
    on_board = sorted({(x.pledge_id, x.line_id) for x in state.loaded})
    dispatching = any(entry.kind == "dispatch" for entry in entries)
    return Known(
        await world.known_organisations(named),
        await world.pledge_lines(on_board),
        await world.recorded_entries(state.convoy_id, [entry.entry_id for entry in entries]),
        await world.allocated_lines(on_board) if dispatching else None,
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
        allocated=known.allocated,
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


ENTRY_EVENTS = frozenset(ev.ENTRY_EVENTS.values())


def _writes_first(entries: Sequence[domain.FieldEntry]) -> bool:
    """The entries name persons, sealed (written) before the request is decided: the request
    runs guarded, in a savepoint of its own, so that its refusal undoes them."""
    return any(entry.details.get(key) for entry in entries for key in sealing.PARTIES)


class _BatchPorts(PostgresPorts):
    """What a batch of requests to one convoy asks is read once for the batch: the
    organisations its entries name, the pledge lines on board and the entries already
    recorded under their ids. A request is answered from that and from the entries the
    requests before it recorded (the batch's appends, not projected yet)."""

    def __init__(
        self,
        store: group_commit.BatchStore,
        state: domain.Convoy,
        entries: Sequence[domain.FieldEntry],
        known: Known,
    ) -> None:
        super().__init__(store.conn)
        self.store = store
        self.stream_id = CONVOYS.stream_id(state.convoy_id)
        self.named = {org for entry in entries for _, org in entry.organisations()}
        self.on_board = {(x.pledge_id, x.line_id) for x in state.loaded}
        self.asked = {entry.entry_id for entry in entries}
        self.known = known
        self.decoded: dict[uuid.UUID, domain.Entry] = {}  # the batch's entries, by event

    async def known_organisations(self, organisation_ids: Collection[str]) -> set[str]:
        if not set(organisation_ids) <= self.named:
            return await super().known_organisations(organisation_ids)
        return set(organisation_ids) & self.known.organisations

    async def pledge_lines(self, keys: Sequence[tuple[str, str]]) -> PledgeLines:
        if not set(keys) <= self.on_board:
            return await super().pledge_lines(keys)
        return {k: self.known.lines[k] for k in keys if k in self.known.lines}

    async def allocated_lines(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Decimal]:
        # road entries load nothing: what convoys hold is as it was before the batch
        held = self.known.allocated
        if held is None or not set(keys) <= self.on_board:
            return await super().allocated_lines(keys)
        return {k: held[k] for k in keys if k in held}

    async def recorded_entries(
        self, convoy_id: str, entry_ids: Sequence[str]
    ) -> dict[str, domain.Entry]:
        wanted = set(entry_ids)
        if CONVOYS.stream_id(convoy_id) != self.stream_id or not wanted <= self.asked:
            return await super().recorded_entries(convoy_id, entry_ids)
        found = {i: e for i, e in self.known.recorded.items() if i in wanted}
        for event in self.store.appended:  # the first recorded under an id is the one
            if event.stream_id == self.stream_id and event.event_type in ENTRY_EVENTS:
                entry = self.decoded.get(event.event_id)
                if entry is None:
                    entry = domain.entry_of(CONVOYS.codec.decode(event))
                    self.decoded[event.event_id] = entry
                if entry.entry_id in wanted:
                    found.setdefault(entry.entry_id, entry)
        return found


async def record_entries_together(
    conn: asyncpg.Connection,
    convoy_id: str,
    requests: Sequence[EntriesRequest],
    *,
    projections: Sequence[Projection],
    savepoints: bool = False,
) -> list[dict[str, Any] | Exception]:
    """Requests of road entries to one convoy that arrived together (a group commit per
    convoy), in one transaction the caller owns on `conn`, with the service's `projections`
    (shared/group_commit.py): each request is run by record_entries, in turn, on the convoy
    as the requests before it left it, and answered as record_entries would have answered it
    alone, in this order: its answer, or the error it raises (a refusal undoes that request
    only; one whose entries name persons runs in a savepoint, as sealing them writes). The
    convoy is loaded once and what the entries name read once, before any request is
    decided; the appends go together, in one round trip, and everything is projected once.
    Raises ConcurrencyConflict when the convoy moved on under the batch, SavepointsNeeded
    when the database refused an append (run the batch again with `savepoints=True`: each
    request as alone, in a savepoint), and the database's failures."""
    batch = [
        group_commit.Batched(
            commands.RecordEntries(
                convoy_id=convoy_id, entries=tuple(request.entries), caller=request.caller
            ),
            request.metadata,
            request.now,
            guarded=_writes_first(request.entries),
        )
        for request in requests
    ]
    store = group_commit.BatchStore(conn)
    ports: Ports | None = None  # as alone (savepoints): each reads what those before wrote
    if not savepoints:
        # the convoy first, before the transaction's first write (shared/event_store.py)
        reader = group_commit.BatchUnitOfWork(store, None, Metadata(), requests[0].now)
        state = await CONVOYS.load(reader, convoy_id)
        entries = [entry for request in requests for entry in request.entries]
        known = await _known(PostgresPorts(conn), state, entries)
        ports = _BatchPorts(store, state, entries, known)
    return await group_commit.run_together(
        conn,
        HANDLERS,
        batch,
        projections=projections,
        store=store,
        ports=ports,
        savepoints=savepoints,
    )
