"""What the read side looks up in a service's copy of the registry's directory (shared/directory.py
keeps it): an organisation's name or country by id, for the lists and exports that show them."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg


async def names(conn: asyncpg.Connection, ids: Iterable[str]) -> dict[str, str]:
    """Organisation id -> name as the registry holds it."""
    return await _column(conn, "name", ids)


async def countries(conn: asyncpg.Connection, ids: Iterable[str]) -> dict[str, str]:
    """Organisation id -> country (ISO 3166-1 alpha-2) as the registry holds it."""
    return await _column(conn, "country", ids)


async def _column(conn: asyncpg.Connection, column: str, ids: Iterable[str]) -> dict[str, str]:
    """One column of the organisations named (those the directory does not hold left out);
    `column` is one of this module's, never a caller's text."""
    rows = await conn.fetch(
        f"SELECT organisation_id, {column} FROM directory WHERE organisation_id = ANY($1)",
        sorted(set(ids)),
    )
    return {r["organisation_id"]: r[column] for r in rows}
