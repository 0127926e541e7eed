"""Delivered lines of the convoys a caller reads, a page at a time (as JSON, or as the HXL rows
of formats/hxl.py: the rows are the same)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from services.shipments import auth, queries
from services.shipments.formats.hxl import delivery_rows
from shared.auth import Principal


async def deliveries(
    conn: asyncpg.Connection,
    caller: Principal,
    *,
    organisation: str | None,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Delivered lines of the convoys the caller reads, newest delivery first, then by convoy
    id and manifest order, a page at a time: `items` and `next_cursor`."""

    async def fetch(
        at: datetime | None, convoy_id: str | None, inclusive: bool, n: int
    ) -> list[asyncpg.Record]:
        return list(
            await conn.fetch(
                f"""
                SELECT * FROM (
                    SELECT c.convoy_id, c.origin_id, c.destination_id, c.carrier_id, c.donors,
                           c.document,
                           (c.document -> 'delivery' ->> 'occurred_at')::timestamptz AS delivered
                    FROM convoys c
                    WHERE jsonb_typeof(c.document -> 'delivery') = 'object'
                      AND {queries.INVOLVES.format(o="$1")} AND {queries.INVOLVES.format(o="$2")}
                ) d
                WHERE $3::timestamptz IS NULL OR d.delivered < $3
                   OR (d.delivered = $3 AND (d.convoy_id > $4 OR ($5 AND d.convoy_id = $4)))
                ORDER BY d.delivered DESC, d.convoy_id
                LIMIT $6
                """,
                auth.visible_to(caller),
                organisation,
                at,
                convoy_id,
                inclusive,
                n,
            )
        )

    async def lines_of(row: asyncpg.Record) -> list[dict[str, Any]]:
        document = auth.convoy_for(caller, json.loads(row["document"]), queries.parties_of(row))
        return delivery_rows(await auth.revealed(conn, document))

    def delivered(row: asyncpg.Record) -> datetime:
        at: datetime = row["delivered"]
        return at

    items, next_cursor = await queries.line_page(
        conn, fetch=fetch, instant_of=delivered, lines_of=lines_of, cursor=cursor, limit=limit
    )
    return {"items": items, "next_cursor": next_cursor}
