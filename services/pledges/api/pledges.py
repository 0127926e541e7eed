"""Pledges: make, commit, amend a line, withdraw; money received (the recipient) and the donor's
own figures; read one (now or as of an instant), list them, and their history."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import Query, Response
from fastapi.responses import JSONResponse

from services.pledges import auth, commands, domain, handlers, privacy, queries, views
from services.pledges import responses as R
from services.pledges.api import history
from services.pledges.api.writing import Changing, Creating
from services.pledges.auth import Viewing
from services.pledges.handlers import pledging
from services.pledges.requests import (
    AmendIn,
    AsOf,
    CommitIn,
    DonorFigureIn,
    EndIn,
    LineIn,
    PledgeIn,
    ReceiptIn,
    RecordId,
)
from shared import group_commit, route_batches, route_docs
from shared.deps import ServiceContext, etag
from shared.errors import NotFound
from shared.events import Metadata
from shared.route_params import Page, paged
from shared.web import Caller, Ctx

router = route_docs.Router(prefix="/v1", tags=["pledges"])


def _line(i: int, body: LineIn) -> domain.LineSpec:
    value = body.estimated_value
    return domain.LineSpec(
        # kind, item, need, quantity, unit, weight, amount and currency as validated
        **body.model_dump(exclude={"line_id", "category", "estimated_value"}),
        line_id=body.line_id or str(i + 1),
        category=body.category.value,
        value_amount=value.amount if value else None,
        value_currency=value.currency if value else None,
    )


@router.create("/pledges", R.PledgeChanged, "Pledged")
async def make_pledge(body: PledgeIn, w: Creating) -> JSONResponse:
    """Pledge as your own organisation to a recipient: in-kind lines (item, quantity, unit,
    optional weight and value) and money lines (amount in minor units, currency), optionally
    answering needs and under a partnership. `commit: true` makes it binding at once."""
    donor = body.donor_id or w.caller.organisation
    pledge = domain.MakePledge(
        # recipient, partnership, description, note, contact and commit as validated
        **body.model_dump(exclude={"pledge_id", "donor_id", "lines"}),
        pledge_id=body.pledge_id or str(uuid.uuid4()),
        donor_id=donor,
        lines=tuple(_line(i, line) for i, line in enumerate(body.lines)),
    )
    command = commands.MakePledge(pledge=pledge, acting_for=w.acting_as(donor))
    ctx = w.ctx

    async def attempt(meta: Metadata) -> dict[str, Any] | None:
        # without Idempotency-Key (write() then never attempts), pledges that arrive together
        # run in one transaction (group commit), each decided as alone
        if not pledging.batchable(command):
            return None
        return await route_batches.join(
            ctx, "pledges", partial(_pledges_together, ctx), command, meta
        )

    return await w.send(201, command, attempt=attempt)


async def _pledges_together(ctx: ServiceContext, batch: list[group_commit.Batched]) -> list[Any]:
    """Pledges that arrived together, in one transaction (handlers/pledging.py)."""
    together = partial(pledging.make_pledges_together, batch=batch)
    return await route_batches.in_transaction(ctx, together)


@router.read("/pledges", R.PledgePage, 422)
async def list_pledges(
    ctx: Ctx,
    caller: Caller,
    page: Annotated[Page, paged(50)],
    donor: Annotated[str | None, Query(max_length=100)] = None,
    recipient: Annotated[str | None, Query(max_length=100)] = None,
    status: domain.PledgeStatus | None = None,
    need: Annotated[str | None, Query(max_length=100)] = None,
    partnership: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    """Pledges, newest first, each with its lines' progress."""
    async with ctx.db.connection() as conn:
        return await queries.pledges(
            conn,
            donor=donor,
            recipient=recipient,
            status=status.value if status else None,
            need_id=need,
            partnership_id=partnership,
            **page.args(),
        )


