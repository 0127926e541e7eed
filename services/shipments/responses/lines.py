"""Delivered lines, discrepancies, pledge lines and convoys in transit, as the read routes
answer them."""

from __future__ import annotations

from services.shipments.responses.convoys import ConvoyPageItemCustodyPerson, ConvoyPageItemPosition
from shared.responses import NextCursor, Out


class DeliveredLineFigures(Out):
    short: str | None = None
    damaged: str | None = None
    received: str | None = None


class DeliveredLine(Out):
    convoy_id: str
    reference: str | None = None
    origin_id: str
    destination_id: str
    delivered_at: str | None = None
    outcome: str | None = None
    confirmed_by: str | None = None
    confirmed_role: str | None = None
    item: str | None = None
    lost: str | None = None
    unit: str | None = None
    state: str | None = None
    line_id: str
    vehicle: str | None = None
    category: str | None = None
    donor_id: str
    quantity: str | None = None
    delivered: DeliveredLineFigures | None = None
    loaded_at: str | None = None
    pledge_id: str
    weight_kg: str | None = None
    in_transit: str | None = None
    correlation_id: str
    manifest_line_id: str
    item_code: str | None = None
    loaded: str | None = None
    received: str | None = None
    damaged: str | None = None
    short: str | None = None


class DeliveredLinePage(Out):
    items: list[DeliveredLine]
    next_cursor: NextCursor


class DiscrepancyPageItem(Out):
    convoy_id: str
    reference: str
    status: str
    origin_id: str
    destination_id: str
    item: str
    category: str | None
    lost: str
    unit: str
    short: str
    loaded: str
    damaged: str
    line_id: str
    donor_id: str
    received: str
    pledge_id: str
    manifest_line_id: str


class DiscrepancyPage(Out):
    items: list[DiscrepancyPageItem]
    next_cursor: NextCursor


class PledgeLinePageItem(Out):
    pledge_id: str
    line_id: str
    donor_id: str
    recipient_id: str
    partnership_id: str | None
    item: str
    category: str
    unit: str
    quantity: str
    weight_kg: str | None
    delivered: str
    status: str
    allocated: str
    loadable: str
    correlation_id: str
    committed_at: str | None
    updated_at: str


class PledgeLinePage(Out):
    items: list[PledgeLinePageItem]
    next_cursor: str | None


class PledgeLineAllocation(Out):
    convoy_id: str
    manifest_line_id: str
    quantity: str
    state: str
    convoy_status: str


class PledgeLine(PledgeLinePageItem):
    allocations: list[PledgeLineAllocation]


class InTransitItemCustody(Out):
    name: str | None = None
    person: ConvoyPageItemCustodyPerson | None = None
    organisation_id: str


class InTransitItemLastNews(Out):
    kind: str | None = None
    entry_id: str
    occurred_at: str | None = None
    recorded_at: str | None = None


class InTransitItem(Out):
    convoy_id: str
    reference: str | None = None
    status: str
    origin_id: str
    destination_id: str
    carrier_id: str
    planned_departure: str | None = None
    dispatched_at: str | None = None
    arrived_at: str | None = None
    delivered_at: str | None = None
    weight_kg: str | None = None
    position: ConvoyPageItemPosition | None = None
    custody: InTransitItemCustody | None = None
    last_news: InTransitItemLastNews | None = None
    version: int
    donors: list[str] | None = None
    delivery_outcome: str | None = None
    discrepancies: int | None = None
    age_of_last_news_seconds: int | None = None


class InTransit(Out):
    items: list[InTransitItem] | None = None
    as_of: str | None = None
    next_cursor: NextCursor
