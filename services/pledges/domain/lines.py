"""A pledge line: in kind (item, quantity, unit) or money (amount, currency), and its progress.

Progress is what the recipient confirmed: goods received in good condition from deliveries
reported by shipments, money received. The donor's own figure is kept beside it, never counted.

What is still due of a line (`due`: money outstanding, goods remaining) is what its pledge binds
the donor to and has not arrived: its size less what arrived while the pledge is committed or
partly fulfilled, nothing once fulfilled or withdrawn, and nothing while it is only pledged (a
promise not yet binding, which the totals count as committed nothing): outstanding is committed
less received, in every view that shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from services.pledges import events as ev
from services.pledges.domain import money, quantities
from services.pledges.domain.coverage import BINDING
from services.pledges.domain.quantities import ZERO, Unit

__all__ = [
    "Amendment",
    "Delivery",
    "Line",
    "LineKind",
    "LineTerms",
    "ManifestDelivery",
    "Receipt",
    "due",
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


N = TypeVar("N", int, Decimal)


def due(*, size: N, arrived: N, pledge_status: str) -> N:
    """What is still due of a line of `size` (an amount of money, a quantity of goods) of which
    `arrived` was confirmed, its pledge's status being `pledge_status` (PledgeStatus values):
    size less arrived, never below zero, while the pledge binds the donor (coverage.BINDING);
    nothing while it is only pledged or once withdrawn. The one rule of the pledge view, the
    lists, the pledges report and the totals (see the module's docstring)."""
    nothing = size - size
    if pledge_status not in BINDING:
        return nothing
    return max(nothing, size - arrived)


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
        """Quantity less delivered, never below zero, whatever the pledge's status: what
        `pledges.pledge-line-updated` carries (its status says whether any may be loaded).
        What the views show is `remaining_for` the pledge's status."""
        return max(ZERO, self.quantity - self.delivered)

    @property
    def outstanding(self) -> int:
        """Amount less received, never below zero, whatever the pledge's status: what a
        receipt may still add. What the views show is `outstanding_for` the pledge's status."""
        return max(0, self.amount - self.received)

    def remaining_for(self, pledge_status: str) -> Decimal:
        """The goods still due of the line of a pledge of this status (`due`)."""
        return due(size=self.quantity, arrived=self.delivered, pledge_status=pledge_status)

    def outstanding_for(self, pledge_status: str) -> int:
        """The money still due of the line of a pledge of this status (`due`)."""
        return due(size=self.amount, arrived=self.received, pledge_status=pledge_status)

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
