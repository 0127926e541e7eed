"""Convoys as the read routes answer them: pages, one convoy, its manifest and timeline."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from shared.responses import NextCursor, Out

# a named person's subject and erasure, as the shipments answers document them
_SubjectId = Annotated[
    str | None, Field(description="the person's subject (personal data export and erasure)")
]
_Erased = Annotated[bool | None, Field(description="true: erased, `(erased)` shown")]


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
    subject_id: _SubjectId = None
    erased: _Erased = None


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


class ConvoyCustodyPerson(ConvoyPageItemCustodyPerson):
    role: str | None


class ConvoyCustody(ConvoyPageItemCustody):
    person: ConvoyCustodyPerson | None


class ConvoyDriver(Out):
    """`(withheld)` to those who may not see personal data; `(erased)` once erased."""

    vehicle: str | None
    name: str
    phone: str | None = None
    licence_number: str | None = None
    subject_id: _SubjectId = None
    erased: _Erased = None


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
    next_cursor: NextCursor


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
    next_cursor: NextCursor
