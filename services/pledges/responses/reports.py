"""What the pledges reports answer (GET /v1/reports/...): rows, filters, conversions."""

from __future__ import annotations

from shared.responses import Out


class TotalsReportConversionRate(Out):
    currency: str | None = None
    rate: str | None = None
    date: str | None = None


class TotalsReportConversion(Out):
    to: str | None = None
    rates: list[TotalsReportConversionRate] | None = None


class NeedsReportFilters(Out):
    """The filters a report applied (every report takes the same ones, and answers each,
    null when not given)."""

    date_from: str | None
    date_to: str | None
    donor: str | None
    recipient: str | None
    partnership: str | None
    programme: str | None
    category: str | None


class NeedsReportColumn(Out):
    key: str
    label: str
    hxl: str


class NeedsReportRow(Out):
    need_id: str
    posted_on: str
    deadline: str | None
    recipient_id: str
    recipient: str
    country: str
    kind: str
    category: str
    sector: str
    description: str
    priority: str
    serves: list[str]
    status: str
    unit: str | None
    currency: str | None
    target_quantity: str | None
    target_amount: int | None
    pledged_quantity: str | None
    pledged_amount: int | None
    committed_quantity: str | None
    committed_amount: int | None
    delivered_quantity: str | None
    delivered_amount: int | None
    gap_quantity: str | None
    gap_amount: int | None


class NeedsReport(Out):
    report: str | None = None
    filters: NeedsReportFilters | None = None
    conversion: TotalsReportConversion | None = None
    columns: list[NeedsReportColumn] | None = None
    rows: list[NeedsReportRow] | None = None
    next_cursor: str | None


class PledgesReportFilters(NeedsReportFilters):
    pass


class PledgesReportRow(Out):
    pledge_id: str
    line_id: str
    date: str
    donor_id: str
    donor: str
    recipient_id: str
    recipient: str
    country: str
    partnership_id: str | None
    programme: str | None
    status: str
    kind: str
    category: str
    sector: str
    item: str
    need_id: str | None
    unit: str | None
    quantity: str | None
    delivered: str | None
    damaged: str | None
    short: str | None
    lost: str | None
    remaining: str | None
    weight_kg: str | None
    currency: str | None
    value: int | None
    committed: int | None
    received: int | None
    outstanding: int | None
    donor_figure: str | None


class PledgesReport(Out):
    report: str
    filters: PledgesReportFilters
    conversion: TotalsReportConversion | None
    columns: list[NeedsReportColumn]
    rows: list[PledgesReportRow]
    next_cursor: str | None


class TotalsReportFilters(NeedsReportFilters):
    by: str | None = None


class TotalsMoney(Out):
    """Money totals in minor units (requested and funding gap: per recipient, from its needs)."""

    requested: int | None = None
    pledged: int | None = None
    committed: int | None = None
    received: int | None = None
    outstanding: int | None = None
    funding_gap: int | None = None


class TotalsReportRow(TotalsMoney):
    organisation_id: str
    kind: str
    category: str | None
    unit: str | None
    currency: str | None
    requested_quantity: str | None = None
    pledged_quantity: str | None = None
    committed_quantity: str | None = None
    delivered_quantity: str | None = None
    damaged: str | None = None
    short: str | None = None
    lost: str | None = None
    gap_quantity: str | None = None
    organisation: str
    country: str
    sector: str | None
    converted_currency: str | None = None
    rate: str | None = None
    rate_date: str | None = None
    requested_converted: int | None = None
    pledged_converted: int | None = None
    committed_converted: int | None = None
    received_converted: int | None = None
    outstanding_converted: int | None = None
    funding_gap_converted: int | None = None


class TotalsReportSummaryConverted(TotalsMoney):
    currency: str | None = None


class TotalsReportSummary(Out):
    converted: TotalsReportSummaryConverted | None = None


class TotalsReport(Out):
    report: str | None = None
    filters: TotalsReportFilters | None = None
    conversion: TotalsReportConversion | None = None
    columns: list[NeedsReportColumn] | None = None
    rows: list[TotalsReportRow] | None = None
    summary: TotalsReportSummary | None = None
    next_cursor: str | None
