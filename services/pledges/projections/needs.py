"""Need events -> the `needs` rows; their coverage kept from the pledge lines' shares."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.pledges import domain
from services.pledges import events as ev
from shared.events import RecordedEvent


def line_contribution(row: asyncpg.Record) -> domain.Contribution:
    """A pledge line as the coverage counts it (row: the line's unit, quantity, amount,
    delivered, received and its pledge's status)."""
    money = row["unit"] is None
    return domain.Contribution(
        pledge_status=row["status"],
        size=Decimal(row["amount"]) if money else row["quantity"],
        delivered=Decimal(row["received"]) if money else row["delivered"],
        unit=row["unit"],
    )


def _shares(row: asyncpg.Record) -> domain.Share:
    return domain.Share(row["share_pledged"], row["share_committed"], row["share_delivered"])


async def recompute_need(conn: asyncpg.Connection, need_id: str) -> None:
    """Every line's share of the need and the need's figures, from the lines (a need posted:
    once; the lines are counted as they change, `count_changes`)."""
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
    parts: dict[str, dict[str, domain.Share]] = {}
    for r in rows:
        part = domain.share(line_contribution(r), unit=need["unit"])
        parts.setdefault(r["pledge_id"], {})[r["line_id"]] = part
        sums += part
    for pledge_id, lines in parts.items():
        await _store_shares(conn, pledge_id, lines)
    await _store_figures(
        conn,
        need_id,
        domain.summarise(target=need["target"], need_state=need["state"], sums=sums),
    )


async def _store_shares(
    conn: asyncpg.Connection, pledge_id: str, parts: dict[str, domain.Share]
) -> None:
    """The shares of a pledge's lines ({line id: share}), in one statement (through the
    pledge's own lines: the need's may be many)."""
    if not parts:
        return
    lines = sorted(parts)
    await conn.execute(
        "UPDATE pledge_lines l SET share_pledged = u.pledged, share_committed = u.committed,"
        " share_delivered = u.delivered"
        " FROM unnest($2::text[], $3::numeric[], $4::numeric[], $5::numeric[])"
        " AS u(line_id, pledged, committed, delivered)"
        " WHERE l.pledge_id = $1 AND l.line_id = u.line_id",
        pledge_id,
        lines,
        [parts[k].pledged for k in lines],
        [parts[k].committed for k in lines],
        [parts[k].delivered for k in lines],
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
    cov = domain.summarise(target=need["target"], need_state=need["state"], sums=_shares(need))
    if (cov.gap, cov.status) != (need["gap"], need["status"]):
        await conn.execute(
            "UPDATE needs SET gap = $2, status = $3 WHERE need_id = $1",
            need["need_id"],
            cov.gap,
            cov.status,
        )


# The difference a pledge makes to its need's sums ($2 pledged, $3 committed, $4 delivered); the
# gap and status after it come from domain.summarise (_refigure), the one place that rule lives.
# The need's row is the one every pledge to it writes, so these are the last statements before
# the commit: the row is held from the update to the commit and no longer.
ADD_CHANGE = """
UPDATE needs SET
    pledged = pledged + $2,
    committed = committed + $3,
    delivered = delivered + $4
WHERE need_id = $1
RETURNING need_id, target, state, gap, status, pledged AS share_pledged,
          committed AS share_committed, delivered AS share_delivered
"""


Changes = dict[str, domain.Share]  # need id -> what its sums gain


async def count_changes(
    conn: asyncpg.Connection, pledge_id: str, into: Changes | None = None
) -> None:
    """A pledge changed (made, committed, withdrawn, a line amended, money or goods arrived):
    each of its lines answering a need gets its share again, and the needs the difference,
    now or, given `into`, gathered there for `add_changes` after the batch of events.
    O(the pledge's lines), whatever the need."""
    rows = await conn.fetch(
        """
        SELECT l.line_id, l.need_id, l.unit, l.quantity, l.amount, l.delivered, l.received,
               l.share_pledged, l.share_committed, l.share_delivered, p.status,
               n.unit AS need_unit, n.need_id IS NOT NULL AS known
        FROM pledge_lines l JOIN pledges p USING (pledge_id)
        LEFT JOIN needs n ON n.need_id = l.need_id
        WHERE l.pledge_id = $1 AND l.need_id IS NOT NULL
        """,
        pledge_id,
    )
    changes: Changes = {} if into is None else into
    parts: dict[str, domain.Share] = {}
    for r in rows:
        if not r["known"]:
            continue  # a need not posted yet (never, in log order) counts its lines when it is
        part = domain.share(line_contribution(r), unit=r["need_unit"])
        change = part - _shares(r)
        if change:
            parts[r["line_id"]] = part
            changes[r["need_id"]] = changes.get(r["need_id"], domain.Share()) + change
    await _store_shares(conn, pledge_id, parts)
    if into is None:
        await add_changes(conn, changes)


async def add_changes(conn: asyncpg.Connection, changes: Changes) -> None:
    """Each need's sums gain their change, in need order (as every writer takes them)."""
    for need_id in sorted(changes):
        change = changes[need_id]
        if change:
            need = await conn.fetchrow(
                ADD_CHANGE, need_id, change.pledged, change.committed, change.delivered
            )
            if need is not None:
                await _refigure(conn, need)


async def _refigure_need(conn: asyncpg.Connection, need_id: str) -> None:
    need = await conn.fetchrow(
        "SELECT need_id, target, state, gap, status, pledged AS share_pledged,"
        " committed AS share_committed, delivered AS share_delivered"
        " FROM needs WHERE need_id = $1",
        need_id,
    )
    if need is not None:
        await _refigure(conn, need)


async def need_posted(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    p = ev.decoded(event, ev.NeedPostedRead)
    target = (
        domain.quantities.parse_or_none(p.quantity) if p.kind == "item" else Decimal(p.amount or 0)
    )
    await conn.execute(
        """
        INSERT INTO needs (need_id, recipient_id, kind, category, description, unit, currency,
                           target, priority, serves, deadline, state, status, gap, internal_note,
                           contact, correlation_id, posted_at, changed_at, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::date, 'active', 'open', $8,
                $12, $13::jsonb, $14, $15, $15, $16)
        ON CONFLICT (need_id) DO NOTHING
        """,
        p.need_id,
        p.recipient_id,
        p.kind,
        p.category,
        p.description,
        p.unit,
        p.currency,
        target,
        p.priority,
        p.serves,
        p.deadline,
        p.internal_note,
        json.dumps(p.contact.model_dump(mode="json") if p.contact else None),
        event.metadata.correlation_id,
        event.occurred_at,
        event.stream_version,
    )
    await recompute_need(conn, p.need_id)


async def need_changed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    payload = ev.CODEC.decode(event).payload
    assert isinstance(payload, ev.NeedRevised | ev.NeedClosed | ev.NeedCancelled)
    applied = await conn.fetchval(
        "UPDATE needs SET version = $2, changed_at = $3 WHERE need_id = $1 AND version < $2"
        " RETURNING true",
        payload.need_id,
        event.stream_version,
        event.occurred_at,
    )
    if not applied:
        return
    match payload:
        case ev.NeedRevised(changes=changes) as p:
            await _revised(conn, p, changes, event.occurred_at)
        case ev.NeedClosed() | ev.NeedCancelled() as p:
            await conn.execute(
                "UPDATE needs SET state = $2, end_reason = $3 WHERE need_id = $1",
                p.need_id,
                "closed" if isinstance(p, ev.NeedClosed) else "cancelled",
                p.reason,
            )
    # the target or the state changed, never the unit: the sums stand
    await _refigure_need(conn, payload.need_id)


async def _revised(
    conn: asyncpg.Connection, p: ev.NeedRevised, changes: dict[str, Any], at: datetime
) -> None:
    target = changes.get("quantity", changes.get("amount"))
    await conn.execute(
        """
        UPDATE needs SET
            description = coalesce($2, description),
            target = coalesce($3::text::numeric, target),
            priority = coalesce($4, priority),
            serves = coalesce($5, serves),
            deadline = CASE WHEN $6 THEN $7::text::date ELSE deadline END,
            internal_note = CASE WHEN $8 THEN $9 ELSE internal_note END,
            revisions = revisions || $10::jsonb
        WHERE need_id = $1
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
    )


def revision(p: ev.NeedRevised, at: datetime) -> dict[str, Any]:
    """A revision as a need's row keeps it (and its view as of an instant shows it)."""
    return {
        "occurred_at": at.isoformat(),
        "changes": p.changes,
        "previous": p.previous,
        "reason": p.reason,
    }
