"""Registry read side."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.errors import NotFound


async def organisation(conn: asyncpg.Connection, organisation_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT organisation_id, name, kind, country, region, aliases, version"
        " FROM organisations WHERE organisation_id = $1",
        organisation_id,
    )
    if row is None:
        raise NotFound(f"organisation {organisation_id} does not exist")
    return {**dict(row), "aliases": list(row["aliases"])}
