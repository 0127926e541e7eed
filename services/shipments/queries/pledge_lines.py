"""The pledge lines shipments knows (its copy of pledges.pledge-line-updated) and the allocation
ledger: what each convoy holds of each line (manifest_lines, projected from this service's log).

What may still be loaded from a line is its committed quantity minus what convoys hold of it
(delivered and lost goods stay counted); pledges' own `delivered` is not subtracted again.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from services.shipments import domain
from services.shipments.domain import text
from shared import pagination
from shared.errors import NotFound

PLEDGE_LINE_COLUMNS = (
    "pledge_id, line_id, donor_id, recipient_id, item, category, unit, quantity, weight_kg,"
    " status, correlation_id, committed_at"
)


def pledge_line(row: asyncpg.Record | None) -> domain.PledgeLine | None:
    if row is None:
        return None
    return domain.PledgeLine(
        pledge_id=row["pledge_id"],
        line_id=row["line_id"],
        donor_id=row["donor_id"],
        recipient_id=row["recipient_id"],
        item=row["item"],
        category=row["category"],
        unit=row["unit"],
        quantity=Decimal(row["quantity"]),
        weight_kg=Decimal(row["weight_kg"]) if row["weight_kg"] is not None else None,
        status=row["status"],
        correlation_id=row["correlation_id"],
        committed_at=row["committed_at"],
    )


async def allocated(conn: asyncpg.Connection, pledge_id: str, line_id: str) -> Decimal:
    """What every convoy holds of a pledge line: loaded and not given back."""
    total = await conn.fetchval(
        "SELECT coalesce(sum(quantity), 0) FROM manifest_lines"
        " WHERE pledge_id = $1 AND line_id = $2 AND state = 'loaded'",
        pledge_id,
        line_id,
    )
    return Decimal(total)


async def lock(conn: asyncpg.Connection, pledge_id: str, line_id: str) -> domain.PledgeLine | None:
    """The line, row-locked until the transaction ends: every load of it, on any convoy,
    waits here for the one before, then sees its allocation. A lock is a write: take it only
    after reading the convoy stream (shared/event_store.py)."""
    row = await conn.fetchrow(
        f"SELECT {PLEDGE_LINE_COLUMNS} FROM pledge_lines WHERE pledge_id = $1 AND line_id = $2"
        " FOR UPDATE",
        pledge_id,
        line_id,
    )
    return pledge_line(row)


async def lines(
    conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], domain.PledgeLine]:
    """The known lines among (pledge id, line id) pairs, without locking them."""
    rows = await conn.fetch(
        f"SELECT {PLEDGE_LINE_COLUMNS} FROM pledge_lines"
        " WHERE (pledge_id, line_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["pledge_id"], r["line_id"]): line for r in rows if (line := pledge_line(r))}


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
    after = pagination.decode(cursor, parts=(str, str))
    rows = await conn.fetch(
        f"""
        SELECT * FROM ({_LINES}) l
        WHERE ($1::text IS NULL OR l.donor_id = $1) AND ($2::text IS NULL OR l.recipient_id = $2)
          AND ($3::text IS NULL OR l.status = $3) AND ($4::text IS NULL OR l.category = $4)
          AND (NOT $5 OR (l.status = 'committed' AND l.quantity > l.allocated))
          AND ($6::text IS NULL OR (l.pledge_id, l.line_id) > ($6, $7))
        ORDER BY l.pledge_id, l.line_id LIMIT $8
        """,
        donor,
        recipient,
        status,
        category,
        loadable_only,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )
    items, next_cursor = pagination.page(
        rows, limit=limit, key_of=lambda r: [r["pledge_id"], r["line_id"]]
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
