"""Pledges by donors: make, commit, amend a line, withdraw. decide(...) -> events.

Statuses follow the humanitarian reporting convention: pledged (announced, not binding) ->
committed (binding) -> partly fulfilled -> fulfilled, or withdrawn with a reason. Partly
fulfilled and fulfilled are not decided by anyone: they follow from what was received.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from services.pledges import events as ev
from services.pledges.domain import money, quantities
from services.pledges.domain.history import evolve_events
from services.pledges.domain.lines import Line, LineKind
from services.pledges.domain.needs import Need, NeedKind, NeedState, not_in_future
from services.pledges.domain.quantities import Unit, invalid
from services.pledges.domain.state import Pledge, PledgeStatus
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.events import NewEvent

__all__ = [
    "MAX_LINES",
    "LineSpec",
    "MakePledge",
    "PartnershipRef",
    "amend_line",
    "commit",
    "line_update",
    "make_pledge",
    "require_pledge",
    "withdraw",
]

MAX_LINES = 100


@dataclass(frozen=True, slots=True)
class PartnershipRef:
    """What the local copy of the registry knows of a partnership."""

    partnership_id: str
    organisations: tuple[str, str]
    status: str
    programme: str | None = None


@dataclass(frozen=True, slots=True)
class LineSpec:
    line_id: str
    kind: LineKind
    item: str
    category: str
    need_id: str | None = None
    quantity: Decimal | None = None
    unit: Unit | None = None
    weight_kg: Decimal | None = None
    value_amount: int | None = None
    value_currency: str | None = None
    amount: int | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class MakePledge:
    pledge_id: str
    donor_id: str
    recipient_id: str
    lines: tuple[LineSpec, ...]
    occurred_at: datetime
    partnership_id: str | None = None
    description: str | None = None
    internal_note: str | None = None
    contact: ev.Contact | None = None
    commit: bool = False


def require_pledge(state: Pledge) -> Pledge:
    if not state.exists:
        raise NotFound(f"pledge {state.pledge_id} does not exist")
    return state


def _acting(acting_for: str | None, organisation: str, what: str) -> None:
    if acting_for is not None and acting_for != organisation:
        raise Forbidden(f"{acting_for} may not {what} for {organisation}")


def _check_in_kind(spec: LineSpec, f: str) -> None:
    if spec.quantity is None or spec.unit is None:
        raise invalid(f"{f}.quantity", "required", f"{f} is in kind: give a quantity and a unit")
    if spec.amount is not None or spec.currency is not None:
        raise invalid(
            f"{f}.amount", "in kind", f"{f} is in kind: an amount belongs on a money line"
        )
    quantities.require_quantity(spec.quantity, spec.unit, field=f"{f}.quantity")
    if spec.weight_kg is not None:
        quantities.require_quantity(spec.weight_kg, Unit.KG, field=f"{f}.weight_kg")
    if (spec.value_amount is None) != (spec.value_currency is None):
        raise invalid(f"{f}.value", "incomplete", f"{f}: an estimated value needs its currency")
    if spec.value_amount is not None and spec.value_currency is not None:
        money.require_currency(spec.value_currency, field=f"{f}.value_currency")
        money.require_amount(spec.value_amount, field=f"{f}.value_amount")


def _check_money(spec: LineSpec, f: str) -> None:
    if spec.amount is None or spec.currency is None:
        raise invalid(f"{f}.amount", "required", f"{f} is money: give an amount and a currency")
    if spec.quantity is not None or spec.unit is not None or spec.weight_kg is not None:
        raise invalid(f"{f}.quantity", "money", f"{f} is money: a quantity belongs in kind")
    money.require_currency(spec.currency, field=f"{f}.currency")
    money.require_amount(spec.amount, field=f"{f}.amount")


def _check_answer(spec: LineSpec, f: str, need: Need | None, recipient: str) -> None:
    if need is None or not need.exists:
        raise invalid(f"{f}.need_id", "unknown need", f"need {spec.need_id} does not exist")
    if need.state is not NeedState.ACTIVE:
        raise Conflict(
            f"need {need.need_id} is {need.state.value}: pledges can no longer answer it",
            extra={"need_state": need.state.value},
        )
    if need.recipient_id != recipient:
        raise invalid(
            f"{f}.need_id",
            "another recipient",
            f"need {need.need_id} belongs to {need.recipient_id}, not to {recipient}",
        )
    if spec.kind is LineKind.MONEY:
        if need.kind is not NeedKind.MONEY or need.currency != spec.currency:
            raise invalid(
                f"{f}.need_id",
                "does not match",
                f"need {need.need_id} asks for {need.currency or 'goods'}: a {spec.currency}"
                " line cannot count towards it",
            )
    elif (
        need.kind is not NeedKind.ITEM
        or need.unit is None
        or spec.unit is None
        or not quantities.comparable(need.unit, spec.unit)
    ):
        raise invalid(
            f"{f}.need_id",
            "does not match",
            f"need {need.need_id} is counted in {need.unit or need.currency}: a line in"
            f" {spec.unit} cannot count towards it",
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
    _acting(acting_for, command.donor_id, "pledge")
    if command.donor_id == command.recipient_id:
        raise invalid("recipient_id", "the donor", "a donor cannot pledge to itself")
    if not command.lines or len(command.lines) > MAX_LINES:
        raise invalid("lines", "1 to 100", f"a pledge has 1 to {MAX_LINES} lines")
    not_in_future(command.occurred_at, now)
    seen: set[str] = set()
    for i, spec in enumerate(command.lines):
        f = f"lines[{i}]"
        if spec.line_id in seen:
            raise invalid(f"{f}.line_id", "duplicate", f"line id {spec.line_id} is used twice")
        seen.add(spec.line_id)
        (_check_money if spec.kind is LineKind.MONEY else _check_in_kind)(spec, f)
        if spec.need_id is not None:
            _check_answer(spec, f, needs.get(spec.need_id), command.recipient_id)
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
    events = [NewEvent(ev.PLEDGE_MADE, ev.payload(made), occurred_at=command.occurred_at)]
    if command.commit:
        pledged = evolve_events(state, events)
        events += _commit_events(pledged, command.occurred_at)
    return events


def _check_partnership(command: MakePledge, partnership: PartnershipRef | None) -> None:
    pid = command.partnership_id
    if partnership is None:
        raise invalid("partnership_id", "unknown partnership", f"partnership {pid} is unknown")
    if partnership.status == "terminated":
        raise invalid("partnership_id", "ended", f"partnership {pid} has ended")
    if not {command.donor_id, command.recipient_id} & set(partnership.organisations):
        raise invalid(
            "partnership_id",
            "not a party",
            f"neither {command.donor_id} nor {command.recipient_id} is a party to {pid}",
        )


def _line_event(spec: LineSpec) -> ev.Line:
    return ev.Line(
        line_id=spec.line_id,
        kind=spec.kind.value,
        need_id=spec.need_id,
        item=spec.item,
        category=spec.category,
        quantity=quantities.fmt(spec.quantity) if spec.quantity is not None else None,
        unit=spec.unit.value if spec.unit is not None else None,
        weight_kg=quantities.fmt(spec.weight_kg) if spec.weight_kg is not None else None,
        value_amount=spec.value_amount,
        value_currency=spec.value_currency,
        amount=spec.amount,
        currency=spec.currency,
    )


def line_update(state: Pledge, line: Line) -> NewEvent:
    """`pledges.pledge-line-updated` for an in-kind line of a committed pledge, as it stands."""
    assert line.unit is not None
    if state.withdrawn:
        status = "withdrawn"
    elif line.remaining == 0:
        status = "fulfilled"
    else:
        status = "committed"
    data = ev.PledgeLineUpdated(
        pledge_id=state.pledge_id,
        line_id=line.line_id,
        donor_id=state.donor_id,
        recipient_id=state.recipient_id,
        partnership_id=state.partnership_id,
        item=line.item,
        category=line.category,
        unit=line.unit.value,
        quantity=quantities.fmt(line.quantity),
        weight_kg=quantities.fmt(line.weight_kg) if line.weight_kg is not None else None,
        delivered=quantities.fmt(line.delivered),
        remaining=quantities.fmt(line.remaining),
        status=status,
    )
    return NewEvent(ev.PLEDGE_LINE_UPDATED, ev.payload(data))


def _in_kind_updates(state: Pledge, occurred_at: datetime) -> list[NewEvent]:
    return [
        replace(line_update(state, line), occurred_at=occurred_at)
        for line in state.lines
        if line.kind is LineKind.IN_KIND
    ]


def _not_before_last_change(state: Pledge, occurred_at: datetime) -> None:
    if state.last_changed_at is not None and occurred_at < state.last_changed_at:
        raise invalid(
            "occurred_at",
            "before last change",
            f"occurred_at {occurred_at.isoformat()} is before the pledge's previous change"
            f" ({state.last_changed_at.isoformat()})",
        )


def _commit_events(state: Pledge, occurred_at: datetime) -> list[NewEvent]:
    committed = ev.PledgeCommitted(
        pledge_id=state.pledge_id, donor_id=state.donor_id, recipient_id=state.recipient_id
    )
    events = [NewEvent(ev.PLEDGE_COMMITTED, ev.payload(committed), occurred_at=occurred_at)]
    return events + _in_kind_updates(evolve_events(state, events), occurred_at)


def commit(
    state: Pledge, *, occurred_at: datetime, now: datetime, acting_for: str | None
) -> list[NewEvent]:
    """Make a pledge binding. Raises NotFound, Forbidden (not the donor), Conflict (withdrawn,
    or committed already), ValidationFailed (a date in the future or before the pledge)."""
    require_pledge(state)
    _acting(acting_for, state.donor_id, "commit pledges")
    if state.withdrawn:
        raise Conflict(
            f"pledge {state.pledge_id} was withdrawn ({state.withdrawal_reason}): it cannot be"
            " committed; make a new pledge",
            extra={"pledge_status": state.status.value},
        )
    if state.committed:
        raise Conflict(
            f"pledge {state.pledge_id} is already {state.status.value}",
            extra={"pledge_status": state.status.value},
        )
    not_in_future(occurred_at, now)
    _not_before_last_change(state, occurred_at)
    return _commit_events(state, occurred_at)


def amend_line(
    state: Pledge,
    line_id: str,
    *,
    size: Decimal | int,
    reason: str,
    occurred_at: datetime,
    now: datetime,
    acting_for: str | None,
) -> list[NewEvent]:
    """Change a line's quantity (in kind) or amount (money), keeping the old figure in the
    event. Raises NotFound, Forbidden, Conflict (withdrawn; below what was already received),
    ValidationFailed (a bad figure, or one that changes nothing)."""
    require_pledge(state)
    _acting(acting_for, state.donor_id, "amend pledges")
    line = state.line(line_id)
    if state.withdrawn:
        raise Conflict(f"pledge {state.pledge_id} was withdrawn: it cannot be amended")
    not_in_future(occurred_at, now)
    _not_before_last_change(state, occurred_at)
    if line.kind is LineKind.MONEY:
        if not isinstance(size, int):
            raise invalid("amount", "required", f"line {line_id} is money: amend its amount")
        money.require_amount(size, field="amount")
        floor: Decimal | int = line.received
        unchanged = size == line.amount
    else:
        if not isinstance(size, Decimal):
            raise invalid("quantity", "required", f"line {line_id} is in kind: amend its quantity")
        assert line.unit is not None
        quantities.require_quantity(size, line.unit, field="quantity")
        floor = line.delivered
        unchanged = size == line.quantity
    if unchanged:
        raise ValidationFailed(
            f"line {line_id} is already {line.describe()}: the amendment changes nothing"
        )
    if size < floor:
        raise Conflict(
            f"line {line_id} cannot go below what the recipient already confirmed: {floor}",
            extra={"confirmed": str(floor)},
        )
    if isinstance(size, Decimal):
        amended = replace(line, quantity=size, weight_kg=_rescaled(line, size))
    else:
        amended = replace(line, amount=size)
    after = state.with_line(amended)
    data = ev.PledgeLineAmended(
        pledge_id=state.pledge_id,
        line_id=line_id,
        kind=line.kind.value,
        previous_quantity=quantities.fmt(line.quantity) if line.kind is LineKind.IN_KIND else None,
        quantity=quantities.fmt(amended.quantity) if line.kind is LineKind.IN_KIND else None,
        unit=line.unit.value if line.unit is not None else None,
        previous_amount=line.amount if line.kind is LineKind.MONEY else None,
        amount=amended.amount if line.kind is LineKind.MONEY else None,
        currency=line.currency,
        weight_kg=quantities.fmt(amended.weight_kg) if amended.weight_kg is not None else None,
        reason=reason,
        pledge_status=after.status.value,
    )
    events = [NewEvent(ev.PLEDGE_LINE_AMENDED, ev.payload(data), occurred_at=occurred_at)]
    if state.committed and line.kind is LineKind.IN_KIND:
        later = evolve_events(state, events)
        events.append(replace(line_update(later, later.line(line_id)), occurred_at=occurred_at))
    return events


def _rescaled(line: Line, quantity: Decimal) -> Decimal | None:
    """The estimated weight of the line at its new quantity, to the gram."""
    if line.weight_kg is None or line.quantity == 0:
        return line.weight_kg
    return (line.weight_kg * quantity / line.quantity).quantize(Decimal("0.001"))


def withdraw(
    state: Pledge, *, reason: str, occurred_at: datetime, now: datetime, acting_for: str | None
) -> list[NewEvent]:
    """Withdraw what remains of a pledge. Raises NotFound, Forbidden, Conflict (withdrawn or
    fulfilled already)."""
    require_pledge(state)
    _acting(acting_for, state.donor_id, "withdraw pledges")
    if state.status in (PledgeStatus.WITHDRAWN, PledgeStatus.FULFILLED):
        raise Conflict(
            f"pledge {state.pledge_id} is {state.status.value}: there is nothing to withdraw",
            extra={"pledge_status": state.status.value},
        )
    not_in_future(occurred_at, now)
    _not_before_last_change(state, occurred_at)
    data = ev.PledgeWithdrawn(
        pledge_id=state.pledge_id, reason=reason, previous_status=state.status.value
    )
    events = [NewEvent(ev.PLEDGE_WITHDRAWN, ev.payload(data), occurred_at=occurred_at)]
    if state.committed:  # its lines were loadable: tell shipments they no longer are
        events += _in_kind_updates(evolve_events(state, events), occurred_at)
    return events
