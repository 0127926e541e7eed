"""Reports as JSON or as CSV with HXL hashtags; money optionally converted with the caller's
rate table (`convert_to=EUR&rate=GBP:1.165:2023-02-20`), stating each rate and its date."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import StringConstraints

from services.pledges import domain
from services.pledges import responses as R
from services.pledges.formats.tables import Conversion, Table
from services.pledges.queries import report_rows, reports, totals
from services.pledges.requests import Cursor, Limit
from shared import domain_checks, instants, route_docs
from shared.responses import Out
from shared.web import Caller, Ctx

router = route_docs.Router(prefix="/v1", tags=["reports"])

Id = Annotated[str | None, Query(max_length=100)]
PAGE = 100  # the default page of the needs and pledges reports (at most pagination.MAX_LIMIT)


async def _filters(
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
    """A report's filters (async: it blocks on nothing, so no worker thread); a range that
    ends before it starts is refused rather than answered empty."""
    if date_from is not None and date_to is not None and date_to < date_from:
        raise domain_checks.invalid_field("query.to", f"{date_to} lies before from {date_from}")
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
Rates = Annotated[
    list[Rate],
    Query(
        description="CUR:RATE:YYYY-MM-DD, repeated: RATE a plain decimal (ASCII digits, no"
        f" exponent) of at most {domain.money.RATE_DIGITS} significant digits, above 0 and at"
        f" most {domain.money.MAX_RATE}; a converted figure above {domain.money.MAX_AMOUNT}"
        " minor units is refused (422)",
        max_length=40,
    ),
]


@dataclass(frozen=True, slots=True)
class Output:
    """How a report answers: its page (cursor, limit), as JSON or CSV, money converted with
    the caller's rates or not."""

    request: Request
    format: str
    conversion: Conversion | None
    cursor: str | None
    limit: int

    def answer(self, table: Table, money: list[str]) -> Response:
        if self.conversion is not None:
            self.conversion.apply(table, money)
            if table.report.startswith("totals"):
                table.summary = {"converted": totals.converted_summary(table, money)}
        if self.format == "csv":
            headers = {"Content-Disposition": f'attachment; filename="{table.report}.csv"'}
            if table.next_cursor:  # a page: the next one in a Link header
                url = self.request.url.include_query_params(cursor=table.next_cursor)
                headers["Link"] = f'<{url}>; rel="next"'
            return Response(table.as_csv(), media_type="text/csv; charset=utf-8", headers=headers)
        return JSONResponse(table.as_json())


async def _output(
    request: Request,
    format: Format = "json",
    convert_to: ConvertTo = None,
    rate: Rates = [],  # noqa: B006 (FastAPI copies the default)
    cursor: Cursor = None,
    limit: Limit = PAGE,
) -> Output:
    """How the report answers (async: it blocks on nothing, so no worker thread)."""
    return Output(request, format, Conversion.parse(convert_to, rate), cursor, limit)


Answer = Annotated[Output, Depends(_output)]


def _report(path: str, model: type[Out], *, operation_id: str) -> route_docs.Route:
    """A report's route: its JSON answer documented by `model`, or CSV (Output.answer)."""
    return router.read(
        path, model, 422, content=route_docs.CSV, response_model=None, operation_id=operation_id
    )


@_report("/reports/needs", R.NeedsReport, operation_id="getNeedsReport")
async def needs_report(ctx: Ctx, caller: Caller, filters: Filters, out: Answer) -> Response:
    """Per need: target, pledged, committed, delivered and gap, in its unit or currency; by
    posting date, a page at a time: pass `next_cursor` back as `cursor` (null: the last page).
    As CSV, the page's rows with the next page in a `Link` header."""
    async with ctx.db.connection() as conn:
        table = await reports.needs(conn, filters, cursor=out.cursor, limit=out.limit)
    return out.answer(table, reports.NEED_MONEY)


@_report("/reports/pledges", R.PledgesReport, operation_id="getPledgesReport")
async def pledges_report(ctx: Ctx, caller: Caller, filters: Filters, out: Answer) -> Response:
    """One row per pledge line: donor, recipient, item, quantities (delivered, damaged, short,
    lost, remaining), value, currency, received, outstanding; by pledge date, a page at a
    time: pass `next_cursor` back as `cursor` (null: the last page). As CSV, the page's rows
    with the next page in a `Link` header."""
    async with ctx.db.connection() as conn:
        table = await reports.pledge_lines(conn, filters, cursor=out.cursor, limit=out.limit)
    return out.answer(table, reports.PLEDGE_MONEY)


@_report("/reports/totals", R.TotalsReport, operation_id="getTotalsReport")
async def totals_report(
    ctx: Ctx, caller: Caller, filters: Filters, out: Answer, by: totals.By = "recipient"
) -> Response:
    """Per recipient (with requested and funding gap from its needs) or per donor: in kind by
    category and unit, money by currency; a page of `limit` organisations by id with all
    their rows: pass `next_cursor` back as `cursor` (null: the last page). The converted
    summary sums the page's rows. As CSV, the page's rows with the next page in a `Link`
    header."""
    async with ctx.db.connection() as conn:
        table = await totals.totals(conn, filters, by=by, cursor=out.cursor, limit=out.limit)
    return out.answer(table, totals.TOTAL_MONEY)
