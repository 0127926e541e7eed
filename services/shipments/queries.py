"""Shipments read side: convoys, their timelines and discrepancies, and the pledge lines known
to shipments. Every answer is cut to what the caller may see (access.py)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.shipments import access
from services.shipments.domain import ON_THE_ROAD, text
from shared import pagination
from shared.auth import Principal
from shared.errors import NotFound

# $1: the caller's organisation (NULL: sees all); matches any part an organisation plays
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
    return _document(caller, row)


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
    after = pagination.decode(cursor, arity=2)
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
        datetime.fromisoformat(after[0]) if after else None,
        after[1] if after else None,
        limit + 1,
    )
    items, next_cursor = pagination.page(
        rows, limit=limit, key_of=lambda r: [r["departs"].isoformat(), r["convoy_id"]]
    )
    return {"items": [summary(_document(caller, r)) for r in items], "next_cursor": next_cursor}


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
    return {"items": items, "as_of": now.isoformat()}


async def timeline(conn: asyncpg.Connection, caller: Principal, convoy_id: str) -> dict[str, Any]:
    """Every event of the convoy in the order things happened, with when each was recorded."""
    row = await conn.fetchrow(f"SELECT {_CONVOY} FROM convoys c WHERE convoy_id = $1", convoy_id)
    if row is None:
        raise NotFound(f"convoy {convoy_id} does not exist")
    parties = parties_of(row)
    access.require_read(caller, parties, convoy_id)
    personal = access.sees_personal_data(caller, parties)
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
                "data": data if personal else access.redact_data(data),
            }
        )
    return {"convoy_id": convoy_id, "entries": entries}


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
    after = pagination.decode(cursor, arity=2)
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


async def pledge_line(conn: asyncpg.Connection, pledge_id: str, line_id: str) -> dict[str, Any]:
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
