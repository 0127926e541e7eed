"""What the shipments event models are made of: stream and event type names, bounded field
types, and the parts several events share (vehicles, sealed persons, parties, road entries,
documents, delivered lines)."""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AwareDatetime, Field

from shared.event_models import MAX_ID as MAX_ID
from shared.event_models import MAX_LABEL as MAX_LABEL
from shared.event_models import MAX_NAME as MAX_NAME
from shared.event_models import MAX_QUANTITY_TEXT, QUANTITY_PATTERN, SealedPerson
from shared.event_models import MAX_SEALED as MAX_SEALED
from shared.event_models import Coordinates as Coordinates
from shared.event_models import EventModel as EventModel
from shared.event_models import Id as Id
from shared.event_models import Label as Label
from shared.event_models import Name as Name
from shared.sealed import SUBJECT_ID as SUBJECT_ID

STREAM_CONVOY = "convoy"

CONVOY_PLANNED = "shipments.convoy-planned"
MANIFEST_LINE_LOADED = "shipments.manifest-line-loaded"
MANIFEST_LINE_UNLOADED = "shipments.manifest-line-unloaded"
CONVOY_DISPATCHED = "shipments.convoy-dispatched"
CHECKPOINT_RECORDED = "shipments.checkpoint-recorded"
BORDER_CROSSED = "shipments.border-crossed"
CUSTODY_HANDED_OFF = "shipments.custody-handed-off"
INCIDENT_REPORTED = "shipments.incident-reported"
CONVOY_ARRIVED = "shipments.convoy-arrived"
DELIVERY_CONFIRMED = "shipments.delivery-confirmed"
CONVOY_CLOSED = "shipments.convoy-closed"
CONVOY_CANCELLED = "shipments.convoy-cancelled"

# every quantity and weight, as decimal_text writes it: the bounds of a quantity in every service
# bounded as the requests' amounts are (MAX_QUANTITY_TEXT; the pattern allows 20 at most)
Decimal = Annotated[
    str, Field(pattern=QUANTITY_PATTERN, max_length=MAX_QUANTITY_TEXT, description="a decimal")
]
Unit = Literal["pieces", "kg", "tonnes", "boxes", "litres"]
Text = Annotated[str, Field(max_length=2000)]

# Bounds a consumer enforces through the published schemas; never below what the API accepts
# (services/shipments/requests.py: slugs and refs 100, names 200, registrations 20, at most 30
# vehicles, 60 drivers, 50 route places, 500 lines a delivery or incident, as on a manifest;
# pledge items 200);
# ids, names, labels and sealed persons are bounded alike in every service
# (shared/event_models.py).
MAX_VEHICLES = 30
MAX_DRIVERS = 60
MAX_ROUTE = 50
MAX_LINES = 500  # lines loaded on a convoy at once, hence given by a delivery or an incident


class Vehicle(EventModel):
    registration: str = Field(min_length=1, max_length=20)
    type: str = Field(min_length=1, max_length=100)
    capacity_kg: Decimal


class Driver(SealedPerson):
    """Personal data (name, phone, licence number), sealed; shown only to the carrier, the
    recipient and auditors."""

    personal: list[Literal["name", "phone", "licence_number"]] = Field(max_length=3)
    vehicle: str | None = Field(default=None, max_length=20, description="registration")


class Person(SealedPerson):
    """Personal data (name), sealed, like drivers; the role in clear."""

    personal: list[Literal["name"]] = Field(max_length=1)
    role: str | None = Field(default=None, max_length=100)


class Party(EventModel):
    """Who holds the goods: a registered organisation, a named other body, and/or a person."""

    organisation_id: Id | None = None
    name: str | None = Field(default=None, max_length=200)
    person: Person | None = None


class _Entry(EventModel):
    convoy_id: Id
    entry_id: Id = Field(description="the client-generated id of the field entry")
    entry_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="digest of the entry sent")
    note: Text | None = None


class Document(EventModel):
    name: Name
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _ManifestLine(EventModel):
    """A manifest line, and the pledge line it was loaded from."""

    manifest_line_id: Id
    pledge_id: Id
    line_id: Id


class DeliveredLine(_ManifestLine):
    item: Name
    unit: Unit
    loaded: Decimal
    received: Decimal = Field(description="in good condition: what pledges counts")
    damaged: Decimal
    short: Decimal
    lost: Decimal = Field(description="recorded lost by incidents on the road")
    correlation_id: Id | None


# The shapes of the types naming persons, whatever those persons are: sealed (shared/privacy.py)
# in the current versions, in clear in version 1 (older.py), each field in the same place.
D = TypeVar("D", bound=EventModel)  # a driver
H = TypeVar("H", bound=EventModel)  # who holds the goods (a party)
S = TypeVar("S", bound=EventModel)  # who signed for them


class _ConvoyPlanned(EventModel, Generic[D]):
    convoy_id: Id
    reference: Name = Field(description="a name people use for the convoy")
    origin_id: Id
    destination_id: Id = Field(description="the recipient organisation")
    carrier_id: Id
    planned_departure: AwareDatetime
    vehicles: list[Vehicle] = Field(min_length=1, max_length=MAX_VEHICLES)
    drivers: list[D] = Field(default=[], max_length=MAX_DRIVERS)
    route: list[Name] = Field(
        default=[], max_length=MAX_ROUTE, description="planned places, in order"
    )
    note: Text | None = None


class _DispatchedWithLoads(_Entry, Generic[H]):
    # versions 1 and 2 of convoy-dispatched: the loads' count and weight carried along
    manifest_lines: int
    weight_kg: Decimal
    custody: H = Field(description="who holds the goods from now on")


class _CustodyHandedOff(_Entry, Generic[H]):
    from_party: H
    to_party: H


class _DeliveryConfirmed(EventModel, Generic[S]):
    convoy_id: Id
    recipient_id: Id
    origin_id: Id
    carrier_id: Id
    confirmed_by: S
    document: Document | None
    lines: list[DeliveredLine] = Field(min_length=1, max_length=MAX_LINES)
