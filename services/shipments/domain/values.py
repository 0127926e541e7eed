"""The values a convoy is made of: vehicles, manifest lines, road entries, the delivery, and
the pledge lines it draws on. Quantities are Decimals; contracts write them as strings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from services.shipments import events as ev
from shared.event_models import decimal_text as text  # a decimal as contracts write it

__all__ = [
    "LOSS_KINDS",
    "Delivery",
    "Entry",
    "Line",
    "LineState",
    "PledgeLine",
    "PledgedGoods",
    "Vehicle",
    "dec",
    "text",
]


LOSS_KINDS = frozenset({"theft", "loss", "seizure"})
ZERO = Decimal(0)


def dec(value: str | int | float | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


class LineState(StrEnum):
    LOADED = "loaded"
    UNLOADED = "unloaded"  # given back before dispatch
    RELEASED = "released"  # given back when the convoy was cancelled


@dataclass(frozen=True, slots=True)
class Vehicle:
    registration: str
    type: str
    capacity_kg: Decimal


@dataclass(frozen=True, slots=True)
class PledgedGoods:
    """The goods of an in-kind pledge line, as pledges announced them: whose line, from whom to
    whom, what, counted in which unit, and the pledge's correlation id. A pledge line and every
    manifest line loaded from it carry the same."""

    pledge_id: str
    line_id: str
    donor_id: str
    recipient_id: str
    item: str
    category: str | None
    unit: str
    correlation_id: str | None


@dataclass(frozen=True, slots=True)
class PledgeLine(PledgedGoods):
    """An in-kind pledge line as pledges last announced it (pledges.pledge-line-updated):
    `quantity` committed."""

    quantity: Decimal
    weight_kg: Decimal | None
    status: str
    # None for a line shipments learned of before it kept the commitment instant
    committed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Line(PledgedGoods):
    """A manifest line: `quantity` of a pledge line's goods loaded on a vehicle."""

    manifest_line_id: str
    quantity: Decimal
    weight_kg: Decimal
    vehicle: str
    loaded_at: datetime
    state: LineState = LineState.LOADED


def _decoded(kept: Entry | Delivery, event_type: str) -> Any:
    """`kept.data` decoded as `event_type` at the schema version it was stored with, once:
    kept in `decoded` (a cache, never written: snapshots keep `data` and its version)."""
    if kept.decoded is None:
        decoded = ev.CODEC.decode_data(event_type, kept.schema_version, kept.data)
        object.__setattr__(kept, "decoded", decoded)
    return kept.decoded


@dataclass(frozen=True, slots=True)
class Entry:
    """A road event from a field entry: `data` its payload as stored (what views show),
    `payload` the same decoded (events/; what rules read)."""

    entry_id: str
    kind: str
    event_type: str
    event_id: str
    occurred_at: datetime
    recorded_at: datetime
    digest: str
    data: Mapping[str, Any]
    version: int
    schema_version: int  # of `data`, as stored
    # the decoded payload: given by the fold, decoded from `data` when first asked after a
    # snapshot (which keeps `data` and its schema version)
    decoded: Any = field(default=None, compare=False, repr=False)

    @property
    def payload(self) -> ev.EntryPayload:
        payload: ev.EntryPayload = _decoded(self, self.event_type)
        return payload

    def answer(self) -> dict[str, Any]:
        """What the sender of the entry is told, the first time and every time after."""
        return {
            "entry_id": self.entry_id,
            "kind": self.kind,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "recorded_at": self.recorded_at.astimezone(UTC).isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """The proof of delivery: `data` as stored (views show it), `payload` decoded."""

    occurred_at: datetime
    recorded_at: datetime
    data: Mapping[str, Any]
    schema_version: int  # of `data`, as stored
    decoded: Any = field(default=None, compare=False, repr=False)  # as Entry's

    @property
    def payload(self) -> ev.DeliveryConfirmed | ev.V1.DeliveryConfirmed:
        payload: ev.DeliveryConfirmed | ev.V1.DeliveryConfirmed = _decoded(
            self, ev.DELIVERY_CONFIRMED
        )
        return payload

    @property
    def partial(self) -> bool:
        return any(
            dec(getattr(line, k)) > 0
            for line in self.payload.lines
            for k in ("damaged", "short", "lost")
        )
