"""What fulfils a pledge: money the recipient confirms, deliveries shipments reports, and the
donor's own figure kept beside them (counted for nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.pledges import events as ev
from services.pledges.domain import money, quantities
from services.pledges.domain.history import evolve_events
from services.pledges.domain.lines import LineKind, ManifestDelivery
from services.pledges.domain.pledges import (
    line_update,
    not_before_previous_change,
    require_pledge,
    status_conflict,
)
from services.pledges.domain.state import Pledge, PledgeStatus
from shared.domain_checks import invalid, occurred
from shared.errors import Conflict, Forbidden, ValidationFailed
from shared.events import NewEvent

__all__ = [
    "DeliveredLine",
    "ReceiveMoney",
    "ReportFigure",
    "UnusableDelivery",
    "receive_money",
    "record_deliveries",
    "report_figure",
]


class UnusableDelivery(ValidationFailed):
    """A delivery line that cannot count towards the pledge line it names."""

    type_slug = "unusable-delivery"
    title = "The delivery does not fit the pledge line it names"


@dataclass(frozen=True, slots=True)
class ReceiveMoney:
    line_id: str
    amount: int
    currency: str
    received_on: date
    reference: str
    occurred_at: datetime | None = None  # None: now


@dataclass(frozen=True, slots=True)
class ReportFigure:
    """The donor's cumulative figure for a line: delivered (in kind) or paid (money)."""

    line_id: str
    reported_on: date
    occurred_at: datetime | None = None  # None: now
    quantity: Decimal | None = None
    amount: int | None = None
    currency: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveredLine(ManifestDelivery):
    """One line of a `shipments.delivery-confirmed`, as pledges reads it: the manifest line's
    delivery in `unit`, the manifest's, for pledge line `line_id`."""

    delivery_event_id: str
    line_id: str
    unit: str
    recipient_id: str | None = None
    confirmed_by: dict[str, Any] | None = None
    document: dict[str, Any] | None = None


def _not_before_making(state: Pledge, day: date, name: str, what: str) -> None:
    """A date of the pledge's fulfilment (money received, a donor's figure) is no earlier than
    the day the pledge was made: ValidationFailed naming `name` otherwise."""
    made_on = state.made_at.date() if state.made_at is not None else None
    if made_on is not None and day < made_on:
        raise invalid(
            f"{name} {day.isoformat()} lies before pledge {state.pledge_id} was made"
            f" ({made_on.isoformat()}): {what} cannot date from before the pledge",
            name=name,
            reason="before the pledge",
        )


def receive_money(
    state: Pledge, command: ReceiveMoney, *, now: datetime, acting_for: str | None
) -> list[NewEvent]:
    """The recipient confirms money received on a money line. Raises NotFound, Forbidden (not
    the recipient), ValidationFailed (an in-kind line, another currency, a bad amount, a
    date before the pledge was made), Conflict
    (not committed, withdrawn, a reference recorded already, more than pledged)."""
    require_pledge(state)
    if acting_for is not None and acting_for != state.recipient_id:
        raise Forbidden(f"only the recipient, {state.recipient_id}, confirms money received")
    line = state.line(command.line_id)
    if line.kind is not LineKind.MONEY:
        raise invalid(
            f"line {line.line_id} is in kind: it is fulfilled only by deliveries that shipments"
            " reports",
            name="line_id",
            reason="in kind",
        )
    money.require_currency(command.currency, field="currency")
    if command.currency != line.currency:
        raise invalid(
            f"line {line.line_id} is in {line.currency}, not {command.currency}",
            name="currency",
            reason="another currency",
        )
    money.require_amount(command.amount, field="amount")
    occurred_at = occurred(command.occurred_at, now)
    not_before_previous_change(state, occurred_at, now)
    if command.received_on > now.date():
        raise invalid("received_on lies in the future", name="received_on", reason="in the future")
    _not_before_making(state, command.received_on, "received_on", "money received")
    if state.status in (PledgeStatus.PLEDGED, PledgeStatus.WITHDRAWN):
        raise status_conflict(
            state,
            f"pledge {state.pledge_id} is {state.status.value}: money is received only against"
            " a committed pledge",
        )
    if any(r.reference == command.reference for r in line.receipts):
        raise Conflict(f"a receipt with reference {command.reference!r} is already recorded")
    if line.received + command.amount > line.amount:
        outstanding = line.outstanding
        raise Conflict(
            f"receiving {money.format_minor(command.amount, line.currency or '')}"
            f" {line.currency} would exceed the line: only"
            f" {money.format_minor(outstanding, line.currency or '')} {line.currency} of"
            f" {line.describe()} is outstanding",
            extra={"outstanding": outstanding, "currency": line.currency},
        )
    data = ev.MoneyReceived(
        pledge_id=state.pledge_id,
        line_id=line.line_id,
        amount=command.amount,
        currency=command.currency,
        received_on=command.received_on,
        reference=command.reference,
    )
    return [ev.new(data, occurred_at=occurred_at)]


