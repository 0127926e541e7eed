"""Pledges events -> read-model rows. Idempotent: every update is guarded by the stream version,
so replaying an event changes nothing; need coverage is recomputed from the rows it sums."""

from __future__ import annotations

import json
from decimal import Decimal

import asyncpg

from services.pledges import domain
from services.pledges import events as ev
from shared.events import RecordedEvent
from shared.projections import Projection


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


async def _need_posted(conn: asyncpg.Connection, event: RecordedEvent) -> None:
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


async def _need_changed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
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


async def _refresh_needs_of(conn: asyncpg.Connection, pledge_id: str) -> None:
    for row in await conn.fetch(
        "SELECT DISTINCT need_id FROM pledge_lines WHERE pledge_id = $1 AND need_id IS NOT NULL"
        " ORDER BY need_id",
        pledge_id,
    ):
        await refresh_need(conn, row["need_id"])


async def _pledge_made(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d = event.data
    inserted = await conn.fetchval(
        """
        INSERT INTO pledges (pledge_id, donor_id, recipient_id, partnership_id, description,
                             internal_note, contact, status, made_at, correlation_id,
                             changed_at, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, 'pledged', $8, $9, $8, $10)
        ON CONFLICT (pledge_id) DO NOTHING RETURNING true
        """,
        d["pledge_id"],
        d["donor_id"],
        d["recipient_id"],
        d.get("partnership_id"),
        d.get("description"),
        d.get("internal_note"),
        json.dumps(d.get("contact")),
        event.occurred_at,
        event.metadata.correlation_id,
        event.stream_version,
    )
    if not inserted:
        return
    for ordinal, line in enumerate(d["lines"]):
        await conn.execute(
            """
            INSERT INTO pledge_lines (pledge_id, line_id, ordinal, kind, need_id, item, category,
                                      unit, quantity, weight_kg, value_amount, value_currency,
                                      currency, amount)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::numeric, $10::text::numeric, $11,
                    $12, $13, $14)
            """,
            d["pledge_id"],
            line["line_id"],
            ordinal,
            line["kind"],
            line.get("need_id"),
            line["item"],
            line["category"],
            line.get("unit"),
            line.get("quantity"),
            line.get("weight_kg"),
            line.get("value_amount"),
            line.get("value_currency"),
            line.get("currency"),
            line.get("amount"),
        )
    await _refresh_needs_of(conn, d["pledge_id"])


async def _advance(conn: asyncpg.Connection, event: RecordedEvent, status: str | None) -> bool:
    applied = await conn.fetchval(
        "UPDATE pledges SET version = $2, changed_at = greatest(changed_at, $3),"
        " status = coalesce($4, status) WHERE pledge_id = $1 AND version < $2 RETURNING true",
        event.data["pledge_id"],
        event.stream_version,
        event.occurred_at,
        status,
    )
    return bool(applied)


async def _pledge_committed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    if await _advance(conn, event, "committed"):
        await conn.execute(
            "UPDATE pledges SET committed_at = $2 WHERE pledge_id = $1",
            event.data["pledge_id"],
            event.occurred_at,
        )
        await _refresh_needs_of(conn, event.data["pledge_id"])


async def _pledge_withdrawn(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    if await _advance(conn, event, "withdrawn"):
        await conn.execute(
            "UPDATE pledges SET withdrawn_at = $2, withdrawal_reason = $3 WHERE pledge_id = $1",
            event.data["pledge_id"],
            event.occurred_at,
            event.data["reason"],
        )
        await _refresh_needs_of(conn, event.data["pledge_id"])


async def _line_amended(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d = event.data
    if not await _advance(conn, event, d["pledge_status"]):
        return
    amendment = {
        "occurred_at": event.occurred_at.isoformat(),
        "previous": d["previous_quantity"] if d["kind"] == "in_kind" else d["previous_amount"],
        "new": d["quantity"] if d["kind"] == "in_kind" else d["amount"],
        "reason": d["reason"],
    }
    await conn.execute(
        "UPDATE pledge_lines SET quantity = coalesce($3::text::numeric, quantity),"
        " amount = coalesce($4, amount), amendments = amendments || $5::jsonb,"
        " weight_kg = $6::text::numeric WHERE pledge_id = $1 AND line_id = $2",
        d["pledge_id"],
        d["line_id"],
        d.get("quantity"),
        d.get("amount"),
        json.dumps([amendment]),
        d.get("weight_kg"),
    )
    await _refresh_needs_of(conn, d["pledge_id"])


async def _money_received(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d = event.data
    if not await _advance(conn, event, d["pledge_status"]):
        return
    await conn.execute(
        "INSERT INTO receipts (event_id, pledge_id, line_id, amount, currency, received_on,"
        " reference) VALUES ($1, $2, $3, $4, $5, $6::text::date, $7)",
        event.event_id,
        d["pledge_id"],
        d["line_id"],
        d["amount"],
        d["currency"],
        d["received_on"],
        d["reference"],
    )
    await conn.execute(
        "UPDATE pledge_lines SET received = received + $3 WHERE pledge_id = $1 AND line_id = $2",
        d["pledge_id"],
        d["line_id"],
        d["amount"],
    )
    await _refresh_needs_of(conn, d["pledge_id"])


async def _donor_figure(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d = event.data
    if not await _advance(conn, event, None):
        return
    figure = d["quantity"] if d.get("quantity") is not None else str(d["amount"])
    await conn.execute(
        "UPDATE pledge_lines SET donor_figure = $3, donor_figure_on = $4::text::date"
        " WHERE pledge_id = $1 AND line_id = $2",
        d["pledge_id"],
        d["line_id"],
        figure,
        d["reported_on"],
    )


async def _delivery_recorded(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d = event.data
    if not await _advance(conn, event, d["pledge_status"]):
        return
    figures = [d[f] for f in ("loaded", "received", "damaged", "short", "lost")]
    await conn.execute(
        """
        INSERT INTO deliveries (event_id, pledge_id, line_id, convoy_id, manifest_line_id, unit,
                                loaded, received, damaged, short, lost, confirmed_by, document,
                                occurred_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7::text::numeric, $8::text::numeric, $9::text::numeric,
                $10::text::numeric, $11::text::numeric, $12::jsonb, $13::jsonb, $14)
        """,
        event.event_id,
        d["pledge_id"],
        d["line_id"],
        d["convoy_id"],
        d["manifest_line_id"],
        d["unit"],
        *figures,
        json.dumps(d.get("confirmed_by")),
        json.dumps(d.get("document")),
        event.occurred_at,
    )
    await conn.execute(
        """
        UPDATE pledge_lines SET loaded = loaded + $3::text::numeric,
            delivered = delivered + $4::text::numeric, damaged = damaged + $5::text::numeric,
            short = short + $6::text::numeric, lost = lost + $7::text::numeric
        WHERE pledge_id = $1 AND line_id = $2
        """,
        d["pledge_id"],
        d["line_id"],
        *figures,
    )
    await _refresh_needs_of(conn, d["pledge_id"])


async def _line_updated(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await _advance(conn, event, None)  # derived from the events beside it: nothing new


NEEDS = Projection(
    name="needs",
    tables=("needs",),
    handlers={
        ev.NEED_POSTED: _need_posted,
        ev.NEED_REVISED: _need_changed,
        ev.NEED_CLOSED: _need_changed,
        ev.NEED_CANCELLED: _need_changed,
    },
)

PLEDGES = Projection(
    name="pledges",
    tables=("pledges", "pledge_lines", "receipts", "deliveries"),
    handlers={
        ev.PLEDGE_MADE: _pledge_made,
        ev.PLEDGE_COMMITTED: _pledge_committed,
        ev.PLEDGE_WITHDRAWN: _pledge_withdrawn,
        ev.PLEDGE_LINE_AMENDED: _line_amended,
        ev.MONEY_RECEIVED: _money_received,
        ev.DONOR_FIGURE_REPORTED: _donor_figure,
        ev.DELIVERY_RECORDED: _delivery_recorded,
        ev.PLEDGE_LINE_UPDATED: _line_updated,
    },
)

ALL = (NEEDS, PLEDGES)
