"""Need events -> the `needs` rows; their coverage kept from the pledge lines' shares."""

from __future__ import annotations

import decimal
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.pledges import domain
from services.pledges import events as ev
from shared.events import RecordedEvent
from shared.projections import Apply


def line_contribution(row: Mapping[str, Any], status: str | None = None) -> domain.Contribution:
    """A pledge line as the coverage counts it (row: the line's unit, quantity, amount,
    delivered, received and, unless given as `status`, its pledge's status)."""
    money = row["unit"] is None
    return domain.Contribution(
        pledge_status=row["status"] if status is None else status,
        size=Decimal(row["amount"]) if money else row["quantity"],
        delivered=Decimal(row["received"]) if money else row["delivered"],
        unit=row["unit"],
    )


def shares(row: Mapping[str, Any]) -> domain.Share:
    """The share a line row (or a need's sums, named alike) holds."""
    return domain.Share(row["share_pledged"], row["share_committed"], row["share_delivered"])


async def recompute_need(conn: asyncpg.Connection, need_id: str) -> None:
    """Every line's share of the need and the need's figures, from the lines (a need posted:
    once; the lines are counted as they change, projections/pledges.py)."""
    need = await conn.fetchrow("SELECT target, unit, state FROM needs WHERE need_id = $1", need_id)
    if need is None:
        return
    rows = await conn.fetch(
        "SELECT l.pledge_id, l.line_id, l.unit, l.quantity, l.amount, l.delivered, l.received,"
        " p.status FROM pledge_lines l JOIN pledges p USING (pledge_id) WHERE l.need_id = $1"
        " ORDER BY l.pledge_id, l.line_id",
        need_id,
    )
    sums = domain.Share()
    parts: list[tuple[str, str, domain.Share]] = []
    for r in rows:
        part = domain.share(line_contribution(r), unit=need["unit"])
        parts.append((r["pledge_id"], r["line_id"], part))
        sums += part
    if parts:
        await conn.execute(
            "UPDATE pledge_lines l SET share_pledged = u.pledged, share_committed = u.committed,"
            " share_delivered = u.delivered"
            " FROM unnest($1::text[], $2::text[], $3::numeric[], $4::numeric[], $5::numeric[])"
            " AS u(pledge_id, line_id, pledged, committed, delivered)"
            " WHERE l.pledge_id = u.pledge_id AND l.line_id = u.line_id",
            [pledge_id for pledge_id, _, _ in parts],
            [line_id for _, line_id, _ in parts],
            [s.pledged for _, _, s in parts],
            [s.committed for _, _, s in parts],
            [s.delivered for _, _, s in parts],
        )
    await _store_figures(
        conn,
        need_id,
        domain.summarise(target=need["target"], need_state=need["state"], sums=sums),
    )


async def _store_figures(conn: asyncpg.Connection, need_id: str, cov: domain.Coverage) -> None:
    await conn.execute(
        "UPDATE needs SET pledged = $2, committed = $3, delivered = $4, gap = $5, status = $6"
        " WHERE need_id = $1",
        need_id,
        cov.pledged,
        cov.committed,
        cov.delivered,
        cov.gap,
        cov.status,
    )


async def _refigure(conn: asyncpg.Connection, need: asyncpg.Record) -> None:
    """Gap and status again from a need row's target, state and sums, where they changed."""
    cov = domain.summarise(target=need["target"], need_state=need["state"], sums=shares(need))
    if (cov.gap, cov.status) != (need["gap"], need["status"]):
        await conn.execute(
            "UPDATE needs SET gap = $2, status = $3 WHERE need_id = $1",
            need["need_id"],
            cov.gap,
            cov.status,
        )


Changes = dict[str, domain.Share]  # need id -> what its sums gain
Deltas = dict[str, list[domain.Share]]  # need id -> what its sums gain, event after event

# PostgreSQL adds numerics exactly: so do the sums kept here in its place
EXACT = decimal.Context(prec=decimal.MAX_PREC)


def lock(param: int) -> str:
    """The needs named by the array parameter $`param`, locked in need order (as every writer
    takes them) until the commit: a need's row is the one every pledge to it writes, so its
    lock is the last a pledge takes. Their sums, as `shares` reads them, and figures."""
    return (
        "SELECT need_id, target, state, gap, status, pledged AS share_pledged,"
        " committed AS share_committed, delivered AS share_delivered FROM needs"
        f" WHERE need_id = ANY(${param}::text[]) ORDER BY need_id FOR NO KEY UPDATE"
    )


