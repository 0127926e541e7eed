"""What the shipments API answers.

Documentation of what the routes answer (FastAPI puts them in the OpenAPI document; a generated
client parses answers into them). The routes build their answers as they did and are not
re-validated through these models on the way out: the write path answers with a JSONResponse
as it is. Amounts in minor units are integers; quantities, weights and rates are decimal strings
("6.5"); instants are RFC 3339 text.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from shared.responses import Out


class ConvoyPageItemPositionCoordinates(Out):
    lat: float | None = None
    lon: float | None = None


class ConvoyPageItemPosition(Out):
    place: str | None = None
    source: str | None = None
    coordinates: ConvoyPageItemPositionCoordinates | None = None
    occurred_at: str | None = None
    recorded_at: str | None = None


class ConvoyPageItemCustodyPerson(Out):
    """A named person: to those who may see personal data, their name (`(erased)` once
    erased); to others `(withheld)`, without subject."""

    name: str
    role: str | None = None
    subject_id: str | None = Field(
        default=None, description="the person's subject (personal data export and erasure)"
    )
    erased: bool | None = Field(default=None, description="true: erased, `(erased)` shown")


class ConvoyPageItemCustody(Out):
    name: str | None
    person: ConvoyPageItemCustodyPerson | None
    organisation_id: str | None


class ConvoyPageItemLastNews(Out):
    kind: str
    entry_id: str
    occurred_at: str
    recorded_at: str


class ConvoyPageItem(Out):
    convoy_id: str
    reference: str
    status: str
    origin_id: str
    destination_id: str
    carrier_id: str
    planned_departure: str
    dispatched_at: str | None
    arrived_at: str | None
    delivered_at: str | None
    weight_kg: str
    position: ConvoyPageItemPosition | None
    custody: ConvoyPageItemCustody | None
    last_news: ConvoyPageItemLastNews | None
    version: int
    donors: list[str]
    delivery_outcome: str | None
    discrepancies: int


class ConvoyPage(Out):
    items: list[ConvoyPageItem]
    next_cursor: str | None


class ConvoyCustodyPerson(Out):
    name: str
    role: str | None
    subject_id: str | None = Field(
        default=None, description="the person's subject (personal data export and erasure)"
    )
    erased: bool | None = Field(default=None, description="true: erased, `(erased)` shown")


class ConvoyCustody(Out):
    name: str | None
    person: ConvoyCustodyPerson | None
    organisation_id: str | None


class ConvoyDriver(Out):
    """`(withheld)` to those who may not see personal data; `(erased)` once erased."""

    vehicle: str | None
    name: str
    phone: str | None = None
    licence_number: str | None = None
    subject_id: str | None = Field(
        default=None, description="the person's subject (personal data export and erasure)"
    )
    erased: bool | None = Field(default=None, description="true: erased, `(erased)` shown")


class ConvoyDeliveryDocument(Out):
    name: str
    sha256: str


class ConvoyDelivery(Out):
    outcome: str
    document: ConvoyDeliveryDocument | None
    occurred_at: str
    recorded_at: str
    confirmed_by: ConvoyPageItemCustodyPerson


class ConvoyManifestDelivered(Out):
    short: str
    damaged: str
    received: str


class ConvoyManifest(Out):
    item: str
    lost: str | None
    unit: str
    state: str
    line_id: str
    vehicle: str
    category: str
    donor_id: str
    quantity: str
    delivered: ConvoyManifestDelivered | None
    loaded_at: str
    pledge_id: str
    weight_kg: str
    in_transit: str | None
    correlation_id: str
    manifest_line_id: str


class ConvoyPositionCoordinates(Out):
    lat: float
    lon: float


class ConvoyPosition(Out):
    place: str | None
    source: str
    coordinates: ConvoyPositionCoordinates | None
    occurred_at: str
    recorded_at: str


class ConvoyVehicle(Out):
    type: str
    load_kg: str
    capacity_kg: str
    registration: str


class ConvoyIncidentLine(Out):
    quantity: str
    manifest_line_id: str


class ConvoyIncident(Out):
    kind: str
    lines: list[ConvoyIncidentLine]
    place: str | None
    entry_id: str
    description: str
    occurred_at: str
    recorded_at: str
    delay_minutes: int | None


class ConvoyDiscrepancie(Out):
    item: str
    lost: str
    unit: str
    short: str
    loaded: str
    damaged: str
    line_id: str
    donor_id: str
    received: str | None
    pledge_id: str
    manifest_line_id: str


class Convoy(Out):
    note: str | None
    route: list[str]
    status: str
    custody: ConvoyCustody | None
    drivers: list[ConvoyDriver]
    version: int
    delivery: ConvoyDelivery | None
    manifest: list[ConvoyManifest]
    position: ConvoyPosition | None
    vehicles: list[ConvoyVehicle]
    closed_at: str | None
    convoy_id: str
    incidents: list[ConvoyIncident] = Field(
        description="the latest 100 incidents, in the order they occurred (all: the timeline)"
    )
    incidents_total: int = Field(description="how many incidents the convoy has")
    last_news: ConvoyPageItemLastNews | None
    origin_id: str
    reference: str
    weight_kg: str
    arrived_at: str | None
    carrier_id: str
    planned_at: str
    cancelled_at: str | None
    delivered_at: str | None
    cancel_reason: str | None
    discrepancies: list[ConvoyDiscrepancie]
    dispatched_at: str | None
    destination_id: str
    planned_departure: str
    origin_location: ConvoyPositionCoordinates | None
    destination_location: ConvoyPositionCoordinates | None
    as_of: str | None = None


class ConvoyManifestPage(Out):
    convoy_id: str
    items: list[ConvoyManifest]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


class ConvoyTimelineEntry(Out):
    event_id: str
    event_type: str
    entry_id: str | None
    occurred_at: str
    recorded_at: str
    version: int
    data: dict[str, Any]


class ConvoyTimeline(Out):
    convoy_id: str
    entries: list[ConvoyTimelineEntry]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


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
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


class DiscrepancyPageItem(Out):
    convoy_id: str
    reference: str
    status: str
    origin_id: str
    destination_id: str
    item: str
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
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


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


class PledgeLine(Out):
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
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


class ConvoyChanged(Out):
    convoy_id: str
    status: str
    version: int


class ConvoyCancelledReleased(Out):
    manifest_line_id: str
    pledge_id: str
    line_id: str
    quantity: str | None = None


class ConvoyCancelled(Out):
    convoy_id: str
    status: str
    version: int
    released: list[ConvoyCancelledReleased] | None = None


class DeliveryConfirmedDiscrepancie(Out):
    manifest_line_id: str
    pledge_id: str
    line_id: str
    donor_id: str
    item: str
    unit: str
    loaded: str
    received: str
    damaged: str
    short: str
    lost: str


class DeliveryConfirmed(Out):
    convoy_id: str
    status: str
    version: int
    outcome: str
    discrepancies: list[DeliveryConfirmedDiscrepancie]


class EntriesRecordedEntry(Out):
    entry_id: str
    kind: str
    event_type: str
    event_id: str
    occurred_at: str
    recorded_at: str


class EntriesRecorded(Out):
    convoy_id: str
    status: str
    version: int
    recorded: int
    already_recorded: int
    entries: list[EntriesRecordedEntry]


class LineLoaded(Out):
    convoy_id: str
    status: str
    version: int
    manifest_line_id: str
    quantity: str
    weight_kg: str
    remaining_on_pledge_line: str


class LineUnloadedGivenBack(Out):
    convoy_id: str
    manifest_line_id: str
    pledge_id: str
    line_id: str
    quantity: str
    reason: str


class LineUnloaded(Out):
    convoy_id: str
    status: str
    version: int
    manifest_line_id: str
    given_back: LineUnloadedGivenBack


class EpcisDocument(Out):
    """An EPCIS 2.0 JSON-LD document (docs/exports.md, "EPCIS"): the convoy's events as GS1
    ObjectEvents, extended with `twinaid:` members."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    context: list[Any] = Field(alias="@context")
    id: str
    type: str
    schemaVersion: str
    creationDate: str
    epcisBody: dict[str, Any]


class BoardConfig(Out):
    """The APIs' browser-facing URLs (`PUBLIC_URLS`), null where not configured."""

    registry: str | None = None
    pledges: str | None = None
    shipments: str | None = None


class WhoAmI(Out):
    key_id: str
    organisation: str
    roles: list[str]
