"""The rows a batch of pledge events touches (projections/pledges.py): read in one statement
(the pledges named, their lines, the units of the needs they answer), changed in memory event
by event, and written in one statement for every table, which also locks the needs whose
coverage changed, in need order; their figures are written by the last (needs.py)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.pledges import domain
from services.pledges.projections import needs
from shared.events import RecordedEvent


@dataclass(slots=True)
class LineRow:
    row: dict[str, Any]  # the pledge_lines row as it stands after the events so far
    amended: list[dict[str, Any]] = field(default_factory=list)  # amendments the batch adds
    dirty: bool = False


@dataclass(slots=True)
class PledgeRow:
    row: dict[str, Any]  # the pledges row as it stands after the events so far
    lines: dict[str, LineRow] = field(default_factory=dict)
    dirty: bool = False


@dataclass(slots=True)
class Rows:
    """The rows a batch touches, changed in memory event by event."""

    pledges: dict[str, PledgeRow]
    units: dict[str, str | None]  # the needs posted that the lines answer -> their unit
    receipts: list[tuple[Any, ...]] = field(default_factory=list)
    deliveries: list[tuple[Any, ...]] = field(default_factory=list)
    changes: needs.Deltas = field(default_factory=dict)

    def advance(
        self, event: RecordedEvent, pledge_id: str, status: str | None = None, **also: Any
    ) -> PledgeRow | None:
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

    def count(self, pledge: PledgeRow) -> None:
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

    def refigure(self, pledge: PledgeRow) -> None:
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


# a delivery's figures, and the line total each adds to
FIGURES = ("loaded", "received", "damaged", "short", "lost")
# a delivery's figures -> the line's totals they add to (`received` in good condition counts
# as delivered)
TOTALS = dict(zip(FIGURES, ("loaded", "delivered", "damaged", "short", "lost"), strict=True))


READ = """
SELECT (SELECT array_agg(p) FROM pledges p WHERE p.pledge_id = ANY($1::text[])) AS pledges,
       (SELECT array_agg(l ORDER BY l.pledge_id, l.ordinal) FROM pledge_lines l
        WHERE l.pledge_id = ANY($1::text[])) AS lines,
       (SELECT array_agg((n.need_id, n.unit)) FROM needs n
        WHERE n.need_id = ANY($2::text[] || ARRAY(SELECT need_id FROM pledge_lines
                                                  WHERE pledge_id = ANY($1::text[]))))
       AS needs
"""


async def read(
    conn: asyncpg.Connection, pledge_ids: Iterable[str], need_ids: Iterable[str]
) -> Rows:
    found = await conn.fetchrow(READ, list(pledge_ids), list(need_ids))
    pledges = {r["pledge_id"]: PledgeRow(dict(r)) for r in found["pledges"] or ()}
    for r in found["lines"] or ():
        line = dict(r)
        del line["line_key"]  # generated
        line["amendments"] = None  # never read: a batch appends its own
        pledges[r["pledge_id"]].lines[r["line_id"]] = LineRow(line)
    return Rows(pledges, dict(found["needs"] or ()))


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


async def write(conn: asyncpg.Connection, batch: Rows) -> None:
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
