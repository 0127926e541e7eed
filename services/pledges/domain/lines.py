"""A pledge line: in kind (item, quantity, unit) or money (amount, currency), and its progress.

Progress is what the recipient confirmed: goods received in good condition from deliveries
reported by shipments, money received. The donor's own figure is kept beside it, never counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from services.pledges import events as ev
from services.pledges.domain import money, quantities
from services.pledges.domain.quantities import ZERO, Unit

__all__ = [
    "Amendment",
    "Delivery",
    "Line",
    "LineKind",
    "LineTerms",
    "ManifestDelivery",
    "Receipt",
    "line_from_event",
    "progress",
]


class LineKind(StrEnum):
    IN_KIND = "in_kind"
    MONEY = "money"


@dataclass(frozen=True, slots=True)
class Receipt:
    amount: int
    received_on: date
    reference: str


@dataclass(frozen=True, slots=True)
class ManifestDelivery:
    """What became of a manifest line of a convoy, as its delivery was confirmed: the quantity
    loaded, received in good condition, damaged, short and lost."""

    convoy_id: str
    manifest_line_id: str
    loaded: Decimal
    received: Decimal
    damaged: Decimal
    short: Decimal
    lost: Decimal


@dataclass(frozen=True, slots=True)
class Delivery(ManifestDelivery):
    """A manifest line's delivery counted on the pledge line it drew on, in the line's unit
    (fulfilment.DeliveredLine, as shipments reports it, counts in the manifest's)."""


@dataclass(frozen=True, slots=True)
class Amendment:
    previous: str
    new: str
    reason: str


def progress(*, size: Decimal | int, arrived: Decimal | int) -> tuple[bool, bool]:
    """(complete, started) of a line of `size` (a quantity in kind, an amount of money) of
    which `arrived` was confirmed (received in good condition, or money received)."""
    return arrived >= size, arrived > 0


@dataclass(frozen=True, slots=True)
class LineTerms:
    """What a donor states of a pledge line but its size: in kind or money, what, the need it
    answers if any, the unit (in kind) or currency (money), and for goods an estimated weight
    and value. The line as pledged (making.LineSpec) and as it stands (Line) both carry them;
    the size is theirs: a LineSpec's may be missing, a Line's is 0 on the other kind."""

    line_id: str
    kind: LineKind
    item: str
    category: str
    need_id: str | None = None
    unit: Unit | None = None
    weight_kg: Decimal | None = None
    value_amount: int | None = None
    value_currency: str | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class Line(LineTerms):
    quantity: Decimal = ZERO
    amount: int = 0
    deliveries: tuple[Delivery, ...] = ()
    receipts: tuple[Receipt, ...] = ()
    amendments: tuple[Amendment, ...] = ()
    donor_figure: str | None = None  # the donor's latest figure, as recorded
    donor_figure_on: date | None = None

    @property
    def delivered(self) -> Decimal:
        """Received in good condition: what counts towards fulfilment."""
        return sum((d.received for d in self.deliveries), ZERO)

    def total(self, attribute: str) -> Decimal:
        return sum((getattr(d, attribute) for d in self.deliveries), ZERO)

    @property
    def received(self) -> int:
        return sum(r.amount for r in self.receipts)

    @property
    def remaining(self) -> Decimal:
        return max(ZERO, self.quantity - self.delivered)

    @property
    def outstanding(self) -> int:
        return max(0, self.amount - self.received)

    @property
    def progress(self) -> tuple[bool, bool]:
        """(complete, started): see `progress`."""
        if self.kind is LineKind.MONEY:
            return progress(size=self.amount, arrived=self.received)
        return progress(size=self.quantity, arrived=self.delivered)

    def delivery_keys(self) -> frozenset[tuple[str, str]]:
        return frozenset((d.convoy_id, d.manifest_line_id) for d in self.deliveries)

    def size(self) -> str:
        """The pledged size as written in events: a quantity string or an amount."""
        if self.kind is LineKind.MONEY:
            return str(self.amount)
        return quantities.fmt(self.quantity)

    def describe(self) -> str:
        if self.kind is LineKind.MONEY:
            assert self.currency is not None
            return f"{money.format_minor(self.amount, self.currency)} {self.currency}"
        assert self.unit is not None
        return f"{quantities.fmt(self.quantity)} {self.unit.value}"


def line_from_event(line: ev.Line) -> Line:
    return Line(
        line_id=line.line_id,
        kind=LineKind(line.kind),
        item=line.item,
        category=line.category,
        need_id=line.need_id,
        quantity=quantities.parse(line.quantity) if line.quantity is not None else ZERO,
        unit=Unit(line.unit) if line.unit else None,
        weight_kg=quantities.parse_or_none(line.weight_kg),
        value_amount=line.value_amount,
        value_currency=line.value_currency,
        amount=line.amount or 0,
        currency=line.currency,
    )
