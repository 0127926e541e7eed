"""Shipments write routes: each validates its request, builds a command (commands.py) and
sends it with `write` to its handler (handlers/). No SQL, no rules.

Every write accepts `Idempotency-Key`; writes to an existing convoy accept `If-Match`, but
road entries (recorded late and in any order) ignore it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from services.shipments import commands, domain, handlers
from services.shipments import responses as R
from services.shipments.requests import (
    CancelIn,
    CloseIn,
    ConvoyId,
    ConvoyIn,
    DeliveryIn,
    EntriesIn,
    IfMatch,
    LineRef,
    LoadIn,
    UnloadIn,
)
from shared import route_batches, route_docs
from shared.auth import Principal
from shared.commands import Command
from shared.events import Metadata
from shared.web import Caller, Ctx, ServiceContext, write

router = route_docs.Router(prefix="/v1", tags=["convoys"])


@dataclass(frozen=True, slots=True)
class ConvoyWrite:
    """A write to an existing convoy: which, who asks, at which version they read it
    (If-Match), and when the request came."""

    convoy_id: str
    request: Request
    ctx: ServiceContext
    caller: Principal
    if_match: int | None
    now: datetime

    def target(self) -> dict[str, Any]:
        """The fields every command on an existing convoy carries (commands.OnConvoy)."""
        return {"convoy_id": self.convoy_id, "caller": self.caller, "if_match": self.if_match}

    async def send(self, status: int, command: Command) -> JSONResponse:
        return await write(self.ctx, self.request, self.caller, status, command)


async def _convoy_write(
    convoy_id: ConvoyId, request: Request, ctx: Ctx, caller: Caller, if_match: IfMatch = None
) -> ConvoyWrite:
    return ConvoyWrite(convoy_id, request, ctx, caller, if_match, ctx.clock())


ToConvoy = Annotated[ConvoyWrite, Depends(_convoy_write)]


@router.create("/convoys", R.ConvoyChanged, "Planned")
async def plan_convoy(body: ConvoyIn, request: Request, ctx: Ctx, caller: Caller) -> JSONResponse:
    """Plan a convoy: origin, recipient, carrier, vehicles, drivers, departure (the logistics
    role of the origin or the carrier)."""
    now = ctx.clock()
    plan = domain.PlanConvoy(
        # reference, origin, destination, carrier, planned departure and note as validated
        **body.model_dump(exclude={"convoy_id", "vehicles", "drivers", "route", "occurred_at"}),
        convoy_id=body.convoy_id or str(uuid.uuid4()),
        vehicles=tuple(
            domain.Vehicle(v.registration, v.type, Decimal(v.capacity_kg)) for v in body.vehicles
        ),
        drivers=tuple(d.model_dump() for d in body.drivers),  # sealed by the handler
        route=tuple(body.route),
        occurred_at=body.occurred_at or now,
    )
    return await write(ctx, request, caller, 201, commands.PlanConvoy(plan=plan, caller=caller))


@router.create(
    "/convoys/{convoy_id}/manifest",
    R.LineLoaded,
    "Loaded",
    errors=route_docs.CHANGE_ERRORS,
    operation_id="loadManifestLine",
)
async def load_line(body: LoadIn, to: ToConvoy) -> JSONResponse:
    """Load a quantity of a committed in-kind pledge line onto one of the convoy's vehicles.
    Never more than remains on the line across all convoys (409 exceeds-remaining), never
    over the vehicle's capacity (409 overweight), never a line more than one delivery can give
    (409 manifest-full: at most 500 lines loaded at once, unloaded ones not counted). A
    quantity is what pledges commits: at most 1000000000000, at most 6 decimal places. Dated
    no earlier than the convoy's plan (422 naming occurred_at)."""
    load = domain.LoadLine(
        manifest_line_id=body.manifest_line_id or str(uuid.uuid4()),
        pledge_id=body.pledge_id,
        line_id=body.line_id,
        quantity=Decimal(body.quantity),
        vehicle=body.vehicle,
        weight_kg=Decimal(body.weight_kg) if body.weight_kg is not None else None,
        occurred_at=body.occurred_at or to.now,
    )
    return await to.send(201, commands.LoadLine(load=load, **to.target()))


