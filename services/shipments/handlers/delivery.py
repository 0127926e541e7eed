"""The end of a convoy's trip: the recipient's proof of delivery, and closing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from services.shipments import auth, commands, domain, views
from services.shipments.handlers.common import HANDLERS, answer, existing, record
from services.shipments.handlers.ports import ports_of
from shared.repository import UnitOfWork


@HANDLERS.register(commands.ConfirmDelivery)
async def confirm_delivery(command: commands.ConfirmDelivery, uow: UnitOfWork) -> dict[str, Any]:
    caller, delivery = command.caller, command.delivery
    state = await existing(uow, command, auth.require_recipient)
    # the recipient's key, or a registry administrator's for it: the recipient records them
    recorder = auth.recorder(
        caller.organisation, (state.destination_id,), default=state.destination_id
    )
    world = ports_of(uow)
    receiver = await world.seal_receiver(delivery.confirmed_by, recorder=recorder, now=uow.now)
    events = domain.confirm_delivery(state, replace(delivery, confirmed_by=receiver), now=uow.now)
    metadata = uow.metadata
    correlations = {x.correlation_id for x in state.loaded}
    if len(correlations) == 1 and None not in correlations:
        # everything on board answers one pledge: the delivery continues its flow
        metadata = replace(metadata, correlation_id=correlations.pop())
    state = await record(uow, state, events, metadata=metadata)
    assert state.delivery is not None
    return answer(
        state,
        outcome="partial" if state.delivery.partial else "full",
        discrepancies=views.discrepancies(state),
    )


@HANDLERS.register(commands.CloseConvoy)
async def close_convoy(command: commands.CloseConvoy, uow: UnitOfWork) -> dict[str, Any]:
    state = await existing(uow, command, auth.require_closer)
    return answer(await record(uow, state, domain.close(state, command.close, now=uow.now)))
