"""Pledge events -> `pledges`, `pledge_lines`, `receipts` and `deliveries` rows, set-based.

A batch of events (a request's, a group commit's, a page of a rebuild; one event is a batch
of one) costs three statements whatever its size: the rows it touches are read at once (the
pledges named, their lines, the units of the needs they answer), the events are applied to
them in memory in order, each exactly as it alone would change the rows (a pledge made once,
every later event guarded by the pledge's version, so replaying one changes nothing), and
what changed is written in one statement for every table, which also locks the needs whose
coverage changed, in need order; their figures are written by the last (needs.py).

Each change to a line that answers a need adds the line's new share less its old one to that
need's coverage, once per event, as the need's figures would move event by event."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import BaseModel

from services.pledges import domain
from services.pledges import events as ev
from services.pledges.projections import needs
from shared.events import RecordedEvent
from shared.projections import Apply


@dataclass(slots=True)
class _Line:
    row: dict[str, Any]  # the pledge_lines row as it stands after the events so far
    amended: list[dict[str, Any]] = field(default_factory=list)  # amendments the batch adds
    dirty: bool = False


@dataclass(slots=True)
class _Pledge:
    row: dict[str, Any]  # the pledges row as it stands after the events so far
    lines: dict[str, _Line] = field(default_factory=dict)
    dirty: bool = False


@dataclass(slots=True)
class _Batch:
    """The rows a batch touches, changed in memory event by event."""

    pledges: dict[str, _Pledge]
    units: dict[str, str | None]  # the needs posted that the lines answer -> their unit
    receipts: list[tuple[Any, ...]] = field(default_factory=list)
    deliveries: list[tuple[Any, ...]] = field(default_factory=list)
    changes: needs.Deltas = field(default_factory=dict)

    def advance(
        self, event: RecordedEvent, pledge_id: str, status: str | None = None, **also: Any
    ) -> _Pledge | None:
        """The pledge at the event's version, `status` and `also` set (None: the pledge is
        not there, or was at that version already)."""
        pledge = self.pledges.get(pledge_id)
        if pledge is None or pledge.row["version"] >= event.stream_version:
            return None
        row = pledge.row
        row["version"] = event.stream_version
        row["changed_at"] = max(row["changed_at"], event.occurred_at)
        if status is not None:
            row["status"] = status
        row.update(also)
        pledge.dirty = True
        return pledge

    def count(self, pledge: _Pledge) -> None:
        """A pledge changed: each of its lines answering a posted need gets its share again,
        and the need the difference (one change per event, as add_changes adds it)."""
        event: dict[str, domain.Share] = {}
        status = pledge.row["status"]
        for line in pledge.lines.values():
            row = line.row
            need_id = row["need_id"]
            if need_id is None or need_id not in self.units:
                continue  # a need not posted yet (never, in log order) counts its lines then
            part = domain.share(needs.line_contribution(row, status), unit=self.units[need_id])
            change = part - needs.shares(row)
            if change:
                row["share_pledged"], row["share_committed"] = part.pledged, part.committed
                row["share_delivered"] = part.delivered
                line.dirty = True
                event[need_id] = event.get(need_id, domain.Share()) + change
        for need_id, change in event.items():
            if change:
                self.changes.setdefault(need_id, []).append(change)

    def refigure(self, pledge: _Pledge) -> None:
        """The pledge's status from its lines, as its state has it (domain.status_of), once
        something arrived or a line changed (the events carry no status since delivery-recorded
        3, pledge-line-amended 2 and money-received 2); then what its lines count."""
        row = pledge.row
        status = domain.status_of(
            committed=row["committed_at"] is not None,
            withdrawn=row["withdrawn_at"] is not None,
            lines=[
                domain.progress(size=r["amount"], arrived=r["received"])
                if r["kind"] == "money"
                else domain.progress(size=r["quantity"], arrived=r["delivered"])
                for r in (line.row for line in pledge.lines.values())
            ],
        )
        row["status"] = status.value
        self.count(pledge)


def _numeric(text: str | None) -> Decimal | None:
    """A quantity as PostgreSQL reads it from its text (`::text::numeric`)."""
    return None if text is None else Decimal(text)


def _json(model: Any) -> str:
    return json.dumps(model.model_dump(mode="json") if model else None)


def pledge_made(batch: _Batch, event: RecordedEvent, p: ev.PledgeMadeRead) -> None:
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
    pledge = batch.pledges[p.pledge_id] = _Pledge(row, dirty=True)
    for ordinal, line in enumerate(p.lines):
        pledge.lines[line.line_id] = _Line(
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


def pledge_committed(batch: _Batch, event: RecordedEvent, p: ev.PledgeCommitted) -> None:
    if pledge := batch.advance(event, p.pledge_id, "committed", committed_at=event.occurred_at):
        batch.count(pledge)


def pledge_withdrawn(batch: _Batch, event: RecordedEvent, p: ev.PledgeWithdrawn) -> None:
    at, reason = event.occurred_at, p.reason
    if pledge := batch.advance(
        event, p.pledge_id, "withdrawn", withdrawn_at=at, withdrawal_reason=reason
    ):
        batch.count(pledge)


def _line(pledge: _Pledge, line_id: str) -> _Line | None:
    line = pledge.lines.get(line_id)
    if line is not None:
        line.dirty = True
    return line


def line_amended(batch: _Batch, event: RecordedEvent, p: ev.PledgeLineAmended) -> None:
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


def money_received(batch: _Batch, event: RecordedEvent, p: ev.MoneyReceived) -> None:
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


def donor_figure(batch: _Batch, event: RecordedEvent, p: ev.DonorFigureReported) -> None:
    if not (pledge := batch.advance(event, p.pledge_id)):
        return
    if line := _line(pledge, p.line_id):
        line.row["donor_figure"] = p.quantity if p.quantity is not None else str(p.amount)
        line.row["donor_figure_on"] = p.reported_on


FIGURES = ("loaded", "received", "damaged", "short", "lost")
# a delivery's figures -> the line's totals they add to (`received` in good condition counts
# as delivered)
TOTALS = dict(zip(FIGURES, ("loaded", "delivered", "damaged", "short", "lost"), strict=True))


def delivery_recorded(batch: _Batch, event: RecordedEvent, p: ev.DeliveryRecordedRead) -> None:
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


def line_updated(batch: _Batch, event: RecordedEvent, p: ev.PledgeLineUpdated) -> None:
    batch.advance(event, p.pledge_id)  # derived from the events beside it


Step = Callable[[_Batch, RecordedEvent, Any], None]
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


# --- reading and writing: a statement each, whatever the batch ------------------------------

READ = """
SELECT (SELECT array_agg(p) FROM pledges p WHERE p.pledge_id = ANY($1::text[])) AS pledges,
       (SELECT array_agg(l ORDER BY l.pledge_id, l.ordinal) FROM pledge_lines l
        WHERE l.pledge_id = ANY($1::text[])) AS lines,
       (SELECT array_agg((n.need_id, n.unit)) FROM needs n
        WHERE n.need_id = ANY($2::text[] || ARRAY(SELECT need_id FROM pledge_lines
                                                  WHERE pledge_id = ANY($1::text[]))))
       AS needs
