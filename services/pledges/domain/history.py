"""Folding a pledge's events into its state: evolve(state, event) -> state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from services.pledges import events as ev
from services.pledges.domain import quantities
from services.pledges.domain.lines import Amendment, Delivery, Receipt, line_from_event
from services.pledges.domain.state import Pledge
from shared.codec import Event
from shared.events import NewEvent

__all__ = ["evolve_events", "evolve_pledge"]


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def evolve_pledge(state: Pledge, event: Event[Any]) -> Pledge:
    state = replace(state, version=event.stream_version)
    return _apply(state, event.payload, event.occurred_at, event.metadata.correlation_id)


def evolve_events(state: Pledge, events: Sequence[NewEvent]) -> Pledge:
    """The state after events decided but not yet recorded (to decide what follows them),
    each a version further, as when they are recorded."""
    for event in events:
        payload = ev.CODEC.decode_data(event.event_type, event.schema_version, event.data)
        assert event.occurred_at is not None  # every decision dates its events
        state = replace(state, version=state.version + 1)
        state = _apply(state, payload, event.occurred_at, state.correlation_id)
    return state


def _apply(
    state: Pledge, payload: BaseModel, occurred_at: datetime, correlation_id: str | None
) -> Pledge:
    if not _has_line(state, payload):
        return state  # a change to a line the pledge lacks: one dated before it was made
    match payload:
        case ev.PledgeMadeRead() as p:
            return replace(
                state,
                donor_id=p.donor_id,
                recipient_id=p.recipient_id,
                partnership_id=p.partnership_id,
                description=p.description,
                internal_note=p.internal_note,
                contact=p.contact.model_dump(mode="json") if p.contact else None,
                lines=tuple(line_from_event(line) for line in p.lines),
                correlation_id=correlation_id,
                made_at=occurred_at,
                last_changed_at=occurred_at,
            )
        case ev.PledgeCommitted():
            return replace(
                state,
                committed=True,
                committed_at=occurred_at,
                last_changed_at=_later(state.last_changed_at, occurred_at),
            )
        case ev.PledgeWithdrawn() as p:
            return replace(
                state,
                withdrawn=True,
                withdrawal_reason=p.reason,
                withdrawn_at=occurred_at,
                last_changed_at=_later(state.last_changed_at, occurred_at),
            )
        case ev.PledgeLineAmended() as p:
            return _amended(state, p, occurred_at)
    return _line_change(state, payload, occurred_at)


def _has_line(state: Pledge, payload: BaseModel) -> bool:
    """Whether the line a line's change names is the pledge's (True for other events). An
    as-of read folds only the events dated by then: a change another version let be dated
    before the pledge was made comes without the making, and is left out."""
    line_id = getattr(payload, "line_id", None)
    return line_id is None or any(line.line_id == line_id for line in state.lines)


def _line_change(state: Pledge, payload: BaseModel, occurred_at: datetime) -> Pledge:
    """Money received, a donor's figure or a delivery counted on one of the pledge's lines.
    Receipts and figures are the pledge's changes (dated after the one before, as decided);
    deliveries carry shipments' dates and leave `last_changed_at` as it was."""
    match payload:
        case ev.MoneyReceived() as p:
            line = state.line(p.line_id)
            receipt = Receipt(p.amount, p.received_on, p.reference)
            changed = _later(state.last_changed_at, occurred_at)
            state = replace(state, last_changed_at=changed)
            return state.with_line(replace(line, receipts=(*line.receipts, receipt)))
        case ev.DonorFigureReported() as p:
            line = state.line(p.line_id)
            figure = p.quantity if p.quantity is not None else str(p.amount)
            on = p.reported_on
            changed = _later(state.last_changed_at, occurred_at)
            state = replace(state, last_changed_at=changed)
            return state.with_line(replace(line, donor_figure=figure, donor_figure_on=on))
        case ev.DeliveryRecordedRead() as p:
            line = state.line(p.line_id)
            delivery = Delivery(
                convoy_id=p.convoy_id,
                manifest_line_id=p.manifest_line_id,
                loaded=quantities.parse(p.loaded),
                received=quantities.parse(p.received),
                damaged=quantities.parse(p.damaged),
                short=quantities.parse(p.short),
                lost=quantities.parse(p.lost),
            )
            return state.with_line(replace(line, deliveries=(*line.deliveries, delivery)))
    return state


def _amended(state: Pledge, p: ev.PledgeLineAmended, occurred_at: datetime) -> Pledge:
    line = state.line(p.line_id)
    if p.kind == "money":
        change = Amendment(str(p.previous_amount), str(p.amount), p.reason)
        line = replace(line, amount=int(p.amount or 0))
    else:
        assert p.quantity is not None and p.previous_quantity is not None
        change = Amendment(p.previous_quantity, p.quantity, p.reason)
        line = replace(
            line,
            quantity=quantities.parse(p.quantity),
            weight_kg=quantities.parse_or_none(p.weight_kg),
        )
    line = replace(line, amendments=(*line.amendments, change))
    state = replace(state, last_changed_at=_later(state.last_changed_at, occurred_at))
    return state.with_line(line)