def figured(need: Mapping[str, Any], deltas: Deltas) -> tuple[Any, ...]:
    """A locked need's sums, gap and status once it gained each of its deltas in turn (the
    gap and status worked out after each by domain.summarise, the one place that rule lives,
    and changed only where it gives another figure), as `store_figures` takes them."""
    sums, gap, status = shares(need), need["gap"], need["status"]
    for delta in deltas[need["need_id"]]:
        sums = domain.Share(
            EXACT.add(sums.pledged, delta.pledged),
            EXACT.add(sums.committed, delta.committed),
            EXACT.add(sums.delivered, delta.delivered),
        )
        cov = domain.summarise(target=need["target"], need_state=need["state"], sums=sums)
        if (cov.gap, cov.status) != (gap, status):
            gap, status = cov.gap, cov.status
    return (need["need_id"], sums.pledged, sums.committed, sums.delivered, gap, status)


async def store_figures(conn: asyncpg.Connection, figures: Sequence[tuple[Any, ...]]) -> None:
    """Needs' sums, gaps and statuses (`figured`), in one statement."""
    if figures:
        await conn.execute(
            "UPDATE needs n SET pledged = u.pledged, committed = u.committed,"
            " delivered = u.delivered, gap = u.gap, status = u.status"
            " FROM unnest($1::text[], $2::numeric[], $3::numeric[], $4::numeric[],"
            " $5::numeric[], $6::text[]) AS u(need_id, pledged, committed, delivered, gap, status)"
            " WHERE n.need_id = u.need_id",
            *[list(column) for column in zip(*figures, strict=True)],
        )


async def add_changes(conn: asyncpg.Connection, changes: Changes) -> None:
    """Each need's sums gain their change (those that change), in need order."""
    deltas = {need_id: [change] for need_id, change in changes.items() if change}
    locked = await conn.fetch(lock(1), sorted(deltas))
    await store_figures(conn, [figured(row, deltas) for row in locked])


# a need's row as _refigure reads it
FIGURED = (
    "need_id, target, state, gap, status, pledged AS share_pledged,"
    " committed AS share_committed, delivered AS share_delivered"
)

POST = """
INSERT INTO needs (need_id, recipient_id, kind, category, description, unit, currency,
                   target, priority, serves, deadline, state, status, gap, internal_note,
                   contact, correlation_id, posted_at, changed_at, version)
SELECT need_id, recipient_id, kind, category, description, unit, currency, target, priority,
       ARRAY(SELECT jsonb_array_elements_text(serves::jsonb)), deadline::date, 'active', 'open',
       target, internal_note, contact::jsonb, correlation_id, posted_at, posted_at, version
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::numeric[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
            $14::text[], $15::timestamptz[], $16::integer[])
     AS u(need_id, recipient_id, kind, category, description, unit, currency, target, priority,
          serves, deadline, internal_note, contact, correlation_id, posted_at, version)
ON CONFLICT (need_id) DO NOTHING
"""


def _posted(event: RecordedEvent, p: ev.NeedPostedRead) -> tuple[Any, ...]:
    """A need posted as POST inserts it (its serves and contact as JSON, its deadline as text)."""
    target = (
        domain.quantities.parse_or_none(p.quantity) if p.kind == "item" else Decimal(p.amount or 0)
    )
    return (
        p.need_id,
        p.recipient_id,
        p.kind,
        p.category,
        p.description,
        p.unit,
        p.currency,
        target,
        p.priority,
        json.dumps(p.serves),
        None if p.deadline is None else p.deadline.isoformat(),
        p.internal_note,
        json.dumps(p.contact.model_dump(mode="json") if p.contact else None),
        event.metadata.correlation_id,
        event.occurred_at,
        event.stream_version,
    )


async def _post(conn: asyncpg.Connection, needs: list[tuple[Any, ...]]) -> None:
    if needs:
        await conn.execute(POST, *[list(column) for column in zip(*needs, strict=True)])
        needs.clear()


