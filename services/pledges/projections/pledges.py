"""Pledge events -> `pledges`, `pledge_lines`, `receipts` and `deliveries` rows, set-based.

A batch of events (a request's, a group commit's, a page of a rebuild; one event is a batch
of one) costs three statements whatever its size: the rows it touches are read at once (the
pledges named, their lines, the units of the needs they answer), the events are applied to
them in memory in order, each exactly as it alone would change the rows (a pledge made once,
every later event guarded by the pledge's version, so replaying one changes nothing), and
what changed is written in one statement for every table, which also locks the needs whose
coverage changed, in need order; their figures are written by the last (needs.py). The rows,
how they are read and written: pledge_rows.py.

Each change to a line that answers a need adds the line's new share less its old one to that
need's coverage, once per event, as the need's figures would move event by event."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import BaseModel

from services.pledges import events as ev
from services.pledges.projections import needs
from services.pledges.projections import pledge_rows as rows
from services.pledges.projections.pledge_rows import FIGURES, TOTALS, LineRow, PledgeRow, Rows
from shared.events import RecordedEvent
from shared.projections import Apply


def _numeric(text: str | None) -> Decimal | None:
    """A quantity as PostgreSQL reads it from its text (`::text::numeric`)."""
    return None if text is None else Decimal(text)


def _json(model: Any) -> str:
    return json.dumps(model.model_dump(mode="json") if model else None)


def pledge_made(batch: Rows, event: RecordedEvent, p: ev.PledgeMadeRead) -> None:
    if p.pledge_id in batch.pledges:
        return  # made already
    at = event.occurred_at
    row = {
        "pledge_id": p.pledge_id,
        "donor_id": p.donor_id,
        "recipient_id": p.recipient_id,
        "partnership_id": p.partnership_id,
        "description": p.description,
        "internal_note": p.internal_note,
        "contact": _json(p.contact),
        "status": "pledged",
        "made_at": at,
        "committed_at": None,
        "withdrawn_at": None,
        "withdrawal_reason": None,
        "correlation_id": event.metadata.correlation_id,
        "changed_at": at,
        "version": event.stream_version,
    }
    pledge = batch.pledges[p.pledge_id] = PledgeRow(row, dirty=True)
    for ordinal, line in enumerate(p.lines):
        pledge.lines[line.line_id] = LineRow(
            {
                "pledge_id": p.pledge_id,
                "line_id": line.line_id,
                "ordinal": ordinal,
                "kind": line.kind,
                "need_id": line.need_id,
                "item": line.item,
                "category": line.category,
                "unit": line.unit,
                "quantity": _numeric(line.quantity),
                "weight_kg": _numeric(line.weight_kg),
                "value_amount": line.value_amount,
                "value_currency": line.value_currency,
                "currency": line.currency,
                "amount": line.amount,
                **NEW_LINE,
            },
            dirty=True,
        )
    batch.count(pledge)


# what a line holds before anything arrives (the columns' defaults)
NEW_LINE: Mapping[str, Any] = {
    "delivered": Decimal(0),
    "loaded": Decimal(0),
    "damaged": Decimal(0),
    "short": Decimal(0),
    "lost": Decimal(0),
    "received": 0,
    "donor_figure": None,
    "donor_figure_on": None,
    "share_pledged": Decimal(0),
    "share_committed": Decimal(0),
    "share_delivered": Decimal(0),
}


def pledge_committed(batch: Rows, event: RecordedEvent, p: ev.PledgeCommitted) -> None:
    if pledge := batch.advance(event, p.pledge_id, "committed", committed_at=event.occurred_at):
        batch.count(pledge)


def pledge_withdrawn(batch: Rows, event: RecordedEvent, p: ev.PledgeWithdrawn) -> None:
    at, reason = event.occurred_at, p.reason
    if pledge := batch.advance(
        event, p.pledge_id, "withdrawn", withdrawn_at=at, withdrawal_reason=reason
    ):
        batch.count(pledge)


def _line(pledge: PledgeRow, line_id: str) -> LineRow | None:
    line = pledge.lines.get(line_id)
    if line is not None:
        line.dirty = True
    return line


def line_amended(batch: Rows, event: RecordedEvent, p: ev.PledgeLineAmended) -> None:
    if not (pledge := batch.advance(event, p.pledge_id)):
        return
    if line := _line(pledge, p.line_id):
        in_kind = p.kind == "in_kind"
        line.amended.append(
            {
                "occurred_at": event.occurred_at.isoformat(),
                "previous": p.previous_quantity if in_kind else p.previous_amount,
                "new": p.quantity if in_kind else p.amount,
                "reason": p.reason,
            }
        )
        row = line.row
        if p.quantity is not None:
            row["quantity"] = Decimal(p.quantity)
        if p.amount is not None:
            row["amount"] = p.amount
        row["weight_kg"] = _numeric(p.weight_kg)
    batch.refigure(pledge)


def money_received(batch: Rows, event: RecordedEvent, p: ev.MoneyReceived) -> None:
    if not (pledge := batch.advance(event, p.pledge_id)):
        return
    batch.receipts.append(
        (
            event.event_id,
            p.pledge_id,
            p.line_id,
            p.amount,
            p.currency,
            p.received_on,
            p.reference,
        )
    )
    if line := _line(pledge, p.line_id):
        line.row["received"] += p.amount
    batch.refigure(pledge)


def donor_figure(batch: Rows, event: RecordedEvent, p: ev.DonorFigureReported) -> None:
    if not (pledge := batch.advance(event, p.pledge_id)):
        return
    if line := _line(pledge, p.line_id):
        line.row["donor_figure"] = p.quantity if p.quantity is not None else str(p.amount)
        line.row["donor_figure_on"] = p.reported_on


def delivery_recorded(batch: Rows, event: RecordedEvent, p: ev.DeliveryRecordedRead) -> None:
    if not (pledge := batch.advance(event, p.pledge_id)):
        return
    figures = {f: Decimal(getattr(p, f)) for f in FIGURES}
    batch.deliveries.append(
        (
            event.event_id,
            p.pledge_id,
            p.line_id,
            p.convoy_id,
            p.manifest_line_id,
            p.unit,
            *figures.values(),
            _json(p.confirmed_by),
            _json(p.document),
            event.occurred_at,
        )
    )
    if line := _line(pledge, p.line_id):
        for figure, value in figures.items():
            total = TOTALS[figure]
            line.row[total] = needs.EXACT.add(line.row[total], value)
    batch.refigure(pledge)


def line_updated(batch: Rows, event: RecordedEvent, p: ev.PledgeLineUpdated) -> None:
    batch.advance(event, p.pledge_id)  # derived from the events beside it


Step = Callable[[Rows, RecordedEvent, Any], None]
# by event type: the model its payload decodes to, and what it does to the rows
STEPS: dict[str, tuple[type[BaseModel], Step]] = {
    ev.PLEDGE_MADE: (ev.PledgeMadeRead, pledge_made),
    ev.PLEDGE_COMMITTED: (ev.PledgeCommitted, pledge_committed),
    ev.PLEDGE_WITHDRAWN: (ev.PledgeWithdrawn, pledge_withdrawn),
    ev.PLEDGE_LINE_AMENDED: (ev.PledgeLineAmended, line_amended),
    ev.MONEY_RECEIVED: (ev.MoneyReceived, money_received),
    ev.DONOR_FIGURE_REPORTED: (ev.DonorFigureReported, donor_figure),
    ev.DELIVERY_RECORDED: (ev.DeliveryRecordedRead, delivery_recorded),
    ev.PLEDGE_LINE_UPDATED: (ev.PledgeLineUpdated, line_updated),
}


async def apply_batch(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    """The events in order, each as it alone would change the rows, in three statements: a
    pledge's request, a group commit of pledges and a page of a rebuild alike."""
    steps: list[tuple[Step, RecordedEvent, Any]] = []
    pledge_ids: set[str] = set()
    need_ids: set[str] = set()
    for event in events:
        model, step = STEPS[event.event_type]
        p: Any = ev.decoded(event, model)
        steps.append((step, event, p))
        pledge_ids.add(p.pledge_id)
        if isinstance(p, ev.PledgeMadeRead):
            need_ids.update(line.need_id for line in p.lines if line.need_id is not None)
    batch = await rows.read(conn, pledge_ids, need_ids)
    for step, event, p in steps:
        step(batch, event, p)
    await rows.write(conn, batch)


async def _alone(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await apply_batch(conn, [event])


# by event type: each event alone is a batch of one (the projection hands over several)
HANDLERS: dict[str, Apply] = dict.fromkeys(STEPS, _alone)
