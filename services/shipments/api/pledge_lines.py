"""Pledge lines as shipments knows them: what convoys hold of each and what may still be loaded."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from services.shipments import responses as R
from services.shipments.queries import pledge_lines as ledger
from services.shipments.requests import LineRef, OrgFilter
from shared import route_docs
from shared.route_params import Page, paged
from shared.web import Caller, Ctx

router = route_docs.Router(prefix="/v1", tags=["pledge lines"])


@router.read("/pledge-lines", R.PledgeLinePage, 422, operation_id="listPledgeLines")
async def pledge_lines(
    ctx: Ctx,
    caller: Caller,
    page: Annotated[Page, paged(50)],
    donor: OrgFilter = None,
    recipient: OrgFilter = None,
    status: Annotated[str | None, Query(pattern=r"^(committed|withdrawn|fulfilled)$")] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
    loadable: bool = False,
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
            **page.args(),
        )


@router.read(
    "/pledge-lines/{pledge_id}/{line_id}", R.PledgeLine, 404, 422, operation_id="getPledgeLine"
)
async def pledge_line(
    pledge_id: LineRef, line_id: LineRef, ctx: Ctx, caller: Caller
) -> dict[str, Any]:
    """One pledge line with the quantity each convoy took of it."""
    async with ctx.db.connection() as conn:
        return await ledger.pledge_line_view(conn, pledge_id, line_id)
