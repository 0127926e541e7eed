"""Pledges use cases: one handler per command (commands.py), run in a unit of work
(shared/repository.py): load the streams it decides on, decide (domain), append and project.
The caller owns the transaction.

Every handler loads the streams it decides on before its first write (see
shared/event_store.py). Events on a need's stream carry the need's correlation id, events on a
pledge's stream the pledge's, which is the first answered need's: need -> pledge -> commitment
-> delivery -> fulfilment share one correlation id.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from functools import reduce
from typing import Any, Protocol

import asyncpg

from services.pledges import commands, domain
from services.pledges import events as ev
from services.pledges.handlers.ports import ports
from shared import errors
from shared.codec import Event
from shared.commands import Handlers
from shared.events import Metadata, NewEvent, RecordedEvent
from shared.repository import PostgresUnitOfWork, Repository, UnitOfWork

HANDLERS = Handlers("pledges")

NEEDS = Repository(
    stream_type=ev.STREAM_NEED, codec=ev.CODEC, initial=domain.Need, evolve=domain.evolve_need
)
PLEDGES = Repository(
    stream_type=ev.STREAM_PLEDGE,
    codec=ev.CODEC,
    initial=domain.Pledge,
    evolve=domain.evolve_pledge,
)


def _correlated(metadata: Metadata, correlation_id: str | None) -> Metadata:
    return replace(metadata, correlation_id=correlation_id or metadata.correlation_id)


def _version(recorded: list[RecordedEvent], before: int) -> int:
    return recorded[-1].stream_version if recorded else before


class _Loaded(Protocol):
    """A record as loaded: the version a change appends after, the correlation id it carries."""

    @property
    def version(self) -> int: ...
    @property
    def correlation_id(self) -> str | None: ...


async def _append(
    repository: Repository[Any],
    uow: UnitOfWork,
    record_id: str,
    state: _Loaded,
    events: list[NewEvent],
    *,
    correlation_id: str | None = None,
) -> list[RecordedEvent]:
    """Append after the version `state` was loaded at, with `correlation_id`, else the
    record's, else the request's."""
    meta = _correlated(uow.metadata, correlation_id or state.correlation_id)
    return await repository.append(
        uow, record_id, expected_version=state.version, events=events, metadata=meta
    )


@HANDLERS.register(commands.PostNeed)
async def post_need(command: commands.PostNeed, uow: UnitOfWork) -> dict[str, Any]:
    need, port = command.need, ports(uow)
    state = await NEEDS.load(uow, need.need_id)
    await port.require_organisations({"recipient_id": need.recipient_id})
    # the contact sealed in this transaction, as the recipient records it (shared/privacy.py)
    sealed = await port.seal_contact(need.recipient_id, need.contact, now=uow.now)
    need = replace(need, contact=sealed)
    events = domain.post_need(state, need, now=uow.now, acting_for=command.acting_for)
    recorded = await NEEDS.append(uow, need.need_id, expected_version=0, events=events)
    return {
        "need_id": need.need_id,
        "status": "open",
        "version": _version(recorded, 0),
        "correlation_id": uow.metadata.correlation_id,
    }


async def _changing_need(command: commands.NeedChange, uow: UnitOfWork) -> domain.Need:
    """The need a change decides on, locked alone (ports.lock_need), at the version the
    caller read (If-Match)."""
    await ports(uow).lock_need(command.need_id)
    state = domain.require_need(await NEEDS.load(uow, command.need_id))
    errors.check_if_match(state.version, command.if_match)
    return state


async def _record_need(
    uow: UnitOfWork, state: domain.Need, events: list[NewEvent]
) -> dict[str, Any]:
    recorded = await _append(NEEDS, uow, state.need_id, state, events)
    return {
        "need_id": state.need_id,
        "version": _version(recorded, state.version),
        "correlation_id": state.correlation_id,
    }


@HANDLERS.register(commands.ReviseNeed)
async def revise_need(command: commands.ReviseNeed, uow: UnitOfWork) -> dict[str, Any]:
    state = await _changing_need(command, uow)
    revision, acting_for = command.revision, command.acting_for
    events = domain.revise_need(state, revision, now=uow.now, acting_for=acting_for)
    return await _record_need(uow, state, events)


@HANDLERS.register(commands.EndNeed)
async def end_need(command: commands.EndNeed, uow: UnitOfWork) -> dict[str, Any]:
    state = await _changing_need(command, uow)
    events = domain.end_need(
        state,
        to=command.to,
        reason=command.reason,
        occurred_at=command.occurred_at or uow.now,
        now=uow.now,
        acting_for=command.acting_for,
    )
    return await _record_need(uow, state, events)


@HANDLERS.register(commands.MakePledge)
async def make_pledge(command: commands.MakePledge, uow: UnitOfWork) -> dict[str, Any]:
    pledge, port = command.pledge, ports(uow)
    answered = list(dict.fromkeys(s.need_id for s in pledge.lines if s.need_id is not None))
    for need_id in sorted(answered):
        await port.lock_need(need_id, shared=True)
    state = await PLEDGES.load(uow, pledge.pledge_id)
    needs = {need_id: await NEEDS.load(uow, need_id) for need_id in answered}
    await port.require_organisations(
        {"donor_id": pledge.donor_id, "recipient_id": pledge.recipient_id}
    )
    partnership = (
        await port.partnership(pledge.partnership_id) if pledge.partnership_id is not None else None
    )
    # the contact sealed in this transaction, as the donor records it (shared/privacy.py)
    pledge = replace(
        pledge, contact=await port.seal_contact(pledge.donor_id, pledge.contact, now=uow.now)
    )
    events = domain.make_pledge(
        state,
        pledge,
        now=uow.now,
        acting_for=command.acting_for,
        needs=needs,
        partnership=partnership,
    )
    first_need = needs[answered[0]] if answered else None
    meta = _correlated(uow.metadata, first_need.correlation_id if first_need else None)
    recorded = await PLEDGES.append(
        uow, pledge.pledge_id, expected_version=0, events=events, metadata=meta
    )
    return {
        "pledge_id": pledge.pledge_id,
        "status": "committed" if pledge.commit else "pledged",
        "version": _version(recorded, 0),
        "correlation_id": meta.correlation_id,
    }


async def _changing_pledge(command: commands.PledgeChange, uow: UnitOfWork) -> domain.Pledge:
    """The pledge a change decides on, at the version the caller read (If-Match)."""
    state = domain.require_pledge(await PLEDGES.load(uow, command.pledge_id))
    errors.check_if_match(state.version, command.if_match)
    return state


async def _record_pledge(
    uow: UnitOfWork, state: domain.Pledge, events: list[NewEvent]
) -> dict[str, Any]:
    recorded = await _append(PLEDGES, uow, state.pledge_id, state, events)
    after = PLEDGES.fold(state, recorded)
    return {
        "pledge_id": state.pledge_id,
        "status": after.status.value,
        "version": after.version,
        "correlation_id": state.correlation_id,
    }


@HANDLERS.register(commands.CommitPledge)
async def commit_pledge(command: commands.CommitPledge, uow: UnitOfWork) -> dict[str, Any]:
    state = await _changing_pledge(command, uow)
    at, acting_for = command.occurred_at or uow.now, command.acting_for
    events = domain.commit(state, occurred_at=at, now=uow.now, acting_for=acting_for)
    return await _record_pledge(uow, state, events)


@HANDLERS.register(commands.WithdrawPledge)
async def withdraw_pledge(command: commands.WithdrawPledge, uow: UnitOfWork) -> dict[str, Any]:
    state = await _changing_pledge(command, uow)
    events = domain.withdraw(
        state,
        reason=command.reason,
        occurred_at=command.occurred_at or uow.now,
        now=uow.now,
        acting_for=command.acting_for,
    )
    return await _record_pledge(uow, state, events)


@HANDLERS.register(commands.AmendLine)
async def amend_line(command: commands.AmendLine, uow: UnitOfWork) -> dict[str, Any]:
    state = await _changing_pledge(command, uow)
    events = domain.amend_line(
        state,
        command.line_id,
        size=command.size,
        reason=command.reason,
        occurred_at=command.occurred_at or uow.now,
        now=uow.now,
        acting_for=command.acting_for,
        carried=await ports(uow).carried(state.pledge_id, command.line_id),
    )
    return await _record_pledge(uow, state, events)


@HANDLERS.register(commands.ReceiveMoney)
async def receive_money(command: commands.ReceiveMoney, uow: UnitOfWork) -> dict[str, Any]:
    state = await _changing_pledge(command, uow)
    receipt, acting_for = command.receipt, command.acting_for
    events = domain.receive_money(state, receipt, now=uow.now, acting_for=acting_for)
    return await _record_pledge(uow, state, events)


@HANDLERS.register(commands.ReportDonorFigure)
async def report_donor_figure(
    command: commands.ReportDonorFigure, uow: UnitOfWork
) -> dict[str, Any]:
    state = await _changing_pledge(command, uow)
    figure, acting_for = command.figure, command.acting_for
    events = domain.report_figure(state, figure, now=uow.now, acting_for=acting_for)
    return await _record_pledge(uow, state, events)


@HANDLERS.register(commands.RecordDelivery)
async def record_delivery(command: commands.RecordDelivery, uow: UnitOfWork) -> int:
    """Returns the events appended. Raises domain.UnusableDelivery (the consumer parks the
    message)."""
    states = {pid: await PLEDGES.load(uow, pid) for pid in sorted(command.delivered)}
    appended = 0
    for pledge_id, state in states.items():
        events = domain.record_deliveries(
            state, command.delivered[pledge_id], occurred_at=command.occurred_at
        )
        correlation = state.correlation_id or command.correlation_ids.get(pledge_id)
        await _append(PLEDGES, uow, pledge_id, state, events, correlation_id=correlation)
        appended += len(events)
    return appended


def reading(conn: asyncpg.Connection) -> PostgresUnitOfWork:
    """A unit of work to read streams in (the routes' reads: nothing is appended)."""
    return PostgresUnitOfWork(conn, (), Metadata(), datetime.now(UTC))


async def need_as_of(
    conn: asyncpg.Connection, need_id: str, *, as_of: datetime
) -> tuple[domain.Need, list[Event[Any]]]:
    """The need as it stood at `as_of` (by occurred-at) and its events up to then."""
    history = [e for e in await NEEDS.history(reading(conn), need_id) if e.occurred_at <= as_of]
    return reduce(domain.evolve_need, history, domain.Need(need_id)), history