def report_figure(
    state: Pledge, command: ReportFigure, *, now: datetime, acting_for: str | None
) -> list[NewEvent]:
    """The donor's own cumulative figure. Raises NotFound, Forbidden (not the donor),
    ValidationFailed (a figure of the wrong kind, unit or currency, a date before the pledge
    was made)."""
    require_pledge(state)
    if acting_for is not None and acting_for != state.donor_id:
        raise Forbidden(f"only the donor, {state.donor_id}, reports its own figures")
    line = state.line(command.line_id)
    occurred_at = occurred(command.occurred_at, now)
    not_before_previous_change(state, occurred_at, now)
    _not_before_making(state, command.reported_on, "reported_on", "a figure reported")
    if line.kind is LineKind.MONEY:
        if command.amount is None or command.quantity is not None:
            raise invalid(
                f"line {line.line_id} is money: report an amount", name="amount", reason="required"
            )
        if command.currency != line.currency:
            raise invalid(
                f"line {line.line_id} is in {line.currency}",
                name="currency",
                reason="another currency",
            )
        money.require_amount(command.amount, field="amount", allow_zero=True)
    else:
        if command.quantity is None or command.amount is not None:
            raise invalid(
                f"line {line.line_id} is in kind: report a quantity",
                name="quantity",
                reason="required",
            )
        assert line.unit is not None
        quantities.require_quantity(command.quantity, line.unit, field="quantity", allow_zero=True)
    data = ev.DonorFigureReported(
        pledge_id=state.pledge_id,
        line_id=line.line_id,
        kind=line.kind.value,
        quantity=quantities.fmt_or_none(command.quantity),
        unit=line.unit.value if line.unit is not None else None,
        amount=command.amount,
        currency=line.currency if line.kind is LineKind.MONEY else None,
        reported_on=command.reported_on,
        note=command.note,
    )
    return [ev.new(data, occurred_at=occurred_at)]


def _in_line_unit(delivered: DeliveredLine, unit: str) -> dict[str, Decimal]:
    try:
        return {
            f: quantities.convert(getattr(delivered, f), delivered.unit, unit)
            for f in ("loaded", "received", "damaged", "short", "lost")
        }
    except ValueError as exc:
        raise UnusableDelivery(
            f"manifest line {delivered.manifest_line_id} counts {delivered.unit}; pledge line"
            f" {delivered.line_id} counts {unit}"
        ) from exc


def record_deliveries(
    state: Pledge, delivered: Sequence[DeliveredLine], *, occurred_at: datetime
) -> list[NewEvent]:
    """Count confirmed deliveries towards this pledge's in-kind lines: once per (convoy,
    manifest line), whatever else happened to the pledge meanwhile (goods that arrived did
    arrive). Returns no events when every line was counted already. Raises UnusableDelivery for
    an unknown pledge or line, a money line, or a unit that does not convert."""
    if not state.exists:
        raise UnusableDelivery(f"pledge {state.pledge_id} does not exist")
    events: list[NewEvent] = []
    touched: list[str] = []
    for item in delivered:
        current = evolve_events(state, events)
        line = next((x for x in current.lines if x.line_id == item.line_id), None)
        if line is None or line.kind is not LineKind.IN_KIND or line.unit is None:
            raise UnusableDelivery(f"pledge {state.pledge_id} has no in-kind line {item.line_id}")
        if (item.convoy_id, item.manifest_line_id) in line.delivery_keys():
            continue  # counted already: the same delivery reported again
        figures = _in_line_unit(item, line.unit.value)
        data = ev.DeliveryRecorded(
            pledge_id=state.pledge_id,
            line_id=line.line_id,
            convoy_id=item.convoy_id,
            manifest_line_id=item.manifest_line_id,
            delivery_event_id=item.delivery_event_id,
            recipient_id=item.recipient_id,
            unit=line.unit.value,
            confirmed_by=item.confirmed_by,
            document=item.document,
            **{k: quantities.fmt(v) for k, v in figures.items()},
        )
        events.append(ev.new(data, occurred_at=occurred_at))
        if line.line_id not in touched:
            touched.append(line.line_id)
    if not events or not state.committed:
        return events
    after = evolve_events(state, events)
    return events + [
        replace(line_update(after, after.line(line_id)), occurred_at=occurred_at)
        for line_id in touched
    ]