async def need_posted(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    p = ev.decoded(event, ev.NeedPostedRead)
    await _post(conn, [_posted(event, p)])
    await recompute_need(conn, p.need_id)


def _as_posted(target: Decimal | None) -> bool:
    """A new need of this target without lines has the figures it is posted with, those
    recompute_need would give it (nothing pledged, the gap its target, exactly)."""
    return target is not None and target > 0 and len(target.as_tuple().digits) <= 28


# which of the needs named are there already, and which have lines answering them
TAKEN = """
SELECT (SELECT array_agg(need_id) FROM needs WHERE need_id = ANY($1::text[])) AS posted,
       (SELECT array_agg(DISTINCT need_id) FROM pledge_lines WHERE need_id = ANY($1::text[]))
       AS answered
"""


async def apply_batch(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    """The events in order, as their handlers apply them alone, the needs posted that are new
    and that no line answers yet (every need a rebuild posts, every need a request posts)
    inserted together, in one statement, without counting lines they do not have."""
    posted = [
        (event, ev.decoded(event, ev.NeedPostedRead))
        for event in events
        if event.event_type == ev.NEED_POSTED
    ]
    taken: set[str] = set()
    if posted:
        found = await conn.fetchrow(TAKEN, [p.need_id for _, p in posted])
        taken = {*(found["posted"] or ()), *(found["answered"] or ())}
    payloads = {id(event): p for event, p in posted}
    pending: list[tuple[Any, ...]] = []
    for event in events:
        p = payloads.get(id(event))
        if p is not None and p.need_id not in taken:
            values = _posted(event, p)
            if _as_posted(values[7]):
                taken.add(p.need_id)
                pending.append(values)
                continue
        await _post(conn, pending)  # in order: what follows may read them
        await HANDLERS[event.event_type](conn, event)
    await _post(conn, pending)


async def need_changed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    """The need at the event's version with what the event changes, in one statement (nothing
    if it was at that version already), then its gap and status from its sums."""
    payload = ev.CODEC.decode(event).payload
    assert isinstance(payload, ev.NeedRevised | ev.NeedClosed | ev.NeedCancelled)
    at = event.occurred_at
    match payload:
        case ev.NeedRevised(changes=changes) as p:
            need = await _revised(conn, p, changes, event.stream_version, at)
        case ev.NeedClosed() | ev.NeedCancelled() as p:
            need = await conn.fetchrow(
                "UPDATE needs SET version = $2, changed_at = $3, state = $4, end_reason = $5"
                f" WHERE need_id = $1 AND version < $2 RETURNING {FIGURED}",
                p.need_id,
                event.stream_version,
                at,
                "closed" if isinstance(p, ev.NeedClosed) else "cancelled",
                p.reason,
            )
    # the target or the state changed, never the unit: the sums stand
    if need is not None:
        await _refigure(conn, need)


async def _revised(
    conn: asyncpg.Connection,
    p: ev.NeedRevised,
    changes: dict[str, Any],
    version: int,
    at: datetime,
) -> asyncpg.Record | None:
    target = changes.get("quantity", changes.get("amount"))
    need: asyncpg.Record | None = await conn.fetchrow(
        f"""
        UPDATE needs SET
            version = $11,
            changed_at = $12,
            description = coalesce($2, description),
            target = coalesce($3::text::numeric, target),
            priority = coalesce($4, priority),
            serves = coalesce($5, serves),
            deadline = CASE WHEN $6 THEN $7::text::date ELSE deadline END,
            internal_note = CASE WHEN $8 THEN $9 ELSE internal_note END,
            revisions = revisions || $10::jsonb
        WHERE need_id = $1 AND version < $11
        RETURNING {FIGURED}
        """,
        p.need_id,
        changes.get("description"),
        None if target is None else str(target),
        changes.get("priority"),
        changes.get("serves"),
        "deadline" in changes,
        changes.get("deadline"),
        "internal_note" in changes,
        changes.get("internal_note"),
        json.dumps([revision(p, at)]),
        version,
        at,
    )
    return need


def revision(p: ev.NeedRevised, at: datetime) -> dict[str, Any]:
    """A revision as a need's row keeps it (and its view as of an instant shows it)."""
    return {
        "occurred_at": at.isoformat(),
        "changes": p.changes,
        "previous": p.previous,
        "reason": p.reason,
    }


HANDLERS: dict[str, Apply] = {
    ev.NEED_POSTED: need_posted,
    ev.NEED_REVISED: need_changed,
    ev.NEED_CLOSED: need_changed,
    ev.NEED_CANCELLED: need_changed,
}