@router.change(
    "/convoys/{convoy_id}/manifest/{manifest_line_id}/unload",
    R.LineUnloaded,
    operation_id="unloadManifestLine",
)
async def unload_line(
    convoy_id: ConvoyId,
    manifest_line_id: LineRef,
    body: UnloadIn,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Take a line off before dispatch: its quantity goes back to the pledge line. Dated no
    earlier than the line's load (422 naming occurred_at)."""
    unload = domain.UnloadLine(
        manifest_line_id=manifest_line_id,
        reason=body.reason,
        occurred_at=body.occurred_at or ctx.clock(),
    )
    command = commands.UnloadLine(
        unload=unload, convoy_id=convoy_id, caller=caller, if_match=if_match
    )
    return await write(ctx, request, caller, 200, command)


@router.change("/convoys/{convoy_id}/cancel", R.ConvoyCancelled)
async def cancel_convoy(body: CancelIn, to: ToConvoy) -> JSONResponse:
    """Cancel before dispatch; everything loaded goes back to its pledge line. Dated no earlier
    than the last load or unload (422 naming occurred_at)."""
    cancel = domain.CancelConvoy(reason=body.reason, occurred_at=body.occurred_at or to.now)
    return await to.send(200, commands.CancelConvoy(cancel=cancel, **to.target()))


@router.change("/convoys/{convoy_id}/entries", R.EntriesRecorded, errors=(403, 404, 409, 413, 422))
async def record_entries(
    convoy_id: ConvoyId, body: EntriesIn, request: Request, ctx: Ctx, caller: Caller
) -> JSONResponse:
    """Field entries from the road (dispatch, checkpoint, border_crossing, custody_handoff,
    incident, arrival), one or a batch, late and in any order. All or nothing: a refused entry
    is named in the problem and nothing is stored. An entry sent again unchanged is answered as
    the first time (`already_recorded` counts them). An entry_id is one entry within a request
    too: the same entry twice is recorded once, both places answered alike (counted once, in
    `recorded` or `already_recorded`); the same entry_id with other content is refused (422
    naming `entries[i].entry_id`, the later place), nothing stored. A dispatch is refused while
    the convoy carries more of a pledge line than the line still commits beyond what other
    convoys hold of it (409 exceeds-remaining: pledges reduced it since loading). Entries are
    recorded late and in any order, whatever the convoy's version: If-Match is ignored here (a
    request that loses a race for the convoy is run again, as every request without If-Match)."""
    now = ctx.clock()
    entries = tuple(entry.command() for entry in body.entries)

    async def attempt(meta: Metadata) -> dict[str, Any] | None:
        # without Idempotency-Key (write() then never attempts), the requests to one convoy
        # that arrive together are decided in one transaction (group commit per convoy), each
        # answered as alone
        together = ctx.keyed_group_commit("road-entries", partial(_entries_together, ctx))
        return route_batches.answered(
            await together.submit(convoy_id, handlers.EntriesRequest(entries, caller, meta, now))
        )

    command = commands.RecordEntries(convoy_id=convoy_id, entries=entries, caller=caller)
    return await write(ctx, request, caller, 200, command, attempt=attempt, if_match=False)


async def _entries_together(
    ctx: ServiceContext, convoy_id: str, requests: list[handlers.EntriesRequest]
) -> list[dict[str, Any] | Exception]:
    """Requests of road entries to one convoy that arrived together, in one transaction."""
    together = partial(
        handlers.record_entries_together,
        convoy_id=convoy_id,
        requests=requests,
        projections=ctx.projections,
    )
    return await route_batches.in_transaction(ctx, together)


@router.create(
    "/convoys/{convoy_id}/delivery",
    R.DeliveryConfirmed,
    "Delivery confirmed",
    errors=route_docs.CHANGE_ERRORS,
)
async def confirm_delivery(body: DeliveryIn, to: ToConvoy) -> JSONResponse:
    """The recipient's proof of delivery: per manifest line, received in good condition,
    damaged and short, which must add up to loaded minus lost (422 shows the arithmetic)."""
    delivery = domain.ConfirmDelivery(
        confirmed_by=body.receiver.model_dump(),  # sealed by the handler
        document_name=body.document.name if body.document else None,
        document_sha256=body.document.sha256 if body.document else None,
        lines=tuple(
            domain.DeliveredQuantities(
                manifest_line_id=x.manifest_line_id,
                received=Decimal(x.received),
                damaged=Decimal(x.damaged),
                short=Decimal(x.short),
            )
            for x in body.lines
        ),
        occurred_at=body.occurred_at or to.now,
    )
    return await to.send(201, commands.ConfirmDelivery(delivery=delivery, **to.target()))


@router.change("/convoys/{convoy_id}/close", R.ConvoyChanged)
async def close_convoy(body: CloseIn, to: ToConvoy) -> JSONResponse:
    """Close a delivered convoy (or one whose load was lost): no road event is taken after.
    Dated no earlier than the delivery, the arrival and the road's latest entry (422 naming
    occurred_at)."""
    close = domain.CloseConvoy(note=body.note, occurred_at=body.occurred_at or to.now)
    return await to.send(200, commands.CloseConvoy(close=close, **to.target()))
