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

A changed shape gets a new schema version (older.py): move the model as it was into older.py
(PREVIOUS, published beside the new one), write the new one here with SCHEMA_VERSION bumped,
register the upcaster from the old version in UPCASTERS (it reads the event's own data alone:
a value it cannot work out from them is dropped, and readers derive it from the convoy's
state), regenerate schemas/ (tests/shipments/test_contracts_and_rebuild.py says how), and have
every consumer of the type (shared/consumed.py models elsewhere) read both.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from services.shipments.events.older import AS_WRITTEN, UPCASTERS
from services.shipments.events.older import PREVIOUS as PREVIOUS
from services.shipments.events.older import V1 as V1
from services.shipments.events.older import V2 as V2

# the parts, and the names events are made of, are this package's too (ev.Vehicle, ev.MAX_ID)
from services.shipments.events.parts import *  # noqa: F403
from services.shipments.events.parts import (
    BORDER_CROSSED,
    CHECKPOINT_RECORDED,
    CONVOY_ARRIVED,
    CONVOY_CANCELLED,
    CONVOY_CLOSED,
    CONVOY_DISPATCHED,
    CONVOY_PLANNED,
    CUSTODY_HANDED_OFF,
    DELIVERY_CONFIRMED,
    INCIDENT_REPORTED,
    MANIFEST_LINE_LOADED,
    MANIFEST_LINE_UNLOADED,
    MAX_LINES,
    Coordinates,
    Decimal,
    Driver,
    Id,
    Label,
    Name,
    Party,
    Text,
    Unit,
    _ConvoyPlanned,
    _CustodyHandedOff,
    _DeliveryConfirmed,
    _Entry,
    _ManifestLine,
)
from shared.codec import EventCodec
from shared.event_models import EventModel as EventModel
from shared.event_models import SealedPerson, by_type


class ConvoyPlanned(_ConvoyPlanned[Driver]):
    EVENT_TYPE: ClassVar[str] = CONVOY_PLANNED
    SCHEMA_VERSION: ClassVar[int] = 2  # persons sealed (version 1: in clear, V1 below)


class _OnManifestLine(EventModel):
    """What an event of a manifest line names first: the convoy, the line, its pledge line."""

    convoy_id: Id
    manifest_line_id: Id
    pledge_id: Id
    line_id: Id


class ManifestLineLoaded(_OnManifestLine):
    EVENT_TYPE: ClassVar[str] = MANIFEST_LINE_LOADED
    donor_id: Id
    recipient_id: Id
    item: Name
    category: Label | None = None
    unit: Unit
    quantity: Decimal
    weight_kg: Decimal
    vehicle: Label = Field(description="registration of the vehicle carrying the line")
    correlation_id: Id | None = Field(description="the pledge's correlation id")


class ManifestLineUnloaded(_OnManifestLine):
    EVENT_TYPE: ClassVar[str] = MANIFEST_LINE_UNLOADED
    quantity: Decimal = Field(description="given back to the pledge line")
    reason: Text | None = None


class ConvoyDispatched(_Entry):
    """What left is the convoy's loads: how many lines and their weight are the convoy's state
    (version 2, V2, carried them too; version 1 also held persons in clear)."""

    EVENT_TYPE: ClassVar[str] = CONVOY_DISPATCHED
    SCHEMA_VERSION: ClassVar[int] = 3

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


class CustodyHandedOff(_CustodyHandedOff[Party]):
    EVENT_TYPE: ClassVar[str] = CUSTODY_HANDED_OFF
    SCHEMA_VERSION: ClassVar[int] = 2  # persons sealed (version 1: in clear, V1 below)


class AffectedLine(EventModel):
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


class ConfirmedBy(SealedPerson):
    """Who signed for the goods: their name sealed (personal data), their role in clear."""

    personal: list[Literal["name"]] = Field(max_length=1)
    role: Label


class DeliveryConfirmed(_DeliveryConfirmed[ConfirmedBy]):
    """received + damaged + short == loaded - lost, on every line."""

    EVENT_TYPE: ClassVar[str] = DELIVERY_CONFIRMED
    SCHEMA_VERSION: ClassVar[int] = 2  # persons sealed (version 1: in clear, V1 below)


class ConvoyClosed(EventModel):
    EVENT_TYPE: ClassVar[str] = CONVOY_CLOSED
    convoy_id: Id
    outcome: Literal["delivered", "lost"]
    note: Text | None = None


class ReleasedLine(_ManifestLine):
    quantity: Decimal


class ConvoyCancelled(EventModel):
    EVENT_TYPE: ClassVar[str] = CONVOY_CANCELLED
    convoy_id: Id
    reason: Text
    released: list[ReleasedLine] = Field(description="quantities given back to pledge lines")


SCHEMAS: dict[str, type[EventModel]] = by_type(
    ConvoyPlanned,
    ManifestLineLoaded,
    ManifestLineUnloaded,
    ConvoyDispatched,
    CheckpointRecorded,
    BorderCrossed,
    CustodyHandedOff,
    IncidentReported,
    ConvoyArrived,
    DeliveryConfirmed,
    ConvoyClosed,
    ConvoyCancelled,
)

# The road events a field entry may produce, by the entry's kind.
ENTRY_EVENTS: dict[str, str] = {
    "dispatch": CONVOY_DISPATCHED,
    "checkpoint": CHECKPOINT_RECORDED,
    "border_crossing": BORDER_CROSSED,
    "custody_handoff": CUSTODY_HANDED_OFF,
    "incident": INCIDENT_REPORTED,
    "arrival": CONVOY_ARRIVED,
}


def payload(event: EventModel) -> dict[str, Any]:
    """The JSON data of an event, validated by its model."""
    return event.model_dump(mode="json")


# Event types carrying persons (their current versions seal them)
PERSONAL_TYPES = (CONVOY_PLANNED, CONVOY_DISPATCHED, CUSTODY_HANDED_OFF, DELIVERY_CONFIRMED)


# The version 2 model of each type naming persons: what the privacy migration seals version 1
# into (privacy.seal_v1; shared/privacy_migration.py writes schema version 2)
SEALED: dict[str, type[EventModel]] = {t: PREVIOUS.get((t, 2), SCHEMAS[t]) for t in PERSONAL_TYPES}

# Every event of the log decoded into its model (shared/codec.py): older versions upcast, but
# version 1 of the types naming persons, decoded as written (readers match both, e.g.
# `case ConvoyPlanned() | V1.ConvoyPlanned()`, as they showed both before)
CODEC = EventCodec(SCHEMAS.values(), upcasters=UPCASTERS, previous=AS_WRITTEN)

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
