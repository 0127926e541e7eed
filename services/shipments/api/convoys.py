"""Shipments write routes: each validates its request, builds a command (commands.py) and
sends it with `write` to its handler (handlers/). No SQL, no rules.

Every write accepts `Idempotency-Key`; writes to an existing convoy accept `If-Match`.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
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
from shared import problems
from shared.deps import header
from shared.events import Metadata
from shared.repository import PostgresUnitOfWork
from shared.web import Caller, Ctx, ServiceContext, write

router = APIRouter(prefix="/v1", tags=["convoys"])


@router.post(
    "/convoys",
    status_code=201,
    responses=problems.documented(
        R.ConvoyChanged,
        403,
        404,
        409,
        413,
        422,
        status=201,
        headers=problems.ETAG,
        description="Planned",
    ),
    openapi_extra=problems.IDEMPOTENT,
)
async def plan_convoy(body: ConvoyIn, request: Request, ctx: Ctx, caller: Caller) -> JSONResponse:
    """Plan a convoy: origin, recipient, carrier, vehicles, drivers, departure (the logistics
    role of the origin or the carrier)."""
    now = ctx.clock()
    plan = domain.PlanConvoy(
        convoy_id=body.convoy_id or str(uuid.uuid4()),
        reference=body.reference,
        origin_id=body.origin_id,
        destination_id=body.destination_id,
        carrier_id=body.carrier_id,
        planned_departure=body.planned_departure,
        vehicles=tuple(
            domain.Vehicle(v.registration, v.type, Decimal(v.capacity_kg)) for v in body.vehicles
        ),
        drivers=tuple(d.model_dump() for d in body.drivers),  # sealed by the handler
        route=tuple(body.route),
        note=body.note,
        occurred_at=body.occurred_at or now,
    )
    return await write(ctx, request, caller, 201, commands.PlanConvoy(plan, caller))


@router.post(
    "/convoys/{convoy_id}/manifest",
    status_code=201,
    responses=problems.documented(
        R.LineLoaded,
        403,
        404,
        409,
        412,
        413,
        422,
        status=201,
        headers=problems.ETAG,
        description="Loaded",
    ),
    operation_id="loadManifestLine",
    openapi_extra=problems.IDEMPOTENT,
)
async def load_line(
    convoy_id: ConvoyId,
    body: LoadIn,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Load a quantity of a committed in-kind pledge line onto one of the convoy's vehicles.
    Never more than remains on the line across all convoys (409 exceeds-remaining), never
    over the vehicle's capacity (409 overweight)."""
    now = ctx.clock()
    load = domain.LoadLine(
        manifest_line_id=body.manifest_line_id or str(uuid.uuid4()),
        pledge_id=body.pledge_id,
        line_id=body.line_id,
        quantity=Decimal(body.quantity),
        vehicle=body.vehicle,
        weight_kg=Decimal(body.weight_kg) if body.weight_kg is not None else None,
        occurred_at=body.occurred_at or now,
    )
    command = commands.LoadLine(convoy_id, load, caller, if_match)
    return await write(ctx, request, caller, 201, command)


