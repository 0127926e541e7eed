"""The pledge lines shipments knows (its copy of pledges.pledge-line-updated), as callers read
them, with what convoys hold of each (the write path's reads of them: handlers/ledger.py).
What may still be loaded from a line is its committed quantity minus what convoys hold of it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from services.shipments.domain import text
from shared.errors import NotFound
from shared.read_pages import keyset_page


def _pledge_line(row: asyncpg.Record) -> dict[str, Any]:
    quantity, taken = Decimal(row["quantity"]), Decimal(row["allocated"])
    loadable = max(quantity - taken, Decimal(0)) if row["status"] == "committed" else Decimal(0)
    return {
        "pledge_id": row["pledge_id"],
        "line_id": row["line_id"],
        "donor_id": row["donor_id"],
        "recipient_id": row["recipient_id"],
        "partnership_id": row["partnership_id"],
        "item": row["item"],
        "category": row["category"],
        "unit": row["unit"],
        "quantity": text(quantity),
        "weight_kg": text(Decimal(row["weight_kg"])) if row["weight_kg"] is not None else None,
        "delivered": text(Decimal(row["delivered"])),
        "status": row["status"],
        "allocated": text(taken),
        "loadable": text(loadable),
        "correlation_id": row["correlation_id"],
        "committed_at": row["committed_at"].isoformat() if row["committed_at"] else None,
        "updated_at": row["updated_at"].isoformat(),
    }


_LINES = """
    SELECT p.*, coalesce((SELECT sum(m.quantity) FROM manifest_lines m
                          WHERE m.pledge_id = p.pledge_id AND m.line_id = p.line_id
                            AND m.state = 'loaded'), 0) AS allocated
    FROM pledge_lines p
"""


async def pledge_lines(
    conn: asyncpg.Connection,
    *,
    donor: str | None,
    recipient: str | None,
    status: str | None,
    category: str | None,
    loadable_only: bool,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    items, next_cursor = await keyset_page(
        conn,
        f"""
        SELECT * FROM ({_LINES}) l
        WHERE ($1::text IS NULL OR l.donor_id = $1) AND ($2::text IS NULL OR l.recipient_id = $2)
          AND ($3::text IS NULL OR l.status = $3) AND ($4::text IS NULL OR l.category = $4)
          AND (NOT $5 OR (l.status = 'committed' AND l.quantity > l.allocated))
          AND ($6::text IS NULL OR (l.pledge_id, l.line_id) > ($6, $7))
        ORDER BY l.pledge_id, l.line_id LIMIT $8
        """,
        (donor, recipient, status, category, loadable_only),
        cursor=cursor,
        limit=limit,
        key=(("pledge_id", str), ("line_id", str)),
    )
    return {"items": [_pledge_line(r) for r in items], "next_cursor": next_cursor}


async def pledge_line_view(
    conn: asyncpg.Connection, pledge_id: str, line_id: str
) -> dict[str, Any]:
    """One line with what each convoy took of it (quantities only: no convoy details)."""
    row = await conn.fetchrow(
        f"SELECT * FROM ({_LINES}) l WHERE l.pledge_id = $1 AND l.line_id = $2", pledge_id, line_id
    )
    if row is None:
        raise NotFound(f"pledge line {pledge_id}/{line_id} is not known to shipments")
    allocations = await conn.fetch(
        "SELECT m.convoy_id, m.manifest_line_id, m.quantity, m.state, c.status"
        " FROM manifest_lines m JOIN convoys c USING (convoy_id)"
        " WHERE m.pledge_id = $1 AND m.line_id = $2 ORDER BY m.loaded_at, m.convoy_id",
        pledge_id,
        line_id,
    )
    return {
        **_pledge_line(row),
        "allocations": [
            {
                "convoy_id": a["convoy_id"],
                "manifest_line_id": a["manifest_line_id"],
                "quantity": text(Decimal(a["quantity"])),
                "state": a["state"],
                "convoy_status": a["status"],
            }
            for a in allocations
        ],
    }
