"""Older schema versions of shipments' event types, still in logs (events/__init__.py), and
how readers get them.

Version 1 of the four types naming persons held them in clear; version 2 sealed them
(shared/privacy.py). Sealing needs the database (privacy.seal_v1 migrates such events in
place), so no upcaster can make version 2 of one: readers get the version 1 model itself
(AS_WRITTEN) and match both. Version 2 of convoy-dispatched also carried values derived from
the convoy's loads (how many lines, their weight), which readers work out from the convoy's
state: upcasting to version 3 drops them.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from services.shipments.events.parts import (
    CONVOY_DISPATCHED,
    CONVOY_PLANNED,
    CUSTODY_HANDED_OFF,
    DELIVERY_CONFIRMED,
    Id,
    Label,
    Name,
    Party,
    _ConvoyPlanned,
    _CustodyHandedOff,
    _DeliveryConfirmed,
    _DispatchedWithLoads,
)
from shared.codec import Upcaster
from shared.event_models import EventModel, without


class V1:
    """Version 1 of the event types that carry persons: names, phones and licence numbers in
    clear. Logs written before persons were sealed hold them; they fold and show as ever."""

    class Driver(EventModel):
        """Personal data: shown only to the carrier, the recipient and auditors."""

        name: str = Field(min_length=1, max_length=200)
        phone: str | None = Field(default=None, max_length=50)
        licence_number: str | None = Field(default=None, max_length=50)
        vehicle: str | None = Field(default=None, max_length=20, description="registration")

    class Person(EventModel):
        """Personal data, like drivers."""

        name: str = Field(min_length=1, max_length=200)
        role: str | None = Field(default=None, max_length=100)

    class Party(EventModel):
        """Who holds the goods: a registered organisation, a named other body, and/or a person."""

        organisation_id: Id | None = None
        name: str | None = Field(default=None, max_length=200)
        person: V1.Person | None = None

    class ConfirmedBy(EventModel):
        name: Name
        role: Label

    # (in this class's body, Driver, Party and ConfirmedBy are V1's own, in clear)
    class ConvoyPlanned(_ConvoyPlanned[Driver]):
        EVENT_TYPE: ClassVar[str] = CONVOY_PLANNED

    class ConvoyDispatched(_DispatchedWithLoads[Party]):
        EVENT_TYPE: ClassVar[str] = CONVOY_DISPATCHED

    class CustodyHandedOff(_CustodyHandedOff[Party]):
        EVENT_TYPE: ClassVar[str] = CUSTODY_HANDED_OFF

    class DeliveryConfirmed(_DeliveryConfirmed[ConfirmedBy]):
        """received + damaged + short == loaded - lost, on every line."""

        EVENT_TYPE: ClassVar[str] = DELIVERY_CONFIRMED


class V2:
    """Version 2 of convoy-dispatched: persons sealed, and the number of manifest lines and
    their weight, derived from the loads, carried along."""

    class ConvoyDispatched(_DispatchedWithLoads[Party]):
        EVENT_TYPE: ClassVar[str] = CONVOY_DISPATCHED
        SCHEMA_VERSION: ClassVar[int] = 2


# Version 1 of the types naming persons, decoded as written (no upcaster can seal a person)
AS_WRITTEN: dict[tuple[str, int], type[EventModel]] = {
    (CONVOY_PLANNED, 1): V1.ConvoyPlanned,
    (CONVOY_DISPATCHED, 1): V1.ConvoyDispatched,
    (CUSTODY_HANDED_OFF, 1): V1.CustodyHandedOff,
    (DELIVERY_CONFIRMED, 1): V1.DeliveryConfirmed,
}

# Older schema versions of event types still in logs, published beside the current ones
# (schemas/): {(type, version): model}
PREVIOUS: dict[tuple[str, int], type[EventModel]] = {
    **AS_WRITTEN,
    (CONVOY_DISPATCHED, 2): V2.ConvoyDispatched,
}


# {(type, version n): data of version n -> data of version n + 1} (shared/codec.py)
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    (CONVOY_DISPATCHED, 2): without("manifest_lines", "weight_kg"),
}