@router.post(
    "/convoys/{convoy_id}/manifest/{manifest_line_id}/unload",
    responses=problems.documented(
        R.LineUnloaded, 403, 404, 409, 412, 413, 422, headers=problems.ETAG
    ),
    operation_id="unloadManifestLine",
    openapi_extra=problems.IDEMPOTENT,
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
    """Take a line off before dispatch: its quantity goes back to the pledge line."""
    unload = domain.UnloadLine(
        manifest_line_id=manifest_line_id,
        reason=body.reason,
        occurred_at=body.occurred_at or ctx.clock(),
    )
    command = commands.UnloadLine(convoy_id, unload, caller, if_match)
    return await write(ctx, request, caller, 200, command)


@router.post(
    "/convoys/{convoy_id}/cancel",
    responses=problems.documented(
        R.ConvoyCancelled, 403, 404, 409, 412, 413, 422, headers=problems.ETAG
    ),
    openapi_extra=problems.IDEMPOTENT,
)
async def cancel_convoy(
    convoy_id: ConvoyId,
    body: CancelIn,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Cancel before dispatch; everything loaded goes back to its pledge line."""
    cancel = domain.CancelConvoy(reason=body.reason, occurred_at=body.occurred_at or ctx.clock())
    command = commands.CancelConvoy(convoy_id, cancel, caller, if_match)
    return await write(ctx, request, caller, 200, command)


@router.post(
    "/convoys/{convoy_id}/entries",
    responses=problems.documented(
        R.EntriesRecorded, 403, 404, 409, 413, 422, headers=problems.ETAG
    ),
    openapi_extra=problems.IDEMPOTENT,
)
async def record_entries(
    convoy_id: ConvoyId, body: EntriesIn, request: Request, ctx: Ctx, caller: Caller
) -> JSONResponse:
    """Field entries from the road (dispatch, checkpoint, border_crossing, custody_handoff,
    incident, arrival), one or a batch, late and in any order. All or nothing: a refused entry
    is named in the problem and nothing is stored. An entry sent again unchanged is answered as
    the first time (`already_recorded` counts them)."""
    now = ctx.clock()
    entries = tuple(entry.command() for entry in body.entries)

    async def attempt(meta: Metadata) -> dict[str, Any] | None:
        # without If-Match (and Idempotency-Key: write() then never attempts), the requests
        # to one convoy that arrive together are decided in one transaction (group commit per
        # convoy), each answered as alone
        if header(request, b"if-match") is not None:
            return None
        together = ctx.keyed_group_commit("road-entries", partial(_entries_together, ctx))
        answer = await together.submit(
            convoy_id, handlers.EntriesRequest(entries, caller, meta, now)
        )
        if isinstance(answer, Exception):
            raise answer
        result: dict[str, Any] = answer
        return result

    command = commands.RecordEntries(convoy_id, entries, caller)
    return await write(ctx, request, caller, 200, command, attempt=attempt)


async def _entries_together(
    ctx: ServiceContext, convoy_id: str, requests: list[handlers.EntriesRequest]
) -> list[dict[str, Any] | Exception]:
    """Requests of road entries to one convoy that arrived together, in one transaction."""
    try:
        async with ctx.db.transaction() as conn:
            uow = PostgresUnitOfWork(conn, ctx.projections, Metadata(), ctx.clock())
            return await handlers.record_entries_together(uow, convoy_id, requests)
    except handlers.SavepointsNeeded:
        async with ctx.db.transaction() as conn:
            uow = PostgresUnitOfWork(conn, ctx.projections, Metadata(), ctx.clock())
            return await handlers.record_entries_together(uow, convoy_id, requests, savepoints=True)


@router.post(
    "/convoys/{convoy_id}/delivery",
    status_code=201,
    responses=problems.documented(
        R.DeliveryConfirmed,
        403,
        404,
        409,
        412,
        413,
        422,
        status=201,
        headers=problems.ETAG,
        description="Delivery confirmed",
    ),
    openapi_extra=problems.IDEMPOTENT,
)
async def confirm_delivery(
    convoy_id: ConvoyId,
    body: DeliveryIn,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    if_match: IfMatch = None,
) -> JSONResponse:
    """The recipient's proof of delivery: per manifest line, received in good condition,
    damaged and short, which must add up to loaded minus lost (422 shows the arithmetic)."""
    now = ctx.clock()
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
        occurred_at=body.occurred_at or now,
    )
    command = commands.ConfirmDelivery(convoy_id, delivery, caller, if_match)
    return await write(ctx, request, caller, 201, command)


@router.post(
    "/convoys/{convoy_id}/close",
    responses=problems.documented(
        R.ConvoyChanged, 403, 404, 409, 412, 413, 422, headers=problems.ETAG
    ),
    openapi_extra=problems.IDEMPOTENT,
)
async def close_convoy(
    convoy_id: ConvoyId,
    body: CloseIn,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    if_match: IfMatch = None,
) -> JSONResponse:
    """Close a delivered convoy (or one whose load was lost): no road event is taken after."""
    close = domain.CloseConvoy(note=body.note, occurred_at=body.occurred_at or ctx.clock())
    command = commands.CloseConvoy(convoy_id, close, caller, if_match)
    return await write(ctx, request, caller, 200, command)
