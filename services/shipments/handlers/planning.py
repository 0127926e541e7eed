"""Planning and loading a convoy: plan, load a pledge line, unload it, cancel.

Loading takes a row lock on the pledge line right after reading the convoy (shared/
event_store.py: a write's first write comes after its reads): every load of the same line, on
any convoy, waits for the one before it and then sees its allocation, so concurrent loads
never take more than remains.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from services.shipments import auth, commands, domain
from services.shipments.handlers.common import HANDLERS, answer, existing, record
from services.shipments.handlers.ports import ports_of
from services.shipments.handlers.repositories import CONVOYS
from shared.repository import UnitOfWork


@HANDLERS.register(commands.PlanConvoy)
async def plan_convoy(command: commands.PlanConvoy, uow: UnitOfWork) -> dict[str, Any]:
    """Raises Forbidden, ValidationFailed (unknown organisations, bad plan), Conflict."""
    plan, caller, world = command.plan, command.caller, ports_of(uow)
    auth.require_planner(caller, origin_id=plan.origin_id, carrier_id=plan.carrier_id)
    await world.require_organisations(
        {f: getattr(plan, f) for f in ("origin_id", "destination_id", "carrier_id")}
    )
    state = await CONVOYS.load(uow, plan.convoy_id)
    writers = (plan.origin_id, plan.carrier_id)
    recorder = auth.recorder(caller.organisation, writers, default=plan.carrier_id)
    drivers = await world.seal_drivers(plan.drivers, recorder=recorder, now=uow.now)
    events = domain.plan(state, replace(plan, drivers=drivers), now=uow.now)
    return answer(await record(uow, state, events))


@HANDLERS.register(commands.LoadLine)
async def load_line(command: commands.LoadLine, uow: UnitOfWork) -> dict[str, Any]:
    load, world = command.load, ports_of(uow)
    state = await existing(uow, command, auth.require_planning)
    line = await world.lock_pledge_line(load.pledge_id, load.line_id)
    taken = await world.allocated(load.pledge_id, load.line_id)
    events = domain.load(state, load, now=uow.now, pledge_line=line, allocated=taken)
    assert line is not None  # domain.load refuses an unknown line
    # the pledge's correlation id follows its goods onto the convoy
    meta = replace(uow.metadata, correlation_id=line.correlation_id or uow.metadata.correlation_id)
    state = await record(uow, state, events, metadata=meta)
    loaded = state.line(load.manifest_line_id)
    assert loaded is not None
    return answer(
        state,
        manifest_line_id=load.manifest_line_id,
        quantity=domain.text(loaded.quantity),
        weight_kg=domain.text(loaded.weight_kg),
        remaining_on_pledge_line=domain.text(line.quantity - taken - load.quantity),
    )


@HANDLERS.register(commands.UnloadLine)
async def unload_line(command: commands.UnloadLine, uow: UnitOfWork) -> dict[str, Any]:
    unload = command.unload
    state = await existing(uow, command, auth.require_planning)
    events = domain.unload(state, unload, now=uow.now)
    state = await record(uow, state, events)
    line = state.line(unload.manifest_line_id)
    assert line is not None
    given_back = {
        "convoy_id": state.convoy_id,
        "manifest_line_id": line.manifest_line_id,
        "pledge_id": line.pledge_id,
        "line_id": line.line_id,
        "quantity": domain.text(line.quantity),
        "reason": unload.reason,
    }
    return answer(state, manifest_line_id=unload.manifest_line_id, given_back=given_back)


@HANDLERS.register(commands.CancelConvoy)
async def cancel_convoy(command: commands.CancelConvoy, uow: UnitOfWork) -> dict[str, Any]:
    before = await existing(uow, command, auth.require_planning)
    state = await record(uow, before, domain.cancel(before, command.cancel, now=uow.now))
    released = [
        {
            "manifest_line_id": x.manifest_line_id,
            "pledge_id": x.pledge_id,
            "line_id": x.line_id,
            "quantity": domain.text(x.quantity),
        }
        for x in before.loaded
    ]
    return answer(state, released=released)
