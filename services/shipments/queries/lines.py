"""Lines across the caller's convoys, a page at a time: discrepancies (damaged, short, lost)
and delivered lines (as JSON, or as the HXL rows of formats/hxl.py: the rows are the same)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import asyncpg

from services.shipments import auth
from services.shipments.formats.hxl import delivery_rows
from services.shipments.queries import _CONVOY, INVOLVES, _document
from shared import pagination
from shared.auth import Principal

LineRows = Callable[[asyncpg.Record], Awaitable[list[dict[str, Any]]]]
# a convoy's lines from its row, as the caller sees them (conn, caller, row)
ConvoyLines = Callable[
    [asyncpg.Connection, Principal, asyncpg.Record], Awaitable[list[dict[str, Any]]]
]
# where a page resumes: the convoys after ($3 instant, $4 convoy id), that one too if $5
AFTER = """
    SELECT * FROM ({convoys}) d
    WHERE $3::timestamptz IS NULL OR d.at < $3
       OR (d.at = $3 AND (d.convoy_id > $4 OR ($5 AND d.convoy_id = $4)))
    ORDER BY d.at DESC, d.convoy_id
    LIMIT $6
"""


async def line_page(
    conn: asyncpg.Connection,
    caller: Principal,
    organisation: str | None,
    convoys: str,
    lines_of: LineRows,
    page: tuple[str | None, int],
) -> dict[str, Any]:
    """A page of lines of convoys (deliveries, discrepancies), keyset on (the convoy's instant,
    its id, the line's place in its manifest): the cursor names the last line given.
    `convoys` selects the convoys with such lines, `at` the instant they are ordered by
    (newest first), limited to those the caller reads ($1) and `organisation` plays a part
    in ($2); `lines_of` gives a convoy's lines as the caller sees them, in manifest order,
    each with its manifest_line_id. `page`: (cursor, limit). Answers `items` and
    `next_cursor`."""
    cursor, limit = page
    after = pagination.decode(cursor, parts=(datetime, str, str))
    at, convoy_id = (after[0], after[1]) if after else (None, None)
    resume_line = after[2] if after else None
    inclusive = after is not None
    found: list[tuple[dict[str, Any], list[str]]] = []
    statement = AFTER.format(convoys=convoys)
    while len(found) <= limit:
        batch = limit + 1
        rows = await conn.fetch(
            statement, auth.visible_to(caller), organisation, at, convoy_id, inclusive, batch
        )
        for row in rows:
            lines = await lines_of(row)
            if resume_line is not None and row["convoy_id"] == convoy_id and inclusive:
                ids = [line["manifest_line_id"] for line in lines]
                lines = lines[ids.index(resume_line) + 1 :] if resume_line in ids else []
            key = [row["at"].isoformat(), row["convoy_id"]]
            found += [(line, [*key, line["manifest_line_id"]]) for line in lines]
            if len(found) > limit:
                break
        if len(rows) < batch:
            break
        at, convoy_id, inclusive = rows[-1]["at"], rows[-1]["convoy_id"], False
    more = len(found) > limit
    return {
        "items": [line for line, _ in found[:limit]],
        "next_cursor": pagination.encode(found[limit - 1][1]) if more else None,
    }


@dataclass(frozen=True, slots=True)
class LineList:
    """A list of lines across the caller's convoys (line_page): `convoys` selects the convoys
    with such lines and the instant `at` they are ordered by; `lines_of` gives a convoy's
    lines, from its row, as the caller sees them, in manifest order."""

    convoys: str
    lines_of: ConvoyLines

    async def __call__(
        self,
        conn: asyncpg.Connection,
        caller: Principal,
        *,
        organisation: str | None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """A page of the list: `items` and `next_cursor`."""
        lines_of = partial(self.lines_of, conn, caller)
        return await line_page(conn, caller, organisation, self.convoys, lines_of, (cursor, limit))


async def _discrepant(
    conn: asyncpg.Connection, caller: Principal, row: asyncpg.Record
) -> list[dict[str, Any]]:
    doc = _document(caller, row)
    order = {line["manifest_line_id"]: i for i, line in enumerate(doc["manifest"])}
    # the goods' category, as the manifest line gives it (the deliveries' rows carry it too)
    category = {line["manifest_line_id"]: line.get("category") for line in doc["manifest"]}
    lines = sorted(doc["discrepancies"], key=lambda x: order.get(x["manifest_line_id"], -1))
    return [
        {
            "convoy_id": doc["convoy_id"],
            "reference": doc["reference"],
            "status": doc["status"],
            "origin_id": doc["origin_id"],
            "destination_id": doc["destination_id"],
            "category": category.get(line["manifest_line_id"]),
            **line,
        }
        for line in lines
    ]


async def _delivered(
    conn: asyncpg.Connection, caller: Principal, row: asyncpg.Record
) -> list[dict[str, Any]]:
    return delivery_rows(await auth.revealed(conn, _document(caller, row)))


# Lines that arrived damaged, short or not at all, across the caller's convoys: newest
# departure first, then by convoy id and manifest order, a page at a time.
discrepancies = LineList(
    f"""
        SELECT {_CONVOY}, coalesce(c.dispatched_at, c.planned_departure) AS at FROM convoys c
        WHERE jsonb_array_length(c.document -> 'discrepancies') > 0
          AND {INVOLVES.format(o="$1")} AND {INVOLVES.format(o="$2")}
    """,
    _discrepant,
)

# Delivered lines of the convoys the caller reads, newest delivery first, then by convoy id
# and manifest order, a page at a time.
deliveries = LineList(
    f"""
        SELECT {_CONVOY}, (c.document -> 'delivery' ->> 'occurred_at')::timestamptz AS at
        FROM convoys c
        WHERE jsonb_typeof(c.document -> 'delivery') = 'object'
          AND {INVOLVES.format(o="$1")} AND {INVOLVES.format(o="$2")}
    """,
    _delivered,
)
