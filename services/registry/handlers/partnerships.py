"""Partnerships' handlers: propose one, move it along its lifecycle."""

from __future__ import annotations

from typing import Any

from services.registry import commands, domain
from services.registry import events as ev
from services.registry.handlers import ports
from services.registry.handlers.common import HANDLERS, ORGANISATIONS, PARTNERSHIPS
from shared import errors
from shared.errors import NotFound
from shared.repository import UnitOfWork


@HANDLERS.register(commands.ProposePartnership)
async def propose_partnership(
    command: commands.ProposePartnership, uow: UnitOfWork
) -> dict[str, Any]:
    proposal = command.proposal
    state = await PARTNERSHIPS.load(uow, proposal.partnership_id)
    a, b = proposal.organisations
    parties = (await ORGANISATIONS.load(uow, a), await ORGANISATIONS.load(uow, b))
    events = domain.propose(
        state, proposal, now=uow.now, acting_for=command.acting_for, parties=parties
    )
    recorded = await PARTNERSHIPS.append(
        uow, proposal.partnership_id, expected_version=0, events=events
    )
    return {
        "partnership_id": proposal.partnership_id,
        "status": "proposed",
        "version": len(recorded),
    }


@HANDLERS.register(commands.ChangePartnershipStatus)
async def change_partnership_status(
    command: commands.ChangePartnershipStatus, uow: UnitOfWork
) -> dict[str, Any]:
    """The partnership's status and version after the command. A member's move to agreed or
    signed that waits for the other organisation's agreement answers the unchanged status with
    `awaiting_agreement_of` (the other organisation) and `agreed` (the caller's)."""
    partnership_id, change, acting_for = command.partnership_id, command.change, command.acting_for
    state = await PARTNERSHIPS.load(uow, partnership_id)
    if not state.exists:
        raise NotFound(f"partnership {partnership_id} does not exist")
    errors.check_if_match(state.version, command.if_match)
    twin = None
    if change.to is domain.PartnershipStatus.SIGNED:
        pair = domain.pair_key(*state.organisations)
        found = ports.of(uow)
        # one signing per pair and kind at a time: the check below cannot race
        await found.lock([f"partnership:{pair[0]}:{pair[1]}:{state.kind}"])
        twin = await found.signed_twin(pair, state.kind, partnership_id)
    events = domain.change_status(
        state, change, now=uow.now, acting_for=acting_for, active_twin=twin
    )
    recorded = await PARTNERSHIPS.append(
        uow, partnership_id, expected_version=state.version, events=events
    )
    version = state.version + len(recorded)
    moved = any(e.event_type == ev.PARTNERSHIP_STATUS_CHANGED for e in events)
    if acting_for is not None and not moved and change.to in domain.CONSENTED:
        return {
            "partnership_id": partnership_id,
            "status": state.status.value,
            "version": version,
            "agreed": [acting_for],
            "awaiting_agreement_of": [state.other(acting_for)],
        }
    return {"partnership_id": partnership_id, "status": change.to.value, "version": version}
