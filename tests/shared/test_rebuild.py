"""Read models are rebuilt from the log to the same contents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from services.registry import domain, handlers, projections
from shared import db as dbmod
from shared.event_store import PostgresEventStore
from shared.events import Metadata
from shared.projections import rebuild
from shared.testing import fresh_database

NOW = datetime(2026, 11, 24, tzinfo=UTC)


@pytest.fixture
async def conn(pg_server: str) -> AsyncIterator[asyncpg.Connection]:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        connection = await asyncpg.connect(url)
        yield connection
        await connection.close()


async def snapshot(conn: asyncpg.Connection) -> list[tuple[object, ...]]:
    rows = await conn.fetch("SELECT * FROM organisations ORDER BY organisation_id")
    return [tuple(r.values()) for r in rows]


async def test_rebuilding_the_read_models_replays_the_log_to_the_same_rows(
    conn: asyncpg.Connection,
) -> None:
    names = {
        "kharkiv": ("Kharkiv", ["Charkiw", "Kharkov"]),
        "lille": ("Lille", []),
        "dusseldorf": ("Düsseldorf", ["Duesseldorf"]),
    }
    for i, (slug, (name, aliases)) in enumerate(names.items()):
        async with conn.transaction():
            await handlers.register_organisation(
                conn,
                domain.RegisterOrganisation(
                    organisation_id=slug,
                    name=name,
                    kind=domain.OrganisationKind.MUNICIPALITY,
                    country="UA",
                    aliases=tuple(aliases),
                ),
                metadata=Metadata(actor="admin"),
                now=NOW,
            )
        if i == 0:
            await PostgresEventStore(conn).seal()  # some sealed, some not yet
    before = await snapshot(conn)
    assert len(before) == 3
    await conn.execute("UPDATE organisations SET name = 'corrupted'")  # a damaged read model
    replayed = await rebuild(conn, projections.ALL)
    assert replayed == 3
    assert await snapshot(conn) == before