@router.read("/pledges/{pledge_id}", R.Pledge, 404, 422, etag=True)
async def get_pledge(
    pledge_id: RecordId,
    ctx: Ctx,
    caller: Caller,
    viewer: Viewing,
    response: Response,
    as_of: AsOf = None,
) -> dict[str, Any]:
    """One pledge with every line: amendments, deliveries (received, damaged, short, lost),
    money received, the donor's own figure and its difference from the recipient's. Its ETag
    is its version: send it in If-Match to change only what you read."""
    async with ctx.db.connection() as conn:
        state = await handlers.PLEDGES.load(handlers.reading(conn), pledge_id, as_of=as_of)
        if not state.exists or state.made_at is None:  # as of before it was made
            when = f" at {as_of.isoformat()}" if as_of else ""
            raise NotFound(f"pledge {pledge_id} did not exist{when}")
        org_names = await queries.names(conn, [state.donor_id, state.recipient_id])
        out = views.pledge_json(state, org_names=org_names, viewer=viewer)
        await privacy.shown_contacts(conn, [out])  # only for those who see it (pledge_json)
    if as_of:
        return {**out, "as_of": as_of.isoformat()}
    response.headers["ETag"] = etag(state.version)
    return out


@router.read(
    "/pledges/{pledge_id}/history", R.PledgeHistory, 403, 404, 422, operation_id="getPledgeHistory"
)
async def pledge_history(
    pledge_id: RecordId, ctx: Ctx, caller: Caller, viewer: Viewing, page: history.Page
) -> dict[str, Any]:
    """Every event of the pledge in version order, a page at a time: pass `next_after` back
    as `after` for the next page (null: that was the last). For the donor, the recipient,
    auditors and administrators."""

    def allowed(pledge: domain.Pledge) -> bool:
        state = domain.require_pledge(pledge)
        auth.require_party(caller, state.donor_id, state.recipient_id)
        # those who see the pledge's persons: each opened, "(erased)" or held by shipments; a
        # donor sees who signed for the goods withheld (privacy.receiver_withheld)
        return viewer not in (None, state.recipient_id)

    return {"pledge_id": pledge_id, **await page.of(ctx, handlers.PLEDGES, pledge_id, allowed)}


@router.change("/pledges/{pledge_id}/commit", R.PledgeChanged)
async def commit_pledge(
    pledge_id: RecordId,
    w: Changing,
    body: CommitIn | None = None,
) -> JSONResponse:
    """The donor makes its pledge binding; in-kind lines become loadable by shipments."""
    at = body.occurred_at if body else None
    return await w.send(200, commands.CommitPledge(**w.on(pledge_id=pledge_id), occurred_at=at))


@router.change("/pledges/{pledge_id}/withdraw", R.PledgeChanged)
async def withdraw_pledge(
    pledge_id: RecordId,
    body: EndIn,
    w: Changing,
) -> JSONResponse:
    """The donor withdraws what remains of its pledge, with a reason."""
    command = commands.WithdrawPledge(**w.on(pledge_id=pledge_id), **body.model_dump())
    return await w.send(200, command)


@router.change(
    "/pledges/{pledge_id}/lines/{line_id}/amendments",
    R.PledgeChanged,
    operation_id="amendPledgeLine",
)
async def amend_line(
    pledge_id: RecordId,
    line_id: RecordId,
    body: AmendIn,
    w: Changing,
) -> JSONResponse:
    """The donor changes a line's quantity or amount, with a reason; the old figure is kept."""
    command = commands.AmendLine(
        **w.on(pledge_id=pledge_id),
        line_id=line_id,
        size=body.size,
        reason=body.reason,
        occurred_at=body.occurred_at,
    )
    return await w.send(200, command)


@router.change("/pledges/{pledge_id}/lines/{line_id}/receipts", R.PledgeChanged)
async def receive_money(
    pledge_id: RecordId,
    line_id: RecordId,
    body: ReceiptIn,
    w: Changing,
) -> JSONResponse:
    """The recipient confirms money received on a money line; more than pledged is refused."""
    receipt = domain.ReceiveMoney(line_id=line_id, **body.model_dump())
    return await w.send(200, commands.ReceiveMoney(**w.on(pledge_id=pledge_id), receipt=receipt))


@router.change("/pledges/{pledge_id}/lines/{line_id}/donor-figures", R.PledgeChanged)
async def report_donor_figure(
    pledge_id: RecordId,
    line_id: RecordId,
    body: DonorFigureIn,
    w: Changing,
) -> JSONResponse:
    """The donor's own cumulative figure for a line (delivered or paid so far). Counted for
    nothing; shown beside the recipient's confirmed figure with the difference."""
    figure = domain.ReportFigure(line_id=line_id, **body.model_dump())
    command = commands.ReportDonorFigure(**w.on(pledge_id=pledge_id), figure=figure)
    return await w.send(200, command)
