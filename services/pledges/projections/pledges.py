"""Pledge events -> `pledges`, `pledge_lines`, `receipts` and `deliveries` rows; each change
to a line that answers a need adds the line's new share less its old one to that need's
coverage (projections/needs.py count_changes)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from services.pledges import events as ev
from services.pledges.projections.needs import Changes, add_changes, count_changes
from shared.events import RecordedEvent
from shared.projections import Apply


async def pledge_made(
    conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None
) -> None:
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
    await count_changes(conn, d["pledge_id"], changes)


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


async def pledge_committed(
    conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None
) -> None:
    if await _advance(conn, event, "committed"):
        await conn.execute(
            "UPDATE pledges SET committed_at = $2 WHERE pledge_id = $1",
            event.data["pledge_id"],
            event.occurred_at,
        )
        await count_changes(conn, event.data["pledge_id"], changes)


async def pledge_withdrawn(
    conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None
) -> None:
    if await _advance(conn, event, "withdrawn"):
        await conn.execute(
            "UPDATE pledges SET withdrawn_at = $2, withdrawal_reason = $3 WHERE pledge_id = $1",
            event.data["pledge_id"],
            event.occurred_at,
            event.data["reason"],
        )
        await count_changes(conn, event.data["pledge_id"], changes)


async def line_amended(
    conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None
) -> None:
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
    await count_changes(conn, d["pledge_id"], changes)


async def money_received(
    conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None
) -> None:
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
    await count_changes(conn, d["pledge_id"], changes)


async def donor_figure(conn: asyncpg.Connection, event: RecordedEvent) -> None:
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


async def delivery_recorded(
    conn: asyncpg.Connection, event: RecordedEvent, changes: Changes | None = None
) -> None:
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
    await count_changes(conn, d["pledge_id"], changes)


async def line_updated(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await _advance(conn, event, None)  # derived from the events beside it: nothing new


Counting = Callable[[asyncpg.Connection, RecordedEvent, Changes | None], Awaitable[None]]
# the events that change what a pledge's lines count towards their needs
COUNTING: dict[str, Counting] = {
    ev.PLEDGE_MADE: pledge_made,
    ev.PLEDGE_COMMITTED: pledge_committed,
    ev.PLEDGE_WITHDRAWN: pledge_withdrawn,
    ev.PLEDGE_LINE_AMENDED: line_amended,
    ev.MONEY_RECEIVED: money_received,
    ev.DELIVERY_RECORDED: delivery_recorded,
}
HANDLERS: dict[str, Apply] = {
    ev.PLEDGE_MADE: pledge_made,
    ev.PLEDGE_COMMITTED: pledge_committed,
    ev.PLEDGE_WITHDRAWN: pledge_withdrawn,
    ev.PLEDGE_LINE_AMENDED: line_amended,
    ev.MONEY_RECEIVED: money_received,
    ev.DELIVERY_RECORDED: delivery_recorded,
    ev.DONOR_FIGURE_REPORTED: donor_figure,
    ev.PLEDGE_LINE_UPDATED: line_updated,
}


async def apply_batch(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    """The events in order, as their handlers apply them, their needs' sums changed once at
    the end: a pledge's request writes its need's row (the one every pledge to that need
    writes) in its last statement, a rebuild once a need a batch."""
    changes: Changes = {}
    for event in events:
        counting = COUNTING.get(event.event_type)
        if counting is not None:
            await counting(conn, event, changes)
        else:
            await HANDLERS[event.event_type](conn, event)
    await add_changes(conn, changes)