"""


async def _read(
    conn: asyncpg.Connection, pledge_ids: Iterable[str], need_ids: Iterable[str]
) -> _Batch:
    found = await conn.fetchrow(READ, list(pledge_ids), list(need_ids))
    pledges = {r["pledge_id"]: _Pledge(dict(r)) for r in found["pledges"] or ()}
    for r in found["lines"] or ():
        line = dict(r)
        del line["line_key"]  # generated
        line["amendments"] = None  # never read: a batch appends its own
        pledges[r["pledge_id"]].lines[r["line_id"]] = _Line(line)
    return _Batch(pledges, dict(found["needs"] or ()))


# column -> its type; a jsonb column travels as text
PLEDGE_COLUMNS = {
    "pledge_id": "text",
    "donor_id": "text",
    "recipient_id": "text",
    "partnership_id": "text",
    "description": "text",
    "internal_note": "text",
    "contact": "jsonb",
    "status": "text",
    "made_at": "timestamptz",
    "committed_at": "timestamptz",
    "withdrawn_at": "timestamptz",
    "withdrawal_reason": "text",
    "correlation_id": "text",
    "changed_at": "timestamptz",
    "version": "integer",
}
PLEDGE_CHANGES = ("status", "committed_at", "withdrawn_at", "withdrawal_reason", "changed_at")
LINE_COLUMNS = {
    "pledge_id": "text",
    "line_id": "text",
    "ordinal": "integer",
    "kind": "text",
    "need_id": "text",
    "item": "text",
    "category": "text",
    "unit": "text",
    "quantity": "numeric",
    "weight_kg": "numeric",
    "value_amount": "bigint",
    "value_currency": "text",
    "currency": "text",
    "amount": "bigint",
    "delivered": "numeric",
    "loaded": "numeric",
    "damaged": "numeric",
    "short": "numeric",
    "lost": "numeric",
    "received": "bigint",
    "donor_figure": "text",
    "donor_figure_on": "date",
    "share_pledged": "numeric",
    "share_committed": "numeric",
    "share_delivered": "numeric",
    "amendments": "jsonb",  # those the batch adds, appended to the line's
}
LINE_CHANGES = (
    "quantity",
    "weight_kg",
    "amount",
    *TOTALS.values(),
    "received",
    "donor_figure",
    "donor_figure_on",
    "share_pledged",
    "share_committed",
    "share_delivered",
)
RECEIPT_COLUMNS = {
    "event_id": "uuid",
    "pledge_id": "text",
    "line_id": "text",
    "amount": "bigint",
    "currency": "text",
    "received_on": "date",
    "reference": "text",
}
DELIVERY_COLUMNS = {
    "event_id": "uuid",
    "pledge_id": "text",
    "line_id": "text",
    "convoy_id": "text",
    "manifest_line_id": "text",
    "unit": "text",
    **dict.fromkeys(FIGURES, "numeric"),
    "confirmed_by": "jsonb",
    "document": "jsonb",
    "occurred_at": "timestamptz",
}


def _insert(table: str, columns: Mapping[str, str], first: int) -> str:
    """INSERT of `columns`' arrays, one a parameter from $`first` on."""
    arrays = ", ".join(
        f"${i}::{'text' if kind == 'jsonb' else kind}[]"
        for i, kind in enumerate(columns.values(), start=first)
    )
    values = ", ".join(f"{c}::jsonb" if k == "jsonb" else c for c, k in columns.items())
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values}"
        f" FROM unnest({arrays}) AS u({', '.join(columns)})"
    )


