"""Reports as JSON or as CSV with HXL hashtags; money optionally converted with the caller's
rate table (`convert_to=EUR&rate=GBP:1.165:2023-02-20`), stating each rate and its date."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import StringConstraints

from services.pledges import domain
from services.pledges import responses as R
from services.pledges.formats.tables import Conversion, Table
from services.pledges.queries import report_rows, reports, totals
from services.pledges.requests import Cursor, Limit
from shared import instants, problems
from shared.web import Caller, Ctx

router = APIRouter(prefix="/v1", tags=["reports"])

Id = Annotated[str | None, Query(max_length=100)]
PAGE = 100  # the default page of the needs and pledges reports (at most pagination.MAX_LIMIT)


def _filters(
    date_from: Annotated[
        instants.QueryDate | None, Query(alias="from", description="made or posted on")
    ] = None,
    date_to: Annotated[
        instants.QueryDate | None, Query(alias="to", description="inclusive")
    ] = None,
    donor: Id = None,
    recipient: Id = None,
    partnership: Id = None,
    programme: Annotated[str | None, Query(max_length=200)] = None,
    category: domain.Category | None = None,
) -> report_rows.Filters:
    return report_rows.Filters(
        date_from=date_from,
        date_to=date_to,
        donor=donor,
        recipient=recipient,
        partnership=partnership,
        programme=programme,
        category=category.value if category else None,
    )


Filters = Annotated[report_rows.Filters, Depends(_filters)]
Format = Annotated[Literal["json", "csv"], Query(description="csv: header row, then HXL tags")]
ConvertTo = Annotated[str | None, Query(max_length=3, description="ISO 4217 code")]
Rate = Annotated[str, StringConstraints(max_length=60)]
Rates = Annotated[list[Rate], Query(description="CUR:RATE:YYYY-MM-DD, repeated", max_length=40)]


def _answer(
    table: Table,
    fmt: str,
    money: list[str],
    conversion: Conversion | None,
    request: Request | None = None,
) -> Response:
    if conversion is not None:
        conversion.apply(table, money)
        if table.report.startswith("totals"):
            table.summary = {"converted": totals.converted_summary(table, money)}
    if fmt == "csv":
        headers = {"Content-Disposition": f'attachment; filename="{table.report}.csv"'}
        if request is not None and table.next_cursor:  # a page: the next one in a Link header
            url = request.url.include_query_params(cursor=table.next_cursor)
            headers["Link"] = f'<{url}>; rel="next"'
        return Response(table.as_csv(), media_type="text/csv; charset=utf-8", headers=headers)
    return JSONResponse(table.as_json())


@router.get(
    "/reports/needs",
    response_model=None,
    responses=problems.documented(
        R.NeedsReport,
        422,
        content={"text/csv": {"schema": {"type": "string", "maxLength": 100_000_000}}},
    ),
    operation_id="getNeedsReport",
)
async def needs_report(
    request: Request,
    ctx: Ctx,
    caller: Caller,
    filters: Filters,
    format: Format = "json",
    convert_to: ConvertTo = None,
    rate: Rates = [],  # noqa: B006 (FastAPI copies the default)
    cursor: Cursor = None,
    limit: Limit = PAGE,
) -> Response:
    """Per need: target, pledged, committed, delivered and gap, in its unit or currency; by
    posting date, a page at a time: pass `next_cursor` back as `cursor` (null: the last page).
    As CSV, the page's rows with the next page in a `Link` header."""
    conversion = Conversion.parse(convert_to, rate)
    async with ctx.db.connection() as conn:
        table = await reports.needs(conn, filters, cursor=cursor, limit=limit)
    return _answer(table, format, reports.NEED_MONEY, conversion, request)


@router.get(
    "/reports/pledges",
    response_model=None,
    responses=problems.documented(
        R.PledgesReport,
        422,
        content={"text/csv": {"schema": {"type": "string", "maxLength": 100_000_000}}},
    ),
    operation_id="getPledgesReport",
)
async def pledges_report(
    request: Request,
    ctx: Ctx,
    caller: Caller,
    filters: Filters,
    format: Format = "json",
    convert_to: ConvertTo = None,
    rate: Rates = [],  # noqa: B006
    cursor: Cursor = None,
    limit: Limit = PAGE,
) -> Response:
    """One row per pledge line: donor, recipient, item, quantities (delivered, damaged, short,
    lost, remaining), value, currency, received, outstanding; by pledge date, a page at a
    time: pass `next_cursor` back as `cursor` (null: the last page). As CSV, the page's rows
    with the next page in a `Link` header."""
    conversion = Conversion.parse(convert_to, rate)
    async with ctx.db.connection() as conn:
        table = await reports.pledge_lines(conn, filters, cursor=cursor, limit=limit)
    return _answer(table, format, reports.PLEDGE_MONEY, conversion, request)


@router.get(
    "/reports/totals",
    response_model=None,
    responses=problems.documented(
        R.TotalsReport,
        422,
        content={"text/csv": {"schema": {"type": "string", "maxLength": 100_000_000}}},
    ),
    operation_id="getTotalsReport",
)
async def totals_report(
    ctx: Ctx,
    caller: Caller,
    filters: Filters,
    request: Request,
    by: totals.By = "recipient",
    format: Format = "json",
    convert_to: ConvertTo = None,
    rate: Rates = [],  # noqa: B006
    cursor: Cursor = None,
    limit: Limit = PAGE,
) -> Response:
    """Per recipient (with requested and funding gap from its needs) or per donor: in kind by
    category and unit, money by currency; a page of `limit` organisations by id with all
    their rows: pass `next_cursor` back as `cursor` (null: the last page). The converted
    summary sums the page's rows. As CSV, the page's rows with the next page in a `Link`
    header."""
    conversion = Conversion.parse(convert_to, rate)
    async with ctx.db.connection() as conn:
        table = await totals.totals(conn, filters, by=by, cursor=cursor, limit=limit)
    return _answer(table, format, totals.TOTAL_MONEY, conversion, request)
