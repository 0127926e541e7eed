"""The allocation ledger as the write path reads it: the pledge lines shipments knows (its copy
of pledges.pledge-line-updated) and what each convoy holds of each line (manifest_lines,
projected from this service's log). PostgresPorts (ports.py) serve the handlers with it.

What may still be loaded from a line is its committed quantity minus what convoys hold of it
(delivered and lost goods stay counted); pledges' own `delivered` is not subtracted again.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import asyncpg

from services.shipments import domain

PLEDGE_LINE_COLUMNS = (
    "pledge_id, line_id, donor_id, recipient_id, item, category, unit, quantity, weight_kg,"
    " status, correlation_id, committed_at"
)

# a row's (pledge id, line id) among pairs given as two arrays ($1: pledge ids, $2: line ids)
AMONG = "(pledge_id, line_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"


def _pairs(keys: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(pledge id, line id) pairs as AMONG takes them."""
    return [k[0] for k in keys], [k[1] for k in keys]


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


async def allocations(
    conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Decimal]:
    """What every convoy holds of each of these lines (allocated), in one statement; a line
    no convoy holds is left out."""
    rows = await conn.fetch(
        "SELECT pledge_id, line_id, sum(quantity) AS held FROM manifest_lines"
        f" WHERE state = 'loaded' AND {AMONG} GROUP BY pledge_id, line_id",
        *_pairs(keys),
    )
    return {(r["pledge_id"], r["line_id"]): Decimal(r["held"]) for r in rows}


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
        f"SELECT {PLEDGE_LINE_COLUMNS} FROM pledge_lines WHERE {AMONG}", *_pairs(keys)
    )
    return {(r["pledge_id"], r["line_id"]): line for r in rows if (line := pledge_line(r))}