# table -> its columns and what a row already there takes from the batch's
WRITTEN: dict[str, tuple[Mapping[str, str], str]] = {
    "pledges": (
        PLEDGE_COLUMNS,
        "ON CONFLICT (pledge_id) DO UPDATE SET version = EXCLUDED.version"
        + "".join(f", {c} = EXCLUDED.{c}" for c in PLEDGE_CHANGES),
    ),
    "pledge_lines": (
        LINE_COLUMNS,
        "ON CONFLICT (pledge_id, line_id) DO UPDATE SET"
        " amendments = pledge_lines.amendments || EXCLUDED.amendments"
        + "".join(f", {c} = EXCLUDED.{c}" for c in LINE_CHANGES),
    ),
    "receipts": (RECEIPT_COLUMNS, ""),
    "deliveries": (DELIVERY_COLUMNS, ""),
}


@functools.cache
def write_statement(tables: tuple[str, ...]) -> str:
    """The rows a batch changed in `tables`, each table's columns as arrays, in one statement
    that then locks the needs to change (the last parameter), in need order, and reads them."""
    at, parts = 1, []
    for table in tables:
        columns, conflict = WRITTEN[table]
        parts.append(f"written_{table} AS ({_insert(table, columns, at)} {conflict})")
        at += len(columns)
    return f"WITH {', '.join(parts)} {needs.lock(at)}" if parts else needs.lock(at)


def _arrays(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


async def _write(conn: asyncpg.Connection, batch: _Batch) -> None:
    lines = [line for p in batch.pledges.values() for line in p.lines.values() if line.dirty]
    for line in lines:
        line.row["amendments"] = json.dumps(line.amended)
    rows: dict[str, Sequence[Sequence[Any]]] = {
        "pledges": [[p.row[c] for c in PLEDGE_COLUMNS] for p in batch.pledges.values() if p.dirty],
        "pledge_lines": [[line.row[c] for c in LINE_COLUMNS] for line in lines],
        "receipts": batch.receipts,
        "deliveries": batch.deliveries,
    }
    tables = tuple(table for table, written in rows.items() if written)
    if not (tables or batch.changes):
        return
    arrays = [array for table in tables for array in _arrays(rows[table])]
    locked = await conn.fetch(write_statement(tables), *arrays, sorted(batch.changes))
    await needs.store_figures(conn, [needs.figured(row, batch.changes) for row in locked])


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
    batch = await _read(conn, pledge_ids, need_ids)
    for step, event, p in steps:
        step(batch, event, p)
    await _write(conn, batch)


async def _alone(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await apply_batch(conn, [event])


# by event type: each event alone is a batch of one (the projection hands over several)
HANDLERS: dict[str, Apply] = dict.fromkeys(STEPS, _alone)
