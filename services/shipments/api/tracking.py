"""Shipments read routes: tracking views, timelines, discrepancies, deliveries; convoys, a
convoy's manifest, deliveries and discrepancies also as HXL-tagged CSV (`format=csv`), a
convoy's steps as EPCIS 2.0 JSON-LD (docs/exports.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from services.shipments import domain, queries, views
from services.shipments import responses as R
from services.shipments.formats import epcis
from services.shipments.formats import hxl as tables
from services.shipments.queries import lines
from services.shipments.requests import (
    TIMELINE_MAX,
    AsOf,
    ConvoyId,
    Cursor,
    Limit,
    OrgFilter,
)
from shared import domain_checks, hxl, instants, route_docs
from shared.deps import etag
from shared.route_params import Page, paged
from shared.web import Caller, Ctx

router = route_docs.Router(prefix="/v1", tags=["tracking"])
PAGE = 100  # the default page of the lists (at most pagination.MAX_LIMIT)
TIMELINE_PAGE = 200  # a convoy's timeline (at most TIMELINE_MAX, requests.py)

Format = Annotated[
    Literal["json", "csv"],
    Query(description="csv: a header row, then a row of HXL hashtags, then the rows"),
]


def _listing(path: str, answer: type[Any], **own: Any) -> route_docs.Route:
    """A read route answering JSON (`answer`) or HXL-tagged CSV (`format=csv`)."""
    return router.read(path, answer, 422, content=route_docs.CSV, response_model=None, **own)


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing(Page):
    """A list's page and how it answers: JSON, or HXL-tagged CSV."""

    request: Request
    format: str

    async def answer(
        self,
        conn: asyncpg.Connection,
        page: dict[str, Any],
        name: str,
        columns: list[hxl.Column],
        row: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> dict[str, Any] | Response:
        """The page as asked: as it is, or its items (each as `row` makes it) as CSV with the
        next page in a `Link` header."""
        if self.format == "json":
            return page
        rows = [row(x) for x in page["items"]] if row else page["items"]
        return await _csv(conn, name, columns, rows, page=page, request=self.request)


def _listed(default: int) -> Any:
    """The dependency reading a list's page and format, `default` items a page."""

    async def listing(  # async: a plain def would run in the thread pool
        request: Request, cursor: Cursor = None, limit: Limit = default, format: Format = "json"
    ) -> Listing:
        return Listing(cursor=cursor, limit=limit, request=request, format=format)

    return Depends(listing)


Listed = Annotated[Listing, _listed(PAGE)]
Paged = Annotated[Page, paged(PAGE)]


async def _csv(
    conn: asyncpg.Connection,
    name: str,
    columns: list[hxl.Column],
    rows: list[dict[str, Any]],
    *,
    page: dict[str, Any] | None = None,
    request: Request | None = None,
) -> Response:
    """The rows as CSV, organisations named; a page's next page in a `Link` header."""
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    if page is not None and request is not None and page["next_cursor"]:
        url = request.url.include_query_params(cursor=page["next_cursor"])
        headers["Link"] = f'<{url}>; rel="next"'
    named = await tables.named(conn, rows)
    return Response(hxl.to_csv(columns, named), media_type=hxl.MEDIA_TYPE, headers=headers)


@_listing("/convoys", R.ConvoyPage)
async def list_convoys(
    ctx: Ctx,
    caller: Caller,
    out: Annotated[Listing, _listed(50)],
    status: domain.ConvoyStatus | None = None,
    organisation: OrgFilter = None,
    pledge_id: Annotated[str | None, Query(max_length=100)] = None,
    donor: OrgFilter = None,
    recipient: OrgFilter = None,
    carrier: OrgFilter = None,
    origin: OrgFilter = None,
    departs_from: Annotated[instants.QueryInstant | None, Query()] = None,
    departs_to: Annotated[instants.QueryInstant | None, Query()] = None,
) -> dict[str, Any] | Response:
    """Convoys the caller plays a part in (auditors: all), by status, by any organisation's
    part (`organisation`), pledge, donor, recipient, carrier, origin and departure period
    (from `departs_from` up to, not including, `departs_to`: a period ending where or before
    it starts is a 422 naming query.departs_to); newest departure first. As CSV, the page's
    convoys with the next page in a `Link` header."""
    domain_checks.ordered_range(
        departs_from,
        departs_to,
        start_name="query.departs_from",
        end_name="query.departs_to",
        end_excluded=True,
    )
    async with ctx.db.connection() as conn:
        page = await queries.convoys(
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
            **out.args(),
        )
        return await out.answer(conn, page, "convoys", tables.CONVOYS, tables.convoy_row)


@router.read("/tracking/in-transit", R.InTransit, 422, operation_id="listInTransit")
async def in_transit(
    ctx: Ctx, caller: Caller, page: Paged, organisation: OrgFilter = None
) -> dict[str, Any]:
    """Convoys on the road (in transit, at a border, held) with their last checkpoint,
    custody holder and the age of their last news, stalest first, a page at a time (follow
    `next_cursor`). Lost convoys are not here."""
    async with ctx.db.connection() as conn:
        return await queries.in_transit(
            conn, caller, organisation=organisation, now=ctx.clock(), **page.args()
        )


@router.read(
    "/convoys/{convoy_id}",
    R.Convoy,
    403,
    404,
    422,
    etag=True,
    content=route_docs.CSV,
    response_model=None,
)
async def get_convoy(
    convoy_id: ConvoyId,
    ctx: Ctx,
    caller: Caller,
    response: Response,
    as_of: AsOf = None,
    format: Format = "json",
) -> dict[str, Any] | Response:
    """A convoy: status, position (last checkpoint), custody holder, manifest with what is
    lost, in transit and delivered per line (GET .../manifest pages through it), its latest
    100 incidents (`incidents_total` counts them all; the timeline has every one), delivery
    and discrepancies. Drivers
    and named people only for the carrier, the recipient and auditors. `as_of` folds the
    log up to that instant (before the convoy's plan it did not exist: 404). As CSV: its
    manifest, a row per line with what became of it. Its ETag (JSON, now) is its version:
    send it in If-Match to change only what you read."""
    async with ctx.db.connection() as conn:
        if as_of is None:
            document = await queries.convoy(conn, caller, convoy_id)
            response.headers["ETag"] = etag(document["version"])
        else:
            document = await queries.convoy_as_of(conn, caller, convoy_id, as_of)
        if format == "json":
            return views.recent_incidents(document)
        rows = tables.manifest_rows(document)
        return await _csv(conn, f"convoy-{convoy_id}-manifest", tables.MANIFEST, rows)


class _JsonLd(JSONResponse):
    media_type = epcis.MEDIA_TYPE  # the document declares the model under it


@router.read(
    "/convoys/{convoy_id}/epcis",
    R.EpcisDocument,
    403,
    404,
    422,
    response_model=None,
    response_class=_JsonLd,
    operation_id="exportConvoyEpcis",
)
async def convoy_epcis(convoy_id: ConvoyId, ctx: Ctx, caller: Caller) -> Response:
    """The convoy's steps as a GS1 EPCIS 2.0 JSON-LD document (CBV business steps and
    dispositions, a quantity per manifest line), showing exactly what the convoy view and its
    timeline show the caller."""
    async with ctx.db.connection() as conn:
        document = await queries.convoy(conn, caller, convoy_id)
        timeline = await queries.timeline(conn, caller, convoy_id, limit=None)
    return JSONResponse(
        epcis.document(document, timeline, now=ctx.clock()), media_type=epcis.MEDIA_TYPE
    )


@router.read(
    "/convoys/{convoy_id}/timeline",
    R.ConvoyTimeline,
    403,
    404,
    422,
    operation_id="getConvoyTimeline",
)
async def timeline(
    convoy_id: ConvoyId,
    ctx: Ctx,
    caller: Caller,
    page: Annotated[Page, paged(TIMELINE_PAGE, most=TIMELINE_MAX)],
) -> dict[str, Any]:
    """The convoy's events ordered by when they occurred, each with when it was recorded, a
    page at a time: follow `next_cursor` (null on the last page). An entry recorded late, with
    an earlier time than the page already read, is in the pages read again from the start."""
    async with ctx.db.connection() as conn:
        return await queries.timeline(conn, caller, convoy_id, **page.args())


@router.read(
    "/convoys/{convoy_id}/manifest",
    R.ConvoyManifestPage,
    403,
    404,
    422,
    operation_id="listManifestLines",
)
async def manifest(convoy_id: ConvoyId, ctx: Ctx, caller: Caller, page: Paged) -> dict[str, Any]:
    """The convoy's manifest lines in the order they were loaded, each with what is lost, in
    transit and delivered of it, as the convoy's view shows them to the caller, a page at a
    time: follow `next_cursor` (null on the last page)."""
    async with ctx.db.connection() as conn:
        return await queries.manifest(conn, caller, convoy_id, **page.args())


@_listing("/discrepancies", R.DiscrepancyPage, operation_id="listDiscrepancies")
async def discrepancies(
    ctx: Ctx, caller: Caller, out: Listed, organisation: OrgFilter = None
) -> dict[str, Any] | Response:
    """Lines that arrived damaged or short, or were lost on the road: the sender, recipient
    and carrier see every line of their convoys, a donor its own lines. Newest departure
    first, a page at a time (`next_cursor`; as CSV, the next page in a `Link` header)."""
    async with ctx.db.connection() as conn:
        found = await lines.discrepancies(conn, caller, organisation=organisation, **out.args())
        columns = tables.DISCREPANCIES
        return await out.answer(conn, found, "discrepancies", columns, tables.discrepancy_row)


@_listing("/deliveries", R.DeliveredLinePage, operation_id="listDeliveries")
async def deliveries(
    ctx: Ctx, caller: Caller, out: Listed, organisation: OrgFilter = None
) -> dict[str, Any] | Response:
    """Every line of every confirmed delivery of the caller's convoys (by any organisation's
    part), newest delivery first, a page at a time (`next_cursor`; as CSV, the next page in a
    `Link` header): loaded, lost, received, damaged, short. Another donor's line keeps what
    was loaded, not what became of it."""
    async with ctx.db.connection() as conn:
        page = await lines.deliveries(conn, caller, organisation=organisation, **out.args())
        return await out.answer(conn, page, "deliveries", tables.DELIVERIES)
