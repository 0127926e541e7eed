"""Needs posted by recipients: decide(state, command, now) -> events; evolve.

Coverage (open, partly covered, covered) is computed from pledges and deliveries by the read
side (domain.coverage); the stream itself records only what the recipient says: the need, its
revisions, and whether it was closed or cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from services.pledges import events as ev
from services.pledges.domain import money, quantities
from services.pledges.domain.quantities import Unit
from services.pledges.domain.vocabulary import (
    Category,
    NeedKind,
    Priority,
    Serves,
    acting,
)
from shared.codec import Event
from shared.domain_checks import (
    Record,
    invalid,
    not_before_last_change,
    not_in_future,
    occurred,
    require_exists,
)
from shared.errors import Conflict, ValidationFailed
from shared.events import NewEvent

__all__ = [
    "Need",
    "NeedState",
    "NeedTerms",
    "PostNeed",
    "ReviseNeed",
    "end_need",
    "evolve_need",
    "post_need",
    "require_need",
    "revise_need",
]


class NeedState(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class NeedTerms:
    """What a recipient states of a need beside its kind, category and description: how much
    (a quantity in a unit, or an amount in a currency), how urgent, by when, a note for its own
    staff and a contact (sealed: the handler seals it). Posting a need states them; the need
    keeps them as last revised."""

    quantity: Decimal | None = None
    unit: Unit | None = None
    amount: int | None = None
    currency: str | None = None
    priority: Priority = Priority.NORMAL
    deadline: date | None = None
    internal_note: str | None = None
    contact: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Need(NeedTerms, Record):
    need_id: str
    version: int = 0
    recipient_id: str = ""
    kind: NeedKind = NeedKind.ITEM
    category: str = ""
    description: str = ""
    serves: tuple[str, ...] = ()
    state: NeedState = NeedState.ACTIVE
    correlation_id: str | None = None
    posted_at: datetime | None = None
    last_changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PostNeed(NeedTerms):
    need_id: str
    recipient_id: str
    kind: NeedKind
    category: Category
    description: str
    occurred_at: datetime | None  # None: now
    serves: tuple[Serves, ...] = ()


@dataclass(frozen=True, slots=True)
class ReviseNeed:
    """Only the fields given change; `changes` maps field -> new value."""

    changes: dict[str, Any]
    reason: str
    occurred_at: datetime | None = None  # None: now


REVISABLE = ("description", "quantity", "amount", "priority", "serves", "deadline", "internal_note")


def _check_target(
    kind: NeedKind,
    quantity: Decimal | None,
    unit: Unit | None,
    amount: int | None,
    currency: str | None,
) -> None:
    if kind is NeedKind.ITEM:
        if quantity is None or unit is None or amount is not None or currency is not None:
            raise invalid(
                "an item need states a quantity and a unit, and no amount or currency",
                name="quantity",
                reason="item need",
            )
        quantities.require_quantity(quantity, unit, field="quantity")
    else:
        if amount is None or currency is None or quantity is not None or unit is not None:
            raise invalid(
                "a money need states an amount and a currency, and no quantity or unit",
                name="amount",
                reason="money need",
            )
        money.require_currency(currency, field="currency")
        money.require_amount(amount, field="amount")


def post_need(
    state: Need, command: PostNeed, *, now: datetime, acting_for: str | None
) -> list[NewEvent]:
    """`acting_for` is the caller's organisation (None for an administrator). Raises Conflict
    (id taken), Forbidden (another organisation's need), ValidationFailed."""
    if state.exists:
        raise Conflict(f"need {state.need_id} already exists")
    acting(acting_for, command.recipient_id, "post needs")
    _check_target(command.kind, command.quantity, command.unit, command.amount, command.currency)
    occurred_at = occurred(command.occurred_at, now)
    if command.deadline is not None and command.deadline < occurred_at.date():
        raise invalid(
            "the deadline lies before the need was posted", name="deadline", reason="before posting"
        )
    data = ev.NeedPosted(
        need_id=command.need_id,
        recipient_id=command.recipient_id,
        kind=command.kind.value,
        category=command.category.value,
        description=command.description,
        quantity=quantities.fmt_or_none(command.quantity),
        unit=command.unit.value if command.unit is not None else None,
        amount=command.amount,
        currency=command.currency,
        priority=command.priority.value,
        serves=[s.value for s in command.serves],
        deadline=command.deadline,
        internal_note=command.internal_note,
        contact=command.contact,
    )
    return [ev.new(data, occurred_at=occurred_at)]


def require_need(state: Need) -> Need:
    return require_exists(state, f"need {state.need_id}")


def _require_active(state: Need, what: str) -> None:
    if state.state is not NeedState.ACTIVE:
        raise Conflict(
            f"need {state.need_id} is {state.state.value}: it cannot be {what}",
            extra={"need_state": state.state.value},
        )


def _not_before_last_change(state: Need, occurred_at: datetime, now: datetime) -> None:
    not_before_last_change(
        occurred_at, state.last_changed_at, previous="the need's previous change", now=now
    )


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return quantities.fmt(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    return value


def revise_need(
    state: Need, command: ReviseNeed, *, now: datetime, acting_for: str | None
) -> list[NewEvent]:
    """Raises NotFound, Forbidden, Conflict (closed or cancelled), ValidationFailed (a field
    that cannot be revised, such as the unit or currency, or nothing that changes)."""
    require_need(state)
    acting(acting_for, state.recipient_id, "revise needs")
    _require_active(state, "revised")
    occurred_at = occurred(command.occurred_at, now)
    _not_before_last_change(state, occurred_at, now)
    unknown = sorted(set(command.changes) - set(REVISABLE))
    if unknown:
        raise invalid(
            f"{', '.join(unknown)} cannot be revised:"
            " post a new need for another unit, currency or kind",
            name=unknown[0],
            reason="not revisable",
        )
    changes = {k: v for k, v in command.changes.items() if getattr(state, k) != v}
    if not changes:
        raise ValidationFailed("the revision changes nothing", extra={"invalid_params": []})
    quantity = changes.get("quantity", state.quantity)
    amount = changes.get("amount", state.amount)
    _check_target(state.kind, quantity, state.unit, amount, state.currency)
    deadline = changes.get("deadline")
    if deadline is not None and state.posted_at and deadline < state.posted_at.date():
        raise invalid(
            "the deadline lies before the need was posted", name="deadline", reason="before posting"
        )
    data = ev.NeedRevised(
        need_id=state.need_id,
        changes={k: _json(v) for k, v in changes.items()},
        previous={k: _json(getattr(state, k)) for k in changes},
        reason=command.reason,
    )
    return [ev.new(data, occurred_at=occurred_at)]


def end_need(
    state: Need,
    *,
    to: NeedState,
    reason: str,
    occurred_at: datetime,
    now: datetime,
    acting_for: str | None,
) -> list[NewEvent]:
    """Close (done with) or cancel (no longer wanted) an active need, with a reason."""
    require_need(state)
    acting(acting_for, state.recipient_id, "close or cancel needs")
    _require_active(state, to.value)
    not_in_future(occurred_at, now)
    _not_before_last_change(state, occurred_at, now)
    if to is NeedState.CLOSED:
        return [
            ev.new(ev.NeedClosed(need_id=state.need_id, reason=reason), occurred_at=occurred_at)
        ]
    if to is NeedState.CANCELLED:
        ended = ev.NeedCancelled(need_id=state.need_id, reason=reason)
        return [ev.new(ended, occurred_at=occurred_at)]
    raise ValueError(f"a need cannot be ended as {to.value}")


def _revised(state: Need, changes: dict[str, Any]) -> Need:
    updates: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "quantity":
            updates[key] = quantities.parse(value)
        elif key == "priority":
            updates[key] = Priority(value)
        elif key == "serves":
            updates[key] = tuple(value)
        elif key == "deadline":
            updates[key] = date.fromisoformat(value) if value else None
        else:
            updates[key] = value
    return replace(state, **updates)


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def evolve_need(state: Need, event: Event[Any]) -> Need:
    """The need after `event`. `last_changed_at` is the latest date of its changes (a history
    that another version let run out of order keeps it from moving back)."""
    changed = _later(state.last_changed_at, event.occurred_at)
    state = replace(state, version=event.stream_version, last_changed_at=changed)
    match event.payload:
        case ev.NeedPostedRead() as p:
            return replace(
                state,
                recipient_id=p.recipient_id,
                kind=NeedKind(p.kind),
                category=p.category,
                description=p.description,
                quantity=quantities.parse_or_none(p.quantity),
                unit=Unit(p.unit) if p.unit else None,
                amount=p.amount,
                currency=p.currency,
                priority=Priority(p.priority),
                serves=tuple(p.serves),
                deadline=p.deadline,
                internal_note=p.internal_note,
                contact=p.contact.model_dump(mode="json") if p.contact else None,
                correlation_id=event.metadata.correlation_id,
                posted_at=event.occurred_at,
            )
        case ev.NeedRevised() as p:
            return _revised(state, p.changes)
        case ev.NeedClosed():
            return replace(state, state=NeedState.CLOSED)
        case ev.NeedCancelled():
            return replace(state, state=NeedState.CANCELLED)
    return state
