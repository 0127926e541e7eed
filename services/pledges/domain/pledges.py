"""Pledges by donors: make, commit, amend a line, withdraw. decide(...) -> events.

Statuses follow the humanitarian reporting convention: pledged (announced, not binding) ->
committed (binding) -> partly fulfilled -> fulfilled, or withdrawn with a reason. Partly
fulfilled and fulfilled are not decided by anyone: they follow from what was received.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from services.pledges import events as ev
from services.pledges.domain import money, quantities
from services.pledges.domain.history import evolve_events
from services.pledges.domain.lines import Line, LineKind
from services.pledges.domain.state import Pledge, PledgeStatus
from services.pledges.domain.vocabulary import acting
from shared.domain_checks import invalid, not_before_last_change, not_in_future, require_exists
from shared.errors import Conflict, ValidationFailed
from shared.events import NewEvent

__all__ = [
    "amend_line",
    "commit",
    "commitment_events",
    "line_update",
    "not_before_previous_change",
    "require_pledge",
    "withdraw",
]


def require_pledge(state: Pledge) -> Pledge:
    return require_exists(state, f"pledge {state.pledge_id}")


def status_conflict(state: Pledge, detail: str) -> Conflict:
    """A refusal for the pledge's status, which the problem names (`pledge_status`)."""
    return Conflict(detail, extra={"pledge_status": state.status.value})


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
        weight_kg=quantities.fmt_or_none(line.weight_kg),
        delivered=quantities.fmt(line.delivered),
        remaining=quantities.fmt(line.remaining),
        status=status,
    )
    return ev.new(data)


def _in_kind_updates(state: Pledge, occurred_at: datetime) -> list[NewEvent]:
    return [
        replace(line_update(state, line), occurred_at=occurred_at)
        for line in state.lines
        if line.kind is LineKind.IN_KIND
    ]


def not_before_previous_change(state: Pledge, occurred_at: datetime, now: datetime) -> None:
    """A change to the pledge is dated no earlier than its previous one (made, committed,
    amended, withdrawn, money received, a donor's figure): ValidationFailed naming
    `occurred_at` otherwise (shared.domain_checks.not_before_last_change)."""
    not_before_last_change(
        occurred_at, state.last_changed_at, previous="the pledge's previous change", now=now
    )


def commitment_events(state: Pledge, occurred_at: datetime) -> list[NewEvent]:
    committed = ev.PledgeCommitted(
        pledge_id=state.pledge_id, donor_id=state.donor_id, recipient_id=state.recipient_id
    )
    events = [ev.new(committed, occurred_at=occurred_at)]
    return events + _in_kind_updates(evolve_events(state, events), occurred_at)


def commit(
    state: Pledge, *, occurred_at: datetime, now: datetime, acting_for: str | None
) -> list[NewEvent]:
    """Make a pledge binding. Raises NotFound, Forbidden (not the donor), Conflict (withdrawn,
    or committed already), ValidationFailed (a date in the future or before the pledge)."""
    require_pledge(state)
    acting(acting_for, state.donor_id, "commit pledges")
    if state.withdrawn:
        raise status_conflict(
            state,
            f"pledge {state.pledge_id} was withdrawn ({state.withdrawal_reason}): it cannot be"
            " committed; make a new pledge",
        )
    if state.committed:
        raise status_conflict(state, f"pledge {state.pledge_id} is already {state.status.value}")
    not_in_future(occurred_at, now)
    not_before_previous_change(state, occurred_at, now)
    return commitment_events(state, occurred_at)


def amend_line(
    state: Pledge,
    line_id: str,
    *,
    size: Decimal | int,
    reason: str,
    occurred_at: datetime,
    now: datetime,
    acting_for: str | None,
    carried: Decimal = Decimal(0),
) -> list[NewEvent]:
    """Change a line's quantity (in kind) or amount (money), keeping the old figure in the
    event. Raises NotFound, Forbidden, Conflict (withdrawn; below what was already received,
    or, in kind, below that and what convoys `carried` of it undelivered: goods loaded or on
    the road were given), ValidationFailed (a bad figure, or one that changes nothing)."""
    require_pledge(state)
    acting(acting_for, state.donor_id, "amend pledges")
    line = state.line(line_id)
    if state.withdrawn:
        raise Conflict(f"pledge {state.pledge_id} was withdrawn: it cannot be amended")
    not_in_future(occurred_at, now)
    not_before_previous_change(state, occurred_at, now)
    if line.kind is LineKind.MONEY:
        if not isinstance(size, int):
            raise invalid(
                f"line {line_id} is money: amend its amount", name="amount", reason="required"
            )
        money.require_amount(size, field="amount")
        floor: Decimal | int = line.received
        unchanged = size == line.amount
    else:
        if not isinstance(size, Decimal):
            raise invalid(
                f"line {line_id} is in kind: amend its quantity", name="quantity", reason="required"
            )
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
    if line.kind is LineKind.IN_KIND and carried > 0 and size < line.delivered + carried:
        raise Conflict(
            f"line {line_id} cannot go below what was confirmed"
            f" ({quantities.fmt(line.delivered)}) and what convoys carry of it, not yet"
            f" delivered ({quantities.fmt(carried)}):"
            f" {quantities.fmt(line.delivered + carried)}; unload it from a convoy first",
            extra={"confirmed": quantities.fmt(line.delivered), "carried": quantities.fmt(carried)},
        )
    if isinstance(size, Decimal):
        amended = replace(line, quantity=size, weight_kg=_rescaled(line, size))
    else:
        amended = replace(line, amount=size)
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
        weight_kg=quantities.fmt_or_none(amended.weight_kg),
        reason=reason,
    )
    events = [ev.new(data, occurred_at=occurred_at)]
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
    acting(acting_for, state.donor_id, "withdraw pledges")
    if state.status in (PledgeStatus.WITHDRAWN, PledgeStatus.FULFILLED):
        raise status_conflict(
            state, f"pledge {state.pledge_id} is {state.status.value}: there is nothing to withdraw"
        )
    not_in_future(occurred_at, now)
    not_before_previous_change(state, occurred_at, now)
    data = ev.PledgeWithdrawn(
        pledge_id=state.pledge_id, reason=reason, previous_status=state.status.value
    )
    events = [ev.new(data, occurred_at=occurred_at)]
    if state.committed:  # its lines were loadable: tell shipments they no longer are
        events += _in_kind_updates(evolve_events(state, events), occurred_at)
    return events
