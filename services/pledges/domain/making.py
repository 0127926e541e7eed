"""Making a pledge: a donor, for itself, to a recipient; lines in kind or in money, optionally
answering the recipient's needs and under a partnership the registry announced."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.pledges import events as ev
from services.pledges.domain import money, quantities
from services.pledges.domain.history import evolve_events
from services.pledges.domain.lines import LineKind, LineTerms
from services.pledges.domain.needs import Need, NeedState
from services.pledges.domain.pledges import commitment_events
from services.pledges.domain.quantities import Unit
from services.pledges.domain.state import Pledge
from services.pledges.domain.vocabulary import NeedKind, acting
from shared.domain_checks import invalid, occurred
from shared.errors import Conflict
from shared.events import NewEvent

__all__ = ["MAX_LINES", "LineSpec", "MakePledge", "PartnershipRef", "make_pledge"]

MAX_LINES = 100


@dataclass(frozen=True, slots=True)
class PartnershipRef:
    """What the local copy of the registry knows of a partnership."""

    partnership_id: str
    organisations: tuple[str, str]
    status: str
    programme: str | None = None


@dataclass(frozen=True, slots=True)
class LineSpec(LineTerms):
    """A line as the donor pledges it: a quantity in kind, an amount in money."""

    quantity: Decimal | None = None
    amount: int | None = None


@dataclass(frozen=True, slots=True)
class MakePledge:
    pledge_id: str
    donor_id: str
    recipient_id: str
    lines: tuple[LineSpec, ...]
    occurred_at: datetime | None  # None: now
    partnership_id: str | None = None
    description: str | None = None
    internal_note: str | None = None
    contact: dict[str, Any] | None = None  # sealed (the handler seals it)
    commit: bool = False


def _check_in_kind(spec: LineSpec, f: str) -> None:
    if spec.quantity is None or spec.unit is None:
        raise invalid(
            f"{f} is in kind: give a quantity and a unit", name=f"{f}.quantity", reason="required"
        )
    if spec.amount is not None or spec.currency is not None:
        raise invalid(
            f"{f} is in kind: an amount belongs on a money line",
            name=f"{f}.amount",
            reason="in kind",
        )
    quantities.require_quantity(spec.quantity, spec.unit, field=f"{f}.quantity")
    if spec.weight_kg is not None:
        quantities.require_quantity(spec.weight_kg, Unit.KG, field=f"{f}.weight_kg")
    if (spec.value_amount is None) != (spec.value_currency is None):
        raise invalid(
            f"{f}: an estimated value needs its currency", name=f"{f}.value", reason="incomplete"
        )
    if spec.value_amount is not None and spec.value_currency is not None:
        money.require_currency(spec.value_currency, field=f"{f}.value_currency")
        money.require_amount(spec.value_amount, field=f"{f}.value_amount")


def _check_money(spec: LineSpec, f: str) -> None:
    if spec.amount is None or spec.currency is None:
        raise invalid(
            f"{f} is money: give an amount and a currency", name=f"{f}.amount", reason="required"
        )
    if spec.quantity is not None or spec.unit is not None or spec.weight_kg is not None:
        raise invalid(
            f"{f} is money: a quantity belongs in kind", name=f"{f}.quantity", reason="money"
        )
    if spec.value_amount is not None or spec.value_currency is not None:
        raise invalid(
            f"{f} is money: its amount is its value; an estimated value belongs in kind",
            name=f"{f}.estimated_value",
            reason="money",
        )
    money.require_currency(spec.currency, field=f"{f}.currency")
    money.require_amount(spec.amount, field=f"{f}.amount")


def _check_answer(
    spec: LineSpec, f: str, need: Need | None, recipient: str, occurred_at: datetime
) -> None:
    if need is None or not need.exists:
        raise invalid(
            f"need {spec.need_id} does not exist", name=f"{f}.need_id", reason="unknown need"
        )
    if need.posted_at is not None and occurred_at < need.posted_at:
        raise invalid(
            f"the pledge is dated {occurred_at.isoformat()}, before need {need.need_id} was"
            f" posted ({need.posted_at.isoformat()}): it cannot answer a need not yet posted",
            name="occurred_at",
            reason="before the need",
        )
    if need.state is not NeedState.ACTIVE:
        raise Conflict(
            f"need {need.need_id} is {need.state.value}: pledges can no longer answer it",
            extra={"need_state": need.state.value},
        )
    if need.recipient_id != recipient:
        raise invalid(
            f"need {need.need_id} belongs to {need.recipient_id}, not to {recipient}",
            name=f"{f}.need_id",
            reason="another recipient",
        )
    if spec.kind is LineKind.MONEY:
        if need.kind is not NeedKind.MONEY or need.currency != spec.currency:
            raise invalid(
                f"need {need.need_id} asks for {need.currency or 'goods'}: a {spec.currency}"
                " line cannot count towards it",
                name=f"{f}.need_id",
                reason="does not match",
            )
    elif (
        need.kind is not NeedKind.ITEM
        or need.unit is None
        or spec.unit is None
        or not quantities.comparable(need.unit, spec.unit)
    ):
        raise invalid(
            f"need {need.need_id} is counted in {need.unit or need.currency}: a line in"
            f" {spec.unit} cannot count towards it",
            name=f"{f}.need_id",
            reason="does not match",
        )
    if spec.category != need.category:
        raise invalid(
            f"need {need.need_id} asks for {need.category}: a line of {spec.category} cannot"
            " count towards it",
            name=f"{f}.category",
            reason="does not match",
        )


def make_pledge(
    state: Pledge,
    command: MakePledge,
    *,
    now: datetime,
    acting_for: str | None,
    needs: Mapping[str, Need],
    partnership: PartnershipRef | None,
) -> list[NewEvent]:
    """`needs` holds every need a line answers (as loaded); `partnership` the named one if the
    registry announced it. Raises Conflict, Forbidden (pledging as another organisation),
    ValidationFailed."""
    if state.exists:
        raise Conflict(f"pledge {state.pledge_id} already exists")
    acting(acting_for, command.donor_id, "pledge")
    if command.donor_id == command.recipient_id:
        raise invalid("a donor cannot pledge to itself", name="recipient_id", reason="the donor")
    if not command.lines or len(command.lines) > MAX_LINES:
        raise invalid(f"a pledge has 1 to {MAX_LINES} lines", name="lines", reason="1 to 100")
    occurred_at = occurred(command.occurred_at, now)
    seen: set[str] = set()
    for i, spec in enumerate(command.lines):
        f = f"lines[{i}]"
        if spec.line_id in seen:
            raise invalid(
                f"line id {spec.line_id} is used twice", name=f"{f}.line_id", reason="duplicate"
            )
        seen.add(spec.line_id)
        (_check_money if spec.kind is LineKind.MONEY else _check_in_kind)(spec, f)
        if spec.need_id is not None:
            _check_answer(spec, f, needs.get(spec.need_id), command.recipient_id, occurred_at)
    if command.partnership_id is not None:
        _check_partnership(command, partnership)
    made = ev.PledgeMade(
        pledge_id=command.pledge_id,
        donor_id=command.donor_id,
        recipient_id=command.recipient_id,
        partnership_id=command.partnership_id,
        description=command.description,
        lines=[_line_event(spec) for spec in command.lines],
        internal_note=command.internal_note,
        contact=command.contact,
    )
    events = [ev.new(made, occurred_at=occurred_at)]
    if command.commit:
        pledged = evolve_events(state, events)
        events += commitment_events(pledged, occurred_at)
    return events


def _check_partnership(command: MakePledge, partnership: PartnershipRef | None) -> None:
    pid = command.partnership_id
    if partnership is None:
        raise invalid(
            f"partnership {pid} is unknown", name="partnership_id", reason="unknown partnership"
        )
    if partnership.status == "terminated":
        raise invalid(f"partnership {pid} has ended", name="partnership_id", reason="ended")
    if command.recipient_id not in partnership.organisations:
        # the aid flows to a partner: a third donor may give under the partnership (a Leeds
        # charity under the Leeds-Kharkiv twinning, to Kharkiv), not to a city outside it
        raise invalid(
            f"{command.recipient_id} is not a party to {pid}"
            f" ({' and '.join(partnership.organisations)}): a pledge under a partnership goes"
            " to one of its parties",
            name="partnership_id",
            reason="recipient not a party",
        )


def _line_event(spec: LineSpec) -> ev.Line:
    return ev.Line(
        line_id=spec.line_id,
        kind=spec.kind.value,
        need_id=spec.need_id,
        item=spec.item,
        category=spec.category,
        quantity=quantities.fmt_or_none(spec.quantity),
        unit=spec.unit.value if spec.unit is not None else None,
        weight_kg=quantities.fmt_or_none(spec.weight_kg),
        value_amount=spec.value_amount,
        value_currency=spec.value_currency,
        amount=spec.amount,
        currency=spec.currency,
    )
