"""Shipments read routes: tracking views, timelines, discrepancies, loadable pledge lines."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.shipments import access, domain, handlers, ledger, queries, views
from services.shipments.requests import (
    AsOf,
    ConvoyId,
    Cursor,
    Limit,
    LineRef,
    OrgFilter,
)
from shared import instants
from shared.errors import NotFound
from shared.web import Caller, Ctx

router = APIRouter(prefix="/v1")


@router.get("/convoys", tags=["tracking"])
async def list_convoys(
    ctx: Ctx,
    caller: Caller,
    status: domain.ConvoyStatus | None = None,
    organisation: OrgFilter = None,
    pledge_id: Annotated[str | None, Query(max_length=100)] = None,
    donor: OrgFilter = None,
    recipient: OrgFilter = None,
    carrier: OrgFilter = None,
    origin: OrgFilter = None,
    departs_from: Annotated[instants.QueryInstant | None, Query()] = None,
    departs_to: Annotated[instants.QueryInstant | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Convoys the caller plays a part in (auditors: all), by status, by any organisation's
    part (`organisation`), pledge, donor, recipient, carrier, origin and departure period;
    newest departure first."""
    async with ctx.db.connection() as conn:
        return await queries.convoys(
            conn,
            caller,
            status=status.value if status else None,
            organisation=organisation,
            pledge_id=pledge_id,
            donor=donor,
            recipient=recipient,
            carrier=carrier,
            origin=origin,
            departs_from=departs_from,
            departs_to=departs_to,
            cursor=cursor,
            limit=limit,
        )


@router.get("/tracking/in-transit", tags=["tracking"])
async def in_transit(ctx: Ctx, caller: Caller, organisation: OrgFilter = None) -> dict[str, Any]:
    """Every convoy on the road (in transit, at a border, held) with its last checkpoint,
    custody holder and the age of its last news, stalest first. Lost convoys are not here."""
    async with ctx.db.connection() as conn:
        return await queries.in_transit(conn, caller, organisation=organisation, now=ctx.clock())


@router.get("/convoys/{convoy_id}", tags=["tracking"])
async def get_convoy(
    convoy_id: ConvoyId, ctx: Ctx, caller: Caller, as_of: AsOf = None
) -> dict[str, Any]:
    """A convoy: status, position (last checkpoint), custody holder, manifest with what is
    lost, in transit and delivered per line, incidents, delivery and discrepancies. Drivers
    and named people only for the carrier, the recipient and auditors. `as_of` folds the
    log up to that instant."""
    async with ctx.db.connection() as conn:
        if as_of is None:
            return await queries.convoy(conn, caller, convoy_id)
        state = await handlers.load_convoy(conn, convoy_id, as_of=as_of)
    if not state.exists:
        raise NotFound(f"convoy {convoy_id} did not exist at {as_of.isoformat()}")
    parties = handlers.parties(state)
    access.require_read(caller, parties, convoy_id)
    return {**access.convoy_for(caller, views.document(state), parties), "as_of": as_of.isoformat()}


@router.get("/convoys/{convoy_id}/timeline", tags=["tracking"])
async def timeline(convoy_id: ConvoyId, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    """Every event of the convoy ordered by when it occurred, each with when it was recorded."""
    async with ctx.db.connection() as conn:
        return await queries.timeline(conn, caller, convoy_id)


@router.get("/discrepancies", tags=["tracking"])
async def discrepancies(ctx: Ctx, caller: Caller, organisation: OrgFilter = None) -> dict[str, Any]:
    """Lines that arrived damaged or short, or were lost on the road: the sender, recipient
    and carrier see every line of their convoys, a donor its own lines."""
    async with ctx.db.connection() as conn:
        return await queries.discrepancies(conn, caller, organisation=organisation)


@router.get("/pledge-lines", tags=["pledge lines"])
async def pledge_lines(
    ctx: Ctx,
    caller: Caller,
    donor: OrgFilter = None,
    recipient: OrgFilter = None,
    status: Annotated[str | None, Query(pattern=r"^(committed|withdrawn|fulfilled)$")] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    loadable: bool = False,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """In-kind pledge lines as pledges announced them, with what convoys hold of each
    (`allocated`) and what may still be loaded (`loadable`)."""
    async with ctx.db.connection() as conn:
        return await ledger.pledge_lines(
            conn,
            donor=donor,
            recipient=recipient,
            status=status,
            category=category,
            loadable_only=loadable,
            cursor=cursor,
            limit=limit,
        )


@router.get("/pledge-lines/{pledge_id}/{line_id}", tags=["pledge lines"])
async def pledge_line(
    pledge_id: LineRef, line_id: LineRef, ctx: Ctx, caller: Caller
) -> dict[str, Any]:
    """One pledge line with the quantity each convoy took of it."""
    async with ctx.db.connection() as conn:
        return await ledger.pledge_line_view(conn, pledge_id, line_id)
