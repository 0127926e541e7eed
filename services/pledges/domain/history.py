"""Folding a pledge's events into its state: evolve(state, event) -> state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime

from services.pledges import events as ev
from services.pledges.domain import quantities
from services.pledges.domain.lines import Amendment, Delivery, Receipt, line_from_event
from services.pledges.domain.state import Pledge
from shared.events import Metadata, NewEvent, RecordedEvent

__all__ = ["evolve_events", "evolve_pledge"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def evolve_pledge(state: Pledge, event: RecordedEvent) -> Pledge:
    d = event.data
    state = replace(state, version=event.stream_version)
    kind = event.event_type
    if kind == ev.PLEDGE_MADE:
        return replace(
            state,
            donor_id=d["donor_id"],
            recipient_id=d["recipient_id"],
            partnership_id=d.get("partnership_id"),
            description=d.get("description"),
            internal_note=d.get("internal_note"),
            contact=d.get("contact"),
            lines=tuple(line_from_event(line) for line in d["lines"]),
            correlation_id=event.metadata.correlation_id,
            made_at=event.occurred_at,
            last_changed_at=event.occurred_at,
        )
    if kind == ev.PLEDGE_COMMITTED:
        return replace(
            state,
            committed=True,
            committed_at=event.occurred_at,
            last_changed_at=_later(state.last_changed_at, event.occurred_at),
        )
    if kind == ev.PLEDGE_WITHDRAWN:
        return replace(
            state,
            withdrawn=True,
            withdrawal_reason=d["reason"],
            withdrawn_at=event.occurred_at,
            last_changed_at=_later(state.last_changed_at, event.occurred_at),
        )
    if kind == ev.PLEDGE_LINE_AMENDED:
        line = state.line(d["line_id"])
        if d["kind"] == "money":
            change = Amendment(str(d["previous_amount"]), str(d["amount"]), d["reason"])
            line = replace(line, amount=int(d["amount"]))
        else:
            change = Amendment(d["previous_quantity"], d["quantity"], d["reason"])
            weight = d.get("weight_kg")
            line = replace(
                line,
                quantity=quantities.parse(d["quantity"]),
                weight_kg=quantities.parse(weight) if weight is not None else None,
            )
        line = replace(line, amendments=(*line.amendments, change))
        state = replace(state, last_changed_at=_later(state.last_changed_at, event.occurred_at))
        return state.with_line(line)
    if kind == ev.MONEY_RECEIVED:
        line = state.line(d["line_id"])
        receipt = Receipt(int(d["amount"]), date.fromisoformat(d["received_on"]), d["reference"])
        return state.with_line(replace(line, receipts=(*line.receipts, receipt)))
    if kind == ev.DONOR_FIGURE_REPORTED:
        line = state.line(d["line_id"])
        figure = d["quantity"] if d.get("quantity") is not None else str(d["amount"])
        on = date.fromisoformat(d["reported_on"])
        return state.with_line(replace(line, donor_figure=figure, donor_figure_on=on))
    if kind == ev.DELIVERY_RECORDED:
        line = state.line(d["line_id"])
        delivery = Delivery(
            convoy_id=d["convoy_id"],
            manifest_line_id=d["manifest_line_id"],
            **{
                f: quantities.parse(d[f])
                for f in ("loaded", "received", "damaged", "short", "lost")
            },
        )
        return state.with_line(replace(line, deliveries=(*line.deliveries, delivery)))
    return state


def evolve_events(state: Pledge, events: Sequence[NewEvent]) -> Pledge:
    """The state after events decided but not yet recorded (to decide what follows them)."""
    base = state.version
    for i, event in enumerate(events, start=1):
        state = evolve_pledge(
            state,
            RecordedEvent(
                event_id=event.event_id,
                stream_type=ev.STREAM_PLEDGE,
                stream_id=f"{ev.STREAM_PLEDGE}-{state.pledge_id}",
                stream_version=base + i,
                event_type=event.event_type,
                schema_version=event.schema_version,
                occurred_at=event.occurred_at or _EPOCH,
                recorded_at=event.occurred_at or _EPOCH,
                data=event.data,
                metadata=Metadata(correlation_id=state.correlation_id),
            ),
        )
    return state
