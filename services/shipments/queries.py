"""Shipments read side: convoys, their timelines and discrepancies (pledge lines: ledger.py).
Every answer is cut to what the caller may see (access.py), the persons it may see opened."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from services.shipments import access, views
from services.shipments.domain import ON_THE_ROAD
from shared import directory, pagination
from shared.auth import Principal
from shared.errors import NotFound

# {o}: an organisation (NULL: any); true when it plays a part in the convoy c
INVOLVES = (
    "({o}::text IS NULL OR {o} IN (c.origin_id, c.destination_id, c.carrier_id)"
    " OR {o} = ANY(c.donors))"
)


def parties_of(row: asyncpg.Record) -> access.Parties:
    return access.Parties(
        row["origin_id"], row["destination_id"], row["carrier_id"], frozenset(row["donors"])
    )


def _document(caller: Principal, row: asyncpg.Record) -> dict[str, Any]:
    return access.convoy_for(caller, json.loads(row["document"]), parties_of(row))


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "convoy_id",
        "reference",
        "status",
        "origin_id",
        "destination_id",
        "carrier_id",
        "planned_departure",
        "dispatched_at",
        "arrived_at",
        "delivered_at",
        "weight_kg",
        "position",
        "custody",
        "last_news",
        "version",
    )
    out = {k: doc[k] for k in keys}
    out["donors"] = sorted({line["donor_id"] for line in doc["manifest"]})
    out["delivery_outcome"] = doc["delivery"]["outcome"] if doc["delivery"] else None
    out["discrepancies"] = len(doc["discrepancies"])
    return out


_CONVOY = (
    "c.convoy_id, c.origin_id, c.destination_id, c.carrier_id, c.donors, c.document,"
    " c.last_news_at, c.dispatched_at, coalesce(c.dispatched_at, c.planned_departure) AS departs"
)


async def convoy(conn: asyncpg.Connection, caller: Principal, convoy_id: str) -> dict[str, Any]:
    """Raises NotFound, Forbidden (a convoy the caller plays no part in)."""
    row = await conn.fetchrow(f"SELECT {_CONVOY} FROM convoys c WHERE convoy_id = $1", convoy_id)
    if row is None:
        raise NotFound(f"convoy {convoy_id} does not exist")
    access.require_read(caller, parties_of(row), convoy_id)
    return await access.revealed(conn, await located(conn, _document(caller, row)))


async def located(conn: asyncpg.Connection, document: dict[str, Any]) -> dict[str, Any]:
    """A convoy document with its origin's and destination's locations from the directory
    (views.with_locations)."""
    ends = [document["origin_id"], document["destination_id"]]
    return views.with_locations(document, await directory.locations(conn, ends))


async def convoys(
    conn: asyncpg.Connection,
    caller: Principal,
    *,
    status: str | None = None,
    organisation: str | None = None,
    pledge_id: str | None = None,
    donor: str | None = None,
    recipient: str | None = None,
    carrier: str | None = None,
    origin: str | None = None,
    departs_from: datetime | None = None,
    departs_to: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """Newest departure first (dispatch time, else planned departure)."""
    after = pagination.decode(cursor, parts=(datetime, str))
    rows = await conn.fetch(
        f"""
        SELECT {_CONVOY} FROM convoys c
        WHERE {INVOLVES.format(o="$1")} AND {INVOLVES.format(o="$2")}
          AND ($3::text IS NULL OR c.status = $3)
          AND ($4::text IS NULL OR $4 = ANY(c.pledges))
          AND ($5::text IS NULL OR $5 = ANY(c.donors))
          AND ($6::text IS NULL OR c.destination_id = $6)
          AND ($7::text IS NULL OR c.carrier_id = $7)
          AND ($8::text IS NULL OR c.origin_id = $8)
          AND ($9::timestamptz IS NULL OR coalesce(c.dispatched_at, c.planned_departure) >= $9)
          AND ($10::timestamptz IS NULL OR coalesce(c.dispatched_at, c.planned_departure) < $10)
          AND ($11::timestamptz IS NULL
               OR (coalesce(c.dispatched_at, c.planned_departure), c.convoy_id) < ($11, $12))
        ORDER BY coalesce(c.dispatched_at, c.planned_departure) DESC, c.convoy_id DESC
        LIMIT $13
        """,
        access.visible_to(caller),
        organisation,
        status,
        pledge_id,
        donor,
        recipient,
        carrier,
        origin,
        departs_from,
        departs_to,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )
    items, next_cursor = pagination.page(
        rows, limit=limit, key_of=lambda r: [r["departs"].isoformat(), r["convoy_id"]]
    )
    found = [summary(_document(caller, r)) for r in items]
    return {"items": await access.revealed(conn, found), "next_cursor": next_cursor}


async def in_transit(
    conn: asyncpg.Connection, caller: Principal, *, organisation: str | None, now: datetime
) -> dict[str, Any]:
    """Every convoy on the road (in transit, at a border, held), stalest news first."""
    rows = await conn.fetch(
        f"""
        SELECT {_CONVOY} FROM convoys c
        WHERE c.status = ANY($3) AND {INVOLVES.format(o="$1")} AND {INVOLVES.format(o="$2")}
        ORDER BY coalesce(c.last_news_at, c.dispatched_at), c.convoy_id
        """,
        access.visible_to(caller),
        organisation,
        [s.value for s in ON_THE_ROAD],
    )
    items = []
    for row in rows:
        last = row["last_news_at"] or row["dispatched_at"]
        item = summary(_document(caller, row))
        item["age_of_last_news_seconds"] = max(0, int((now - last).total_seconds()))
        items.append(item)
    return {"items": await access.revealed(conn, items), "as_of": now.isoformat()}


async def timeline(conn: asyncpg.Connection, caller: Principal, convoy_id: str) -> dict[str, Any]:
    """Every event of the convoy in the order things happened, with when each was recorded."""
    row = await conn.fetchrow(f"SELECT {_CONVOY} FROM convoys c WHERE convoy_id = $1", convoy_id)
    if row is None:
        raise NotFound(f"convoy {convoy_id} does not exist")
    parties = parties_of(row)
    access.require_read(caller, parties, convoy_id)
    donors = access.line_donors(json.loads(row["document"]))
    rows = await conn.fetch(
        "SELECT event_id, stream_version, event_type, entry_id, occurred_at, recorded_at, data"
        " FROM convoy_timeline WHERE convoy_id = $1 ORDER BY occurred_at, stream_version",
        convoy_id,
    )
    entries = []
    for r in rows:
        data = json.loads(r["data"])
        entries.append(
            {
                "event_id": str(r["event_id"]),
                "event_type": r["event_type"],
                "entry_id": r["entry_id"],
                "occurred_at": r["occurred_at"].isoformat(),
                "recorded_at": r["recorded_at"].isoformat(),
                "version": r["stream_version"],
                "data": access.seen_by(caller, parties, data, donors=donors),
            }
        )
    return {"convoy_id": convoy_id, "entries": await access.revealed(conn, entries)}


async def discrepancies(
    conn: asyncpg.Connection, caller: Principal, *, organisation: str | None
) -> dict[str, Any]:
    """Lines that arrived damaged, short or not at all, across the caller's convoys."""
    rows = await conn.fetch(
        f"""
        SELECT {_CONVOY} FROM convoys c
        WHERE jsonb_array_length(c.document -> 'discrepancies') > 0
          AND {INVOLVES.format(o="$1")} AND {INVOLVES.format(o="$2")}
        ORDER BY coalesce(c.dispatched_at, c.planned_departure) DESC, c.convoy_id
        """,
        access.visible_to(caller),
        organisation,
    )
    items = []
    for row in rows:
        doc = _document(caller, row)
        for line in doc["discrepancies"]:
            items.append(
                {
                    "convoy_id": doc["convoy_id"],
                    "reference": doc["reference"],
                    "status": doc["status"],
                    "origin_id": doc["origin_id"],
                    "destination_id": doc["destination_id"],
                    **line,
                }
            )
    return {"items": items}
