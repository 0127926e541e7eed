"""Need events -> the `needs` rows, and their coverage recomputed from the pledge lines."""

from __future__ import annotations

import json
from decimal import Decimal

import asyncpg

from services.pledges import domain
from services.pledges import events as ev
from shared.events import RecordedEvent


def _dec(value: str | None) -> Decimal | None:
    return domain.quantities.parse(value) if value is not None else None


async def refresh_need(conn: asyncpg.Connection, need_id: str) -> None:
    """Recompute a need's coverage from the pledge lines that answer it."""
    need = await conn.fetchrow("SELECT target, unit, state FROM needs WHERE need_id = $1", need_id)
    if need is None:
        return
    rows = await conn.fetch(
        "SELECT l.unit, l.quantity, l.amount, l.delivered, l.received, p.status"
        " FROM pledge_lines l JOIN pledges p USING (pledge_id) WHERE l.need_id = $1",
        need_id,
    )
    cov = domain.coverage(
        target=need["target"],
        unit=need["unit"],
        need_state=need["state"],
        contributions=[
            domain.Contribution(
                pledge_status=r["status"],
                size=r["quantity"] if r["unit"] else Decimal(r["amount"]),
                delivered=r["delivered"] if r["unit"] else Decimal(r["received"]),
                unit=r["unit"],
            )
            for r in rows
        ],
    )
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


async def need_posted(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d = event.data
    target = _dec(d["quantity"]) if d["kind"] == "item" else Decimal(d["amount"])
    await conn.execute(
        """
        INSERT INTO needs (need_id, recipient_id, kind, category, description, unit, currency,
                           target, priority, serves, deadline, state, status, gap, internal_note,
                           contact, correlation_id, posted_at, changed_at, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::date, 'active', 'open', $8,
                $12, $13::jsonb, $14, $15, $15, $16)
        ON CONFLICT (need_id) DO NOTHING
        """,
        d["need_id"],
        d["recipient_id"],
        d["kind"],
        d["category"],
        d["description"],
        d.get("unit"),
        d.get("currency"),
        target,
        d["priority"],
        d.get("serves", []),
        d.get("deadline"),
        d.get("internal_note"),
        json.dumps(d.get("contact")),
        event.metadata.correlation_id,
        event.occurred_at,
        event.stream_version,
    )
    await refresh_need(conn, d["need_id"])


async def need_changed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d = event.data
    applied = await conn.fetchval(
        "UPDATE needs SET version = $2, changed_at = $3 WHERE need_id = $1 AND version < $2"
        " RETURNING true",
        d["need_id"],
        event.stream_version,
        event.occurred_at,
    )
    if not applied:
        return
    if event.event_type == ev.NEED_REVISED:
        changes = d["changes"]
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
            d["need_id"],
            changes.get("description"),
            None if target is None else str(target),
            changes.get("priority"),
            changes.get("serves"),
            "deadline" in changes,
            changes.get("deadline"),
            "internal_note" in changes,
            changes.get("internal_note"),
            json.dumps(
                [
                    {
                        "occurred_at": event.occurred_at.isoformat(),
                        "changes": changes,
                        "previous": d["previous"],
                        "reason": d["reason"],
                    }
                ]
            ),
        )
    else:
        state = "closed" if event.event_type == ev.NEED_CLOSED else "cancelled"
        await conn.execute(
            "UPDATE needs SET state = $2, end_reason = $3 WHERE need_id = $1",
            d["need_id"],
            state,
            d["reason"],
        )
    await refresh_need(conn, d["need_id"])
