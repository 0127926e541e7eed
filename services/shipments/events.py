"""Facts the shipments service records, with the JSON Schema of each (see schemas/).

Every event of a convoy lives in the stream `convoy-<convoy_id>`. Quantities and weights are
decimals written as JSON strings; times travel in the envelope (`occurred_at`, `recorded_at`).
Road events carry the field entry they came from (`entry_id`, `entry_sha256`), so a re-sent
entry is recognised. `shipments.delivery-confirmed` is the contract pledges relies on
(docs/cross-service-events.md): its shape does not change without a new schema version.

People (drivers, persons holding the goods, who signed for them) are personal data: since
schema version 2 of the four types naming them (PERSONAL_TYPES) each is a sealed person
(shared/privacy.py, services/shipments/privacy.py), their name, phone and licence number
encrypted under their own key, a vehicle or a role in clear. Version 1 (`V1`, in clear) stays
in older logs and is published beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shared.codec import Event, EventCodec, UndecodableEvent
from shared.events import RecordedEvent

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

Decimal = Annotated[str, Field(pattern=r"^\d{1,12}(\.\d{1,6})?$", description="a decimal")]
Unit = Literal["pieces", "kg", "tonnes", "boxes", "litres"]
Text = Annotated[str, Field(max_length=2000)]

# Bounds a consumer enforces through the published schemas; never below what the API accepts
# (services/shipments/requests.py: slugs and refs 100, names 200, registrations 20, at most 30
# vehicles, 60 drivers, 50 route places, 500 lines a delivery or incident; pledge items 200).
MAX_ID = 200
MAX_NAME = 200
MAX_LABEL = 100
MAX_VEHICLES = 30
MAX_DRIVERS = 60
MAX_ROUTE = 50
MAX_LINES = 500

Id = Annotated[str, Field(max_length=MAX_ID)]
Name = Annotated[str, Field(max_length=MAX_NAME)]
Label = Annotated[str, Field(max_length=MAX_LABEL)]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    SCHEMA_VERSION: ClassVar[int] = 1  # the version events of the type are written with


class Coordinates(_Event):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Vehicle(_Event):
    registration: str = Field(min_length=1, max_length=20)
    type: str = Field(min_length=1, max_length=100)
    capacity_kg: Decimal


SUBJECT_ID = r"^[a-z]+-[0-9a-f]{32}$"  # shared/privacy.py SUBJECT_ID
MAX_SEALED = 4096


class _Sealed(_Event):
    """A person as the log holds them (shared/privacy.py): the personal fields encrypted under
    the person's own key, which erasure destroys; `personal` names them. Other fields (a
    vehicle, a role) stay in clear. Views decrypt it for those who may see personal data."""

    subject_id: str = Field(
        max_length=100, pattern=SUBJECT_ID, description="the person as one organisation"
    )
    sealed: str = Field(
        max_length=MAX_SEALED,
        pattern=r"^[A-Za-z0-9+/]+={0,2}$",
        description="base64: 12-byte nonce | AES-256-GCM ciphertext of the personal fields",
    )


class Driver(_Sealed):
    """Personal data (name, phone, licence number), sealed; shown only to the carrier, the
    recipient and auditors."""

    personal: list[Literal["name", "phone", "licence_number"]] = Field(max_length=3)
    vehicle: str | None = Field(default=None, max_length=20, description="registration")


class Person(_Sealed):
    """Personal data (name), sealed, like drivers; the role in clear."""

    personal: list[Literal["name"]] = Field(max_length=1)
    role: str | None = Field(default=None, max_length=100)


class Party(_Event):
    """Who holds the goods: a registered organisation, a named other body, and/or a person."""

    organisation_id: Id | None = None
    name: str | None = Field(default=None, max_length=200)
    person: Person | None = None


class _Entry(_Event):
    convoy_id: Id
    entry_id: Id = Field(description="the client-generated id of the field entry")
    entry_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="digest of the entry sent")
    note: Text | None = None


class ConvoyPlanned(_Event):
    EVENT_TYPE: ClassVar[str] = CONVOY_PLANNED
    SCHEMA_VERSION: ClassVar[int] = 2  # persons sealed (version 1: in clear, V1 below)

    convoy_id: Id
    reference: Name = Field(description="a name people use for the convoy")
    origin_id: Id
    destination_id: Id = Field(description="the recipient organisation")
    carrier_id: Id
    planned_departure: AwareDatetime
    vehicles: list[Vehicle] = Field(min_length=1, max_length=MAX_VEHICLES)
    drivers: list[Driver] = Field(default=[], max_length=MAX_DRIVERS)
    route: list[Name] = Field(
        default=[], max_length=MAX_ROUTE, description="planned places, in order"
    )
    note: Text | None = None


class ManifestLineLoaded(_Event):
    EVENT_TYPE: ClassVar[str] = MANIFEST_LINE_LOADED
    convoy_id: Id
    manifest_line_id: Id
    pledge_id: Id
    line_id: Id
    donor_id: Id
    recipient_id: Id
    item: Name
    category: Label | None = None
    unit: Unit
    quantity: Decimal
    weight_kg: Decimal
    vehicle: Label = Field(description="registration of the vehicle carrying the line")
    correlation_id: Id | None = Field(description="the pledge's correlation id")


class ManifestLineUnloaded(_Event):
    EVENT_TYPE: ClassVar[str] = MANIFEST_LINE_UNLOADED
    convoy_id: Id
    manifest_line_id: Id
    pledge_id: Id
    line_id: Id
    quantity: Decimal = Field(description="given back to the pledge line")
    reason: Text | None = None


class ConvoyDispatched(_Entry):
    EVENT_TYPE: ClassVar[str] = CONVOY_DISPATCHED
    SCHEMA_VERSION: ClassVar[int] = 2  # persons sealed (version 1: in clear, V1 below)

    manifest_lines: int
    weight_kg: Decimal
    custody: Party = Field(description="who holds the goods from now on")


class CheckpointRecorded(_Entry):
    EVENT_TYPE: ClassVar[str] = CHECKPOINT_RECORDED
    place: str = Field(min_length=1, max_length=200)
    coordinates: Coordinates | None = None


class BorderCrossed(_Entry):
    EVENT_TYPE: ClassVar[str] = BORDER_CROSSED
    crossing_point: str = Field(min_length=1, max_length=200)
    from_country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    to_country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    customs_document: str | None = Field(default=None, max_length=100)
    outcome: Literal["waiting", "cleared", "held"]
    coordinates: Coordinates | None = None


class CustodyHandedOff(_Entry):
    EVENT_TYPE: ClassVar[str] = CUSTODY_HANDED_OFF
    SCHEMA_VERSION: ClassVar[int] = 2  # persons sealed (version 1: in clear, V1 below)

    from_party: Party
    to_party: Party


class AffectedLine(_Event):
    manifest_line_id: Id
    quantity: Decimal


class IncidentReported(_Entry):
    EVENT_TYPE: ClassVar[str] = INCIDENT_REPORTED
    kind: Literal["delay", "damage", "theft", "loss", "seizure"]
    description: Text
    place: str | None = Field(default=None, max_length=200)
    delay_minutes: int | None = Field(default=None, ge=0)
    lines: list[AffectedLine] = Field(
        default=[],
        max_length=MAX_LINES,
        description="theft, loss and seizure: quantities that will not arrive",
    )


class ConvoyArrived(_Entry):
    EVENT_TYPE: ClassVar[str] = CONVOY_ARRIVED
    place: str | None = Field(default=None, max_length=200)


class ConfirmedBy(_Sealed):
    """Who signed for the goods: their name sealed (personal data), their role in clear."""

    personal: list[Literal["name"]] = Field(max_length=1)
    role: Label


class Document(_Event):
    name: Name
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class DeliveredLine(_Event):
    manifest_line_id: Id
    pledge_id: Id
    line_id: Id
    item: Name
    unit: Unit
    loaded: Decimal
    received: Decimal = Field(description="in good condition: what pledges counts")
    damaged: Decimal
    short: Decimal
    lost: Decimal = Field(description="recorded lost by incidents on the road")
    correlation_id: Id | None


class DeliveryConfirmed(_Event):
    """received + damaged + short == loaded - lost, on every line."""

    EVENT_TYPE: ClassVar[str] = DELIVERY_CONFIRMED
    SCHEMA_VERSION: ClassVar[int] = 2  # persons sealed (version 1: in clear, V1 below)

    convoy_id: Id
    recipient_id: Id
    origin_id: Id
    carrier_id: Id
    confirmed_by: ConfirmedBy
    document: Document | None
    lines: list[DeliveredLine] = Field(min_length=1, max_length=MAX_LINES)


class ConvoyClosed(_Event):
    EVENT_TYPE: ClassVar[str] = CONVOY_CLOSED
    convoy_id: Id
    outcome: Literal["delivered", "lost"]
    note: Text | None = None


class ReleasedLine(_Event):
    manifest_line_id: Id
    pledge_id: Id
    line_id: Id
    quantity: Decimal


class ConvoyCancelled(_Event):
    EVENT_TYPE: ClassVar[str] = CONVOY_CANCELLED
    convoy_id: Id
    reason: Text
    released: list[ReleasedLine] = Field(description="quantities given back to pledge lines")


SCHEMAS: dict[str, type[_Event]] = {
    CONVOY_PLANNED: ConvoyPlanned,
    MANIFEST_LINE_LOADED: ManifestLineLoaded,
    MANIFEST_LINE_UNLOADED: ManifestLineUnloaded,
    CONVOY_DISPATCHED: ConvoyDispatched,
    CHECKPOINT_RECORDED: CheckpointRecorded,
    BORDER_CROSSED: BorderCrossed,
    CUSTODY_HANDED_OFF: CustodyHandedOff,
    INCIDENT_REPORTED: IncidentReported,
    CONVOY_ARRIVED: ConvoyArrived,
    DELIVERY_CONFIRMED: DeliveryConfirmed,
    CONVOY_CLOSED: ConvoyClosed,
    CONVOY_CANCELLED: ConvoyCancelled,
}

# The road events a field entry may produce, by the entry's kind.
ENTRY_EVENTS: dict[str, str] = {
    "dispatch": CONVOY_DISPATCHED,
    "checkpoint": CHECKPOINT_RECORDED,
    "border_crossing": BORDER_CROSSED,
    "custody_handoff": CUSTODY_HANDED_OFF,
    "incident": INCIDENT_REPORTED,
    "arrival": CONVOY_ARRIVED,
}


def version(event_type: str) -> int:
    """The schema version an event of this type is written with (NewEvent.schema_version)."""
    return SCHEMAS[event_type].SCHEMA_VERSION


def payload(event: _Event) -> dict[str, Any]:
    """The JSON data of an event, validated by its model."""
    return event.model_dump(mode="json")


# Event types carrying persons (their current versions seal them)
PERSONAL_TYPES = (CONVOY_PLANNED, CONVOY_DISPATCHED, CUSTODY_HANDED_OFF, DELIVERY_CONFIRMED)


class V1:
    """Version 1 of the event types that carry persons: names, phones and licence numbers in
    clear. Logs written before persons were sealed hold them; they fold and show as ever."""

    class Driver(_Event):
        """Personal data: shown only to the carrier, the recipient and auditors."""

        name: str = Field(min_length=1, max_length=200)
        phone: str | None = Field(default=None, max_length=50)
        licence_number: str | None = Field(default=None, max_length=50)
        vehicle: str | None = Field(default=None, max_length=20, description="registration")

    class Person(_Event):
        """Personal data, like drivers."""

        name: str = Field(min_length=1, max_length=200)
        role: str | None = Field(default=None, max_length=100)

    class Party(_Event):
        """Who holds the goods: a registered organisation, a named other body, and/or a person."""

        organisation_id: Id | None = None
        name: str | None = Field(default=None, max_length=200)
        person: V1.Person | None = None

    class ConfirmedBy(_Event):
        name: Name
        role: Label

    class ConvoyPlanned(_Event):
        EVENT_TYPE: ClassVar[str] = CONVOY_PLANNED
        convoy_id: Id
        reference: Name = Field(description="a name people use for the convoy")
        origin_id: Id
        destination_id: Id = Field(description="the recipient organisation")
        carrier_id: Id
        planned_departure: AwareDatetime
        vehicles: list[Vehicle] = Field(min_length=1, max_length=MAX_VEHICLES)
        drivers: list[V1.Driver] = Field(default=[], max_length=MAX_DRIVERS)
        route: list[Name] = Field(
            default=[], max_length=MAX_ROUTE, description="planned places, in order"
        )
        note: Text | None = None

    class ConvoyDispatched(_Entry):
        EVENT_TYPE: ClassVar[str] = CONVOY_DISPATCHED
        manifest_lines: int
        weight_kg: Decimal
        custody: V1.Party = Field(description="who holds the goods from now on")

    class CustodyHandedOff(_Entry):
        EVENT_TYPE: ClassVar[str] = CUSTODY_HANDED_OFF
        from_party: V1.Party
        to_party: V1.Party

    class DeliveryConfirmed(_Event):
        """received + damaged + short == loaded - lost, on every line."""

        EVENT_TYPE: ClassVar[str] = DELIVERY_CONFIRMED
        convoy_id: Id
        recipient_id: Id
        origin_id: Id
        carrier_id: Id
        confirmed_by: V1.ConfirmedBy
        document: Document | None
        lines: list[DeliveredLine] = Field(min_length=1, max_length=MAX_LINES)


# Older schema versions of event types still in logs: {(type, version): model}
PREVIOUS: dict[tuple[str, int], type[_Event]] = {
    (CONVOY_PLANNED, 1): V1.ConvoyPlanned,
    (CONVOY_DISPATCHED, 1): V1.ConvoyDispatched,
    (CUSTODY_HANDED_OFF, 1): V1.CustodyHandedOff,
    (DELIVERY_CONFIRMED, 1): V1.DeliveryConfirmed,
}


class _Codec(EventCodec):
    """The codec of the shipments log. Version 1 of the four types naming persons (PREVIOUS)
    has no upcaster: version 2 seals each person under a key of their own, which only the
    write path (or the privacy migration, privacy.seal_v1) can create. A version 1 event is
    decoded with its own model instead: readers take both (e.g. `case ConvoyPlanned() |
    V1.ConvoyPlanned()`), as they showed both before."""

    def decode(self, event: RecordedEvent) -> Event[Any]:
        older = PREVIOUS.get((event.event_type, event.schema_version))
        if older is None:
            return super().decode(event)
        try:
            return Event(event, older.model_validate(event.data))
        except ValidationError as exc:
            raise UndecodableEvent(
                event_type=event.event_type,
                schema_version=event.schema_version,
                reason=str(exc),
                event_id=event.event_id,
            ) from exc

    def decode_kept(self, event_type: str, data: Mapping[str, Any]) -> BaseModel:
        """A payload kept without its version (a convoy snapshot keeps an entry's data
        alone): as the current version, else as the older one it is."""
        try:
            return self.decode_data(event_type, self.version(event_type), data)
        except UndecodableEvent:
            older = [m for (t, _), m in PREVIOUS.items() if t == event_type]
            if not older:
                raise
            return older[0].model_validate(data)


# Every event of the log decoded into its model (shared/codec.py)
CODEC = _Codec(SCHEMAS.values())

# a payload of a road entry, in either version
EntryPayload = (
    ConvoyDispatched
    | V1.ConvoyDispatched
    | CheckpointRecorded
    | BorderCrossed
    | CustodyHandedOff
    | V1.CustodyHandedOff
    | IncidentReported
    | ConvoyArrived
)
