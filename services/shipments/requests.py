"""Request bodies and parameters of the shipments API: strict, bounded, unknown fields refused.

Quantities and weights are decimals written as JSON strings ("13000", "12.5"), as in events.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Self

from fastapi import Path, Query
from pydantic import AfterValidator, Field, model_validator

from services.shipments import domain
from shared import instants
from shared.deps import IfMatch as IfMatch  # the routes import it from here
from shared.event_models import (
    MAX_PLACES,
    MAX_QUANTITY,
    MAX_QUANTITY_TEXT,
    decimal_text,
    quantity_refusal,
)
from shared.free_text import PlainText
from shared.route_params import AsOf as AsOf  # the routes import them from here
from shared.route_params import Body, example
from shared.route_params import CoordinatesIn as CoordinatesIn
from shared.route_params import Cursor as Cursor
from shared.route_params import Limit as Limit

Name = Annotated[str, Field(min_length=1, max_length=200), PlainText]
Note = Annotated[str | None, Field(max_length=2000), PlainText]
Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Ref = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
Registration = Annotated[
    str, Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]*$")
]


def _ascii_digits(amount: str) -> str:
    """Digits 0 to 9 only: the pattern's \\d means them in the OpenAPI document (ECMA-262)
    but any script's digits to the validator, which Decimal() reads too, so an amount written
    in Arabic-Indic or fullwidth digits would be stored changed."""
    if not amount.isascii():
        raise ValueError('write a decimal in the digits 0 to 9, such as "12.5"')
    return amount


def _a_quantity(amount: str) -> str:
    """Within the bounds of every quantity (shared.event_models.quantity_refusal): what pledges
    commits, shipments loads and delivers, to the last of its 6 decimal places."""
    why = quantity_refusal(Decimal(amount))
    if why is not None:
        raise ValueError(why)
    return amount


Amount = Annotated[
    str,
    Field(
        max_length=MAX_QUANTITY_TEXT,
        pattern=r"^\d+(\.\d+)?$",
        description=(
            f"a decimal >= 0 and at most {decimal_text(MAX_QUANTITY)}, with at most"
            f" {MAX_PLACES} decimal places, as pledges commits it"
        ),
    ),
    AfterValidator(_ascii_digits),
    AfterValidator(_a_quantity),
]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]

ConvoyId = Annotated[str, Path(min_length=1, max_length=100)]
LineRef = Annotated[str, Path(min_length=1, max_length=100)]
TIMELINE_MAX = 1000  # a timeline's entries are small and a convoy may have 10,000
TimelineLimit = Annotated[int, Query(ge=1, le=TIMELINE_MAX)]
OrgFilter = Annotated[str | None, Query(max_length=100)]


class _In(Body):
    """A shipments request body: the amounts it names in `more_than_zero` (an Amount alone may
    be zero) are checked by one validator."""

    more_than_zero: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _more_than_zero(self) -> Self:
        """One check for every model naming fields in `more_than_zero`, once they are valid."""
        for field in self.more_than_zero:
            if Decimal(getattr(self, field)) <= 0:
                raise ValueError(f"{field} must be more than zero")
        return self


class VehicleIn(_In):
    registration: Registration
    type: Annotated[
        str, Field(min_length=1, max_length=100, examples=["semi-trailer truck"]), PlainText
    ]
    capacity_kg: Amount

    more_than_zero = ("capacity_kg",)


class DriverIn(_In):
    name: Name
    phone: Annotated[str | None, Field(max_length=50), PlainText] = None
    licence_number: Annotated[str | None, Field(max_length=50), PlainText] = None
    vehicle: Registration | None = None


class ConvoyIn(_In):
    model_config = example(
        {
            "convoy_id": "lille-kharkiv-medicines-2023-03",
            "reference": "Lille - Kharkiv medicines, second convoy",
            "origin_id": "lille",
            "destination_id": "kharkiv",
            "carrier_id": "lille",
            "planned_departure": "2030-03-06T06:00:00+01:00",
            "vehicles": [
                {
                    "registration": "GH-482-LK",
                    "type": "semi-trailer truck",
                    "capacity_kg": "13000",
                }
            ],
            "route": ["Lille", "Kraków", "Kharkiv"],
        }
    )

    convoy_id: Slug | None = None
    reference: Name
    origin_id: Slug
    destination_id: Slug = Field(description="the recipient organisation")
    carrier_id: Slug
    planned_departure: instants.PlanInstant
    vehicles: Annotated[list[VehicleIn], Field(min_length=1, max_length=30)]
    drivers: Annotated[list[DriverIn], Field(max_length=60)] = []
    route: Annotated[list[Name], Field(max_length=50)] = []
    note: Note = None
    occurred_at: instants.PastInstant | None = Field(
        default=None, description="when it was planned"
    )


class LoadIn(_In):
    model_config = example(
        {
            "manifest_line_id": "antibiotics-1",
            "pledge_id": "chu-lille-antibiotics",
            "line_id": "1",
            "quantity": "300",
            "vehicle": "GH-482-LK",
            "weight_kg": "1800",
        }
    )

    manifest_line_id: Ref | None = None
    pledge_id: Ref
    line_id: Ref
    quantity: Amount
    vehicle: Registration
    weight_kg: Amount | None = Field(default=None, description="else from the pledge's estimate")
    occurred_at: instants.PastInstant | None = None

    more_than_zero = ("quantity",)


class UnloadIn(_In):
    model_config = example({"reason": "no room left"})

    reason: Note = None
    occurred_at: instants.PastInstant | None = None


class CancelIn(_In):
    model_config = example({"reason": "the road through Rzeszów is closed"})

    reason: Annotated[str, Field(min_length=1, max_length=2000), PlainText]
    occurred_at: instants.PastInstant | None = None


class CloseIn(_In):
    model_config = example({"note": "delivered and signed for"})

    note: Note = None
    occurred_at: instants.PastInstant | None = None


class PersonIn(_In):
    name: Name
    role: Annotated[str | None, Field(max_length=100), PlainText] = None


class PartyIn(_In):
    organisation_id: Slug | None = None
    name: Name | None = None
    person: PersonIn | None = None

    @model_validator(mode="after")
    def _someone(self) -> PartyIn:
        if not (self.organisation_id or self.name or self.person):
            raise ValueError("name an organisation_id, a name or a person")
        return self


class _Entry(_In):
    entry_id: Ref = Field(description="generated by the client; re-send it unchanged")
    occurred_at: instants.PastInstant
    note: Note = None

    def command(self) -> domain.FieldEntry:
        details = self.model_dump(mode="json", exclude={"entry_id", "kind", "occurred_at"})
        return domain.FieldEntry(
            entry_id=self.entry_id,
            kind=self.kind,  # type: ignore[attr-defined]
            occurred_at=self.occurred_at,
            details=self.details(details),
        )

    def details(self, dumped: dict[str, Any]) -> dict[str, Any]:
        return dumped


class DispatchIn(_Entry):
    kind: Literal["dispatch"]
    custody: PartyIn | None = Field(default=None, description="default: the carrier")


class CheckpointIn(_Entry):
    kind: Literal["checkpoint"]
    place: Name
    coordinates: CoordinatesIn | None = None


class BorderCrossingIn(_Entry):
    kind: Literal["border_crossing"]
    crossing_point: Name
    from_country: Country | None = None
    to_country: Country | None = None
    customs_document: Annotated[str | None, Field(max_length=100), PlainText] = None
    outcome: Literal["waiting", "cleared", "held"]
    coordinates: CoordinatesIn | None = None


class CustodyHandoffIn(_Entry):
    kind: Literal["custody_handoff"]
    from_party: PartyIn
    to_party: PartyIn


class AffectedLineIn(_In):
    manifest_line_id: Ref
    quantity: Amount

    more_than_zero = ("quantity",)


class IncidentIn(_Entry):
    kind: Literal["incident"]
    incident: Literal["delay", "damage", "theft", "loss", "seizure"]
    description: Annotated[str, Field(min_length=1, max_length=2000), PlainText]
    place: Name | None = None
    delay_minutes: Annotated[int | None, Field(ge=0, le=60 * 24 * 60)] = None
    lines: Annotated[list[AffectedLineIn], Field(max_length=domain.MAX_MANIFEST_LINES)] = []

    @model_validator(mode="after")
    def _lines(self) -> IncidentIn:
        if self.incident in domain.LOSS_KINDS and not self.lines:
            raise ValueError(f"a {self.incident} names the affected lines and quantities")
        return self

    def details(self, dumped: dict[str, Any]) -> dict[str, Any]:
        dumped["kind"] = dumped.pop("incident")
        return dumped


class ArrivalIn(_Entry):
    kind: Literal["arrival"]
    place: Name | None = None


FieldEntryIn = Annotated[
    DispatchIn | CheckpointIn | BorderCrossingIn | CustodyHandoffIn | IncidentIn | ArrivalIn,
    Field(discriminator="kind"),
]


class EntriesIn(_In):
    model_config = example(
        {
            "entries": [
                {
                    "entry_id": "lille-kharkiv-2023-03-07",
                    "kind": "checkpoint",
                    "occurred_at": "2023-03-09T06:15:00Z",
                    "place": "Poltava",
                    "coordinates": {"lat": 49.5883, "lon": 34.5514},
                }
            ]
        }
    )

    entries: Annotated[list[FieldEntryIn], Field(min_length=1, max_length=500)]


class ReceiverIn(_In):
    name: Name
    role: Annotated[str, Field(min_length=1, max_length=100), PlainText]


class DocumentIn(_In):
    name: Name
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class DeliveredLineIn(_In):
    manifest_line_id: Ref
    received: Amount
    damaged: Amount = "0"
    short: Amount = "0"


class DeliveryIn(_In):
    model_config = example(
        {
            "receiver": {
                "name": "Olha Kravchenko",
                "role": "head of the municipal medical warehouse",
            },
            "lines": [
                {
                    "manifest_line_id": "antibiotics-1",
                    "received": "298",
                    "damaged": "2",
                    "short": "0",
                }
            ],
        }
    )

    receiver: ReceiverIn
    document: DocumentIn | None = Field(default=None, description="a scanned receipt")
    lines: Annotated[
        list[DeliveredLineIn], Field(min_length=1, max_length=domain.MAX_MANIFEST_LINES)
    ]
    occurred_at: instants.PastInstant | None = None
