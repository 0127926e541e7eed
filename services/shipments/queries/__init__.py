"""Shipments read side: convoys, their manifests and timelines (lines across convoys:
lines.py; pledge lines: pledge_lines.py; the live stream: live.py). Every answer is cut to
what the caller may see (auth.py), the persons it may see opened."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from services.shipments import auth, views
from services.shipments.domain import ON_THE_ROAD
from services.shipments.handlers.repositories import CONVOYS
from shared import directory, pagination, read_states
from shared.auth import Principal
from shared.domain_checks import ascii_digits
from shared.errors import NotFound
from shared.read_pages import keyset_page

# {o}: an organisation (NULL: any); true when it plays a part in the convoy c
INVOLVES = (
    "({o}::text IS NULL OR {o} IN (c.origin_id, c.destination_id, c.carrier_id)"
    " OR {o} = ANY(c.donors))"
)


def parties_of(row: asyncpg.Record) -> auth.Parties:
    return auth.Parties(
        row["origin_id"], row["destination_id"], row["carrier_id"], frozenset(row["donors"])
    )


def _document(caller: Principal, row: asyncpg.Record) -> dict[str, Any]:
    return auth.convoy_for(caller, json.loads(row["document"]), parties_of(row))


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
    auth.require_read(caller, parties_of(row), convoy_id)
    return await auth.revealed(conn, await located(conn, _document(caller, row)))


async def convoy_as_of(
    conn: asyncpg.Connection, caller: Principal, convoy_id: str, as_of: datetime
) -> dict[str, Any]:
    """The convoy as its log stood at `as_of`, folded from the start (a snapshot holds only
    the latest state). Raises NotFound (not planned by then: the convoy did not exist, whatever
    else its log dates earlier), Forbidden."""
    state = await read_states.as_of(conn, CONVOYS, convoy_id, as_of)
    if not state.exists or state.planned_at is None:
        raise NotFound(f"convoy {convoy_id} did not exist at {as_of.isoformat()}")
    parties = auth.parties(state)
    auth.require_read(caller, parties, convoy_id)
    seen = auth.convoy_for(caller, await located(conn, views.document(state)), parties)
    return {**await auth.revealed(conn, seen), "as_of": as_of.isoformat()}


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
    items, next_cursor = await keyset_page(
        conn,
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
        (
            auth.visible_to(caller),
            organisation,
            status,
            pledge_id,
            donor,
            recipient,
            carrier,
            origin,
            departs_from,
            departs_to,
        ),
        cursor=cursor,
        limit=limit,
        key=(("departs", datetime), ("convoy_id", str)),
    )
    found = [summary(_document(caller, r)) for r in items]
    return {"items": await auth.revealed(conn, found), "next_cursor": next_cursor}


async def in_transit(
    conn: asyncpg.Connection,
    caller: Principal,
    *,
    organisation: str | None,
    now: datetime,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Convoys on the road (in transit, at a border, held), stalest news first, a page at a
    time (keyset: time of the last news, convoy id)."""
    page, next_cursor = await keyset_page(
        conn,
        f"""
        SELECT {_CONVOY}, coalesce(c.last_news_at, c.dispatched_at) AS news_at FROM convoys c
        WHERE c.status = ANY($3) AND {INVOLVES.format(o="$1")} AND {INVOLVES.format(o="$2")}
          AND ($4::timestamptz IS NULL
               OR (coalesce(c.last_news_at, c.dispatched_at), c.convoy_id) > ($4, $5))
        ORDER BY coalesce(c.last_news_at, c.dispatched_at), c.convoy_id
        LIMIT $6
        """,
        (auth.visible_to(caller), organisation, [s.value for s in ON_THE_ROAD]),
        cursor=cursor,
        limit=limit,
        key=(("news_at", datetime), ("convoy_id", str)),
    )
    items = []
    for row in page:
        last = row["news_at"]
        item = summary(_document(caller, row))
        item["age_of_last_news_seconds"] = max(0, int((now - last).total_seconds()))
        items.append(item)
    return {
        "items": await auth.revealed(conn, items),
        "as_of": now.isoformat(),
        "next_cursor": next_cursor,
    }


def _version(text: str) -> int:
    """A stream version from a timeline cursor (written as ASCII digits, at most 18: a bigint)."""
    version = ascii_digits(text, max_digits=18)
    if version is None:
        raise pagination.not_given("its version is not one")
    return version


async def manifest(
    conn: asyncpg.Connection,
    caller: Principal,
    convoy_id: str,
    *,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """The convoy's manifest lines as its view shows them to the caller, in the order they
    were loaded, a page at a time (keyset: the last line given; lines are never removed from a
    manifest, an unloaded line stays with its state)."""
    after = pagination.decode(cursor, parts=(str,))
    document = await convoy(conn, caller, convoy_id)
    lines: list[dict[str, Any]] = document["manifest"]
    start = 0
    if after:
        ids = [line["manifest_line_id"] for line in lines]
        if after[0] not in ids:
            raise pagination.not_given("it names no line of this convoy")
        start = ids.index(after[0]) + 1
    items, next_cursor = pagination.page(
        lines[start : start + limit + 1],
        limit=limit,
        key_of=lambda line: [line["manifest_line_id"]],
    )
    return {"convoy_id": convoy_id, "items": items, "next_cursor": next_cursor}


async def timeline(
    conn: asyncpg.Connection,
    caller: Principal,
    convoy_id: str,
    *,
    cursor: str | None = None,
    limit: int | None = 200,
) -> dict[str, Any]:
    """The convoy's events in the order things happened, with when each was recorded, a page
    at a time (keyset: occurred at, stream version; `limit` None: every event, for exports)."""
    after = pagination.decode(cursor, parts=(datetime, str))
    after_version = _version(after[1]) if after else None
    row = await conn.fetchrow(f"SELECT {_CONVOY} FROM convoys c WHERE convoy_id = $1", convoy_id)
    if row is None:
        raise NotFound(f"convoy {convoy_id} does not exist")
    parties = parties_of(row)
    auth.require_read(caller, parties, convoy_id)
    donors = auth.line_donors(json.loads(row["document"]))
    rows = await conn.fetch(
        "SELECT event_id, stream_version, event_type, entry_id, occurred_at, recorded_at, data"
        " FROM convoy_timeline WHERE convoy_id = $1"
        " AND ($2::timestamptz IS NULL OR (occurred_at, stream_version) > ($2, $3))"
        " ORDER BY occurred_at, stream_version LIMIT $4",
        convoy_id,
        after[0] if after else None,
        after_version,
        None if limit is None else limit + 1,
    )
    page, next_cursor = pagination.page(
        rows,
        limit=len(rows) if limit is None else limit,
        key_of=lambda r: [r["occurred_at"].isoformat(), str(r["stream_version"])],
    )
    entries = []
    for r in page:
        data = json.loads(r["data"])
        entries.append(
            {
                "event_id": str(r["event_id"]),
                "event_type": r["event_type"],
                "entry_id": r["entry_id"],
                "occurred_at": r["occurred_at"].isoformat(),
                "recorded_at": r["recorded_at"].isoformat(),
                "version": r["stream_version"],
                "data": auth.seen_by(caller, parties, data, donors=donors),
            }
        )
    return {
        "convoy_id": convoy_id,
        "entries": await auth.revealed(conn, entries),
        "next_cursor": next_cursor,
    }
