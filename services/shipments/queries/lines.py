"""Lines across the caller's convoys, a page at a time: discrepancies (damaged, short, lost)
and delivered lines (as JSON, or as the HXL rows of formats/hxl.py: the rows are the same)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

from services.shipments import auth
from services.shipments.formats.hxl import delivery_rows
from services.shipments.queries import _CONVOY, INVOLVES, _document, parties_of
from shared import pagination
from shared.auth import Principal

LineRows = Callable[[asyncpg.Record], Awaitable[list[dict[str, Any]]]]


async def line_page(
    conn: asyncpg.Connection,
    *,
    fetch: Callable[[datetime | None, str | None, bool, int], Awaitable[list[asyncpg.Record]]],
    instant_of: Callable[[asyncpg.Record], datetime],
    lines_of: LineRows,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of lines of convoys (deliveries, discrepancies), keyset on (the convoy's instant,
    its id, the line's place in its manifest): the cursor names the last line given. `fetch`
    (instant, convoy id, whether that convoy itself is included, how many) gives the convoys
    after a point, in order; `lines_of` a convoy's lines as the caller sees them, in manifest
    order, each with its manifest_line_id."""
    after = pagination.decode(cursor, parts=(datetime, str, str))
    at, convoy_id = (after[0], after[1]) if after else (None, None)
    resume_line = after[2] if after else None
    inclusive = after is not None
    found: list[tuple[dict[str, Any], list[str]]] = []
    while len(found) <= limit:
        batch = limit + 1
        rows = await fetch(at, convoy_id, inclusive, batch)
        for row in rows:
            lines = await lines_of(row)
            if resume_line is not None and row["convoy_id"] == convoy_id and inclusive:
                ids = [line["manifest_line_id"] for line in lines]
                lines = lines[ids.index(resume_line) + 1 :] if resume_line in ids else []
            key = [instant_of(row).isoformat(), row["convoy_id"]]
            found += [(line, [*key, line["manifest_line_id"]]) for line in lines]
            if len(found) > limit:
                break
        if len(rows) < batch:
            break
        at, convoy_id, inclusive = instant_of(rows[-1]), rows[-1]["convoy_id"], False
    items = [line for line, _ in found[:limit]]
    more = len(found) > limit
    return items, pagination.encode(found[limit - 1][1]) if more else None


def _departs(row: asyncpg.Record) -> datetime:
    departs: datetime = row["departs"]
    return departs


async def discrepancies(
    conn: asyncpg.Connection,
    caller: Principal,
    *,
    organisation: str | None,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Lines that arrived damaged, short or not at all, across the caller's convoys: newest
    departure first, then by convoy id and manifest order, a page at a time."""

    async def fetch(
        at: datetime | None, convoy_id: str | None, inclusive: bool, n: int
    ) -> list[asyncpg.Record]:
        return list(
            await conn.fetch(
                f"""
                SELECT {_CONVOY} FROM convoys c
                WHERE jsonb_array_length(c.document -> 'discrepancies') > 0
                  AND {INVOLVES.format(o="$1")} AND {INVOLVES.format(o="$2")}
                  AND ($3::timestamptz IS NULL
                       OR coalesce(c.dispatched_at, c.planned_departure) < $3
                       OR (coalesce(c.dispatched_at, c.planned_departure) = $3
                           AND (c.convoy_id > $4 OR ($5 AND c.convoy_id = $4))))
                ORDER BY coalesce(c.dispatched_at, c.planned_departure) DESC, c.convoy_id
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
        doc = _document(caller, row)
        order = {line["manifest_line_id"]: i for i, line in enumerate(doc["manifest"])}
        lines = sorted(doc["discrepancies"], key=lambda x: order.get(x["manifest_line_id"], -1))
        return [
            {
                "convoy_id": doc["convoy_id"],
                "reference": doc["reference"],
                "status": doc["status"],
                "origin_id": doc["origin_id"],
                "destination_id": doc["destination_id"],
                **line,
            }
            for line in lines
        ]

    items, next_cursor = await line_page(
        conn, fetch=fetch, instant_of=_departs, lines_of=lines_of, cursor=cursor, limit=limit
    )
    return {"items": items, "next_cursor": next_cursor}


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
                      AND {INVOLVES.format(o="$1")} AND {INVOLVES.format(o="$2")}
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
        document = auth.convoy_for(caller, json.loads(row["document"]), parties_of(row))
        return delivery_rows(await auth.revealed(conn, document))

    def delivered(row: asyncpg.Record) -> datetime:
        at: datetime = row["delivered"]
        return at

    items, next_cursor = await line_page(
        conn, fetch=fetch, instant_of=delivered, lines_of=lines_of, cursor=cursor, limit=limit
    )
    return {"items": items, "next_cursor": next_cursor}
