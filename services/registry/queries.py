"""Registry read side: the directory and the partnership network."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.registry import domain, views
from services.registry.domain import api_keys as keys
from services.registry.handlers.common import ORGANISATIONS, PARTNERSHIPS
from shared import api_keys, pagination, read_states
from shared.errors import NotFound
from shared.read_pages import keyset_page

_ORG_COLUMNS = (
    "organisation_id, name, kind, country, region, aliases, coordinates, parent_id, contacts,"
    " version, name_folded"
)


def _organisation(row: asyncpg.Record, *, with_contacts: bool) -> dict[str, Any]:
    return views.organisation(
        organisation_id=row["organisation_id"],
        name=row["name"],
        kind=row["kind"],
        country=row["country"],
        region=row["region"],
        aliases=row["aliases"],
        coordinates=json.loads(row["coordinates"]) if row["coordinates"] else None,
        parent_id=row["parent_id"],
        version=row["version"],
        contacts=json.loads(row["contacts"]) if with_contacts else None,
    )


async def organisation_as_of(
    conn: asyncpg.Connection, organisation_id: str, as_of: datetime
) -> domain.Organisation:
    """The organisation as it stood at `as_of`, folded from its events."""
    return await read_states.as_of(conn, ORGANISATIONS, organisation_id, as_of)


async def partnership_as_of(
    conn: asyncpg.Connection, partnership_id: str, as_of: datetime
) -> domain.Partnership:
    """The partnership as it stood at `as_of`, folded from its events."""
    return await read_states.as_of(conn, PARTNERSHIPS, partnership_id, as_of)


async def organisation(
    conn: asyncpg.Connection, organisation_id: str, *, with_contacts: bool
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"SELECT {_ORG_COLUMNS} FROM organisations WHERE organisation_id = $1", organisation_id
    )
    if row is None:
        raise NotFound(f"organisation {organisation_id} does not exist")
    return _organisation(row, with_contacts=with_contacts)


async def search_organisations(
    conn: asyncpg.Connection,
    *,
    q: str | None,
    kind: str | None,
    country: str | None,
    region: str | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    """Name or any alias, case- and accent-insensitive, substring match; ordered by name."""
    pattern = (
        None
        if not q
        else "%"
        + domain.fold_name(q).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        + "%"
    )
    items, next_cursor = await keyset_page(
        conn,
        f"""
        SELECT {_ORG_COLUMNS} FROM organisations
        WHERE ($1::text IS NULL OR EXISTS (SELECT 1 FROM unnest(search_names) n
                                           WHERE n LIKE $1))
          AND ($2::text IS NULL OR kind = $2)
          AND ($3::text IS NULL OR country = $3)
          AND ($4::text IS NULL OR lower(region) = lower($4))
          AND ($5::text IS NULL OR (name_folded, organisation_id) > ($5, $6))
        ORDER BY name_folded, organisation_id LIMIT $7
        """,
        (pattern, kind, country, region),
        cursor=cursor,
        limit=limit,
        key=(("name_folded", str), ("organisation_id", str)),
    )
    return {
        "items": [_organisation(r, with_contacts=False) for r in items],
        "next_cursor": next_cursor,
    }


_PARTNERSHIP_COLUMNS = (
    "p.partnership_id, p.org_a, p.org_b, p.kind, p.programme, p.phase, p.fields, p.status,"
    " p.proposed_at, p.signed_at, p.changed_at, p.history, p.agreements, p.version"
)


def _partnership(row: asyncpg.Record) -> dict[str, Any]:
    return views.partnership(
        partnership_id=row["partnership_id"],
        organisations=[row["org_a"], row["org_b"]],
        kind=row["kind"],
        programme=row["programme"],
        phase=row["phase"],
        fields=row["fields"],
        status=row["status"],
        proposed_at=row["proposed_at"],
        signed_at=row["signed_at"],
        changed_at=row["changed_at"],
        history=json.loads(row["history"]),
        agreements=json.loads(row["agreements"]),
        version=row["version"],
    )


async def partnership(conn: asyncpg.Connection, partnership_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"SELECT {_PARTNERSHIP_COLUMNS} FROM partnerships p WHERE partnership_id = $1",
        partnership_id,
    )
    if row is None:
        raise NotFound(f"partnership {partnership_id} does not exist")
    return _partnership(row)


async def partnerships(
    conn: asyncpg.Connection,
    *,
    organisation: str | None,
    status: str | None,
    kind: str | None,
    programme: str | None,
    country: str | None,
    signed_year: int | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    """`country` matches either side; `organisation` either side too."""
    items, next_cursor = await keyset_page(
        conn,
        f"""
        SELECT {_PARTNERSHIP_COLUMNS} FROM partnerships p
        LEFT JOIN organisations a ON a.organisation_id = p.org_a
        LEFT JOIN organisations b ON b.organisation_id = p.org_b
        WHERE ($1::text IS NULL OR $1 IN (p.org_a, p.org_b))
          AND ($2::text IS NULL OR p.status = $2)
          AND ($3::text IS NULL OR p.kind = $3)
          AND ($4::text IS NULL OR lower(p.programme) = lower($4))
          AND ($5::text IS NULL OR $5 IN (a.country, b.country))
          AND ($6::int IS NULL OR extract(year FROM p.signed_at AT TIME ZONE 'UTC') = $6)
          AND ($7::text IS NULL OR p.partnership_id > $7)
        ORDER BY p.partnership_id LIMIT $8
        """,
        (organisation, status, kind, programme, country, signed_year),
        cursor=cursor,
        limit=limit,
        key=(("partnership_id", str),),
    )
    return {"items": [_partnership(r) for r in items], "next_cursor": next_cursor}


async def network(
    conn: asyncpg.Connection, organisation_id: str, *, cursor: str | None, limit: int
) -> dict[str, Any]:
    """The partners around one organisation, each with the partnership that links them, by
    partner name (folded) then partnership id, a page at a time (keyset on that pair)."""
    rows, next_cursor = await keyset_page(
        conn,
        f"""
        SELECT {_PARTNERSHIP_COLUMNS}, o.organisation_id AS partner_id, o.name AS partner_name,
               o.country AS partner_country, o.kind AS partner_kind,
               o.name_folded AS partner_folded
        FROM partnerships p
        JOIN organisations o ON o.organisation_id =
             CASE WHEN p.org_a = $1 THEN p.org_b ELSE p.org_a END
        WHERE $1 IN (p.org_a, p.org_b)
          AND ($2::text IS NULL OR (o.name_folded, p.partnership_id) > ($2, $3))
        ORDER BY o.name_folded, p.partnership_id LIMIT $4
        """,
        (organisation_id,),
        cursor=cursor,
        limit=limit,
        key=(("partner_folded", str), ("partnership_id", str)),
    )
    centre = await organisation(conn, organisation_id, with_contacts=False)
    return {
        "next_cursor": next_cursor,
        "organisation": centre,
        "partners": [
            {
                "organisation_id": r["partner_id"],
                "name": r["partner_name"],
                "country": r["partner_country"],
                "kind": r["partner_kind"],
                "partnership": _partnership(r),
            }
            for r in rows
        ],
    }


async def require_organisation(conn: asyncpg.Connection, organisation_id: str) -> None:
    """NotFound unless the registry holds the organisation."""
    if not await conn.fetchval(
        "SELECT true FROM organisations WHERE organisation_id = $1", organisation_id
    ):
        raise NotFound(f"organisation {organisation_id} does not exist")


async def key_uses(
    conn: asyncpg.Connection, key_ids: Sequence[str]
) -> dict[str, dict[str, datetime]]:
    """When each key was last used at each other service, as their workers reported it."""
    found: dict[str, dict[str, datetime]] = {}
    for r in await conn.fetch(
        "SELECT key_id, service, last_used_at FROM api_key_uses WHERE key_id = ANY($1)",
        list(key_ids),
    ):
        found.setdefault(r["key_id"], {})[r["service"]] = r["last_used_at"]
    return found


async def api_key(
    conn: asyncpg.Connection,
    *,
    organisation_id: str,
    key_id: str,
    manager: keys.Manager,
    now: datetime,
) -> dict[str, Any]:
    """One of the organisation's keys; another organisation's key is not found here."""
    keys.check_reads(manager, organisation_id)
    row = await api_keys.row_of(conn, key_id)
    if row is None or row["organisation"] != organisation_id:
        raise NotFound(f"organisation {organisation_id} has no API key {key_id}")
    used = await key_uses(conn, [key_id])
    return views.api_key(row, now=now, used=used.get(key_id))


async def api_keys_of(
    conn: asyncpg.Connection,
    *,
    organisation_id: str,
    include_revoked: bool,
    cursor: str | None,
    limit: int,
    manager: keys.Manager,
    now: datetime,
) -> dict[str, Any]:
    """An organisation's keys, oldest first, a page at a time (`next_cursor`)."""
    keys.check_reads(manager, organisation_id)
    after = pagination.decode(cursor, parts=(datetime, str))
    # the operator's own organisations (twinaid, twinaid-audit: their administrator, auditor
    # and service keys) are in no directory but hold keys: listed as a registered one is, so a
    # leaked operator key can be found and revoked; an id holding neither is unknown (404)
    if not await conn.fetchval(
        "SELECT true FROM api_keys WHERE organisation = $1 LIMIT 1", organisation_id
    ):
        await require_organisation(conn, organisation_id)
    rows = await api_keys.rows_of(
        conn,
        organisation_id,
        include_revoked=include_revoked,
        after=(after[0], after[1]) if after else None,
        limit=limit + 1,
    )
    items, next_cursor = pagination.page(
        rows, limit=limit, key_of=lambda r: [r["created_at"].isoformat(), r["key_id"]]
    )
    used = await key_uses(conn, [r["key_id"] for r in items])
    return {
        "items": [views.api_key(r, now=now, used=used.get(r["key_id"])) for r in items],
        "next_cursor": next_cursor,
    }
