"""Read models are rebuilt from the log to the same contents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from services.registry import commands, domain, handlers, projections, queries
from shared import db as dbmod
from shared.errors import Conflict, ValidationFailed
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
            await handlers.run(
                conn,
                commands.RegisterOrganisation(
                    domain.RegisterOrganisation(
                        organisation_id=slug,
                        name=name,
                        kind=domain.OrganisationKind.MUNICIPALITY,
                        country="UA",
                        aliases=tuple(aliases),
                    )
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


def _command(slug: str, name: str, **extra: object) -> domain.RegisterOrganisation:
    return domain.RegisterOrganisation(
        organisation_id=slug,
        name=name,
        kind=domain.OrganisationKind.MUNICIPALITY,
        country="UA",
        **extra,  # type: ignore[arg-type]
    )


async def _together(
    conn: asyncpg.Connection, *registrations: domain.RegisterOrganisation, distinct: bool = False
) -> list[Any]:
    """Registrations as a group commit runs them: one transaction, each decided as alone."""
    batch = [
        handlers.Batched(
            commands.RegisterOrganisation(r, distinct=distinct), Metadata(actor="admin"), NOW
        )
        for r in registrations
    ]
    async with conn.transaction():
        return await handlers.register_together(conn, batch)


async def test_registrations_together_leave_the_rows_a_rebuild_makes(
    conn: asyncpg.Connection,
) -> None:
    """Registrations run together project in one round trip (their rows in one pipelined
    statement): the same rows as a replay of the log, with aliases, coordinates and region. A
    registration with contacts is left to the ordinary path (its people are sealed before it
    is decided)."""
    registrations = [
        _command("bucha", "Bucha"),
        _command(
            "kharkiv",
            "Kharkiv",
            region="Kharkiv Oblast",
            aliases=("Charkiw", "Kharkov"),
            coordinates={"lat": 49.9935, "lon": 36.2304},
        ),
        _command("fastiv", "Fastiv"),
    ]
    assert await _together(conn, *registrations) == [
        {"organisation_id": r.organisation_id, "version": 1} for r in registrations
    ]
    with_contacts = _command(
        "lviv", "Lviv", contacts=({"role": "mayor's office", "name": "Ihor Terekhov"},)
    )
    assert not handlers.batchable(commands.RegisterOrganisation(with_contacts))
    before = await snapshot(conn)
    assert [r[0] for r in before] == ["bucha", "fastiv", "kharkiv"]
    assert await rebuild(conn, projections.ALL) == 3
    assert await snapshot(conn) == before
    history = await queries.organisation_as_of(conn, "kharkiv", NOW)
    assert history.version == 1 and history.aliases == ("Charkiw", "Kharkov")


async def test_registrations_together_refuse_what_the_handler_refuses_and_write_nothing_of_it(
    conn: asyncpg.Connection,
) -> None:
    """A namesake, a taken id, a command the domain refuses: each refused as alone, nothing of
    it written; a parent the registry holds is checked as the ordinary path checks it."""
    assert await _together(conn, _command("kharkiv", "Kharkiv")) == [
        {"organisation_id": "kharkiv", "version": 1}
    ]
    events = await conn.fetchval("SELECT count(*) FROM events")
    refused = [
        _command("kharkiv-2", "KHARKIV"),  # a namesake in the country
        _command("kharkiv-3", "Kharkov", aliases=("Kharkiv",)),  # by an alias
        _command("kharkiv", "Somewhere else"),  # the id is taken
        _command("oblast", "Oblast", parent_id="nowhere"),  # an unknown parent
        domain.RegisterOrganisation(
            organisation_id="nowhere",
            name="Nowhere",
            kind=domain.OrganisationKind.MUNICIPALITY,
            country="XX",  # not a country
        ),
    ]
    outcomes = await _together(conn, *refused)
    assert [type(o) for o in outcomes] == [
        Conflict,
        Conflict,
        Conflict,
        ValidationFailed,
        ValidationFailed,
    ]
    assert await conn.fetchval("SELECT count(*) FROM events") == events
    assert await conn.fetchval("SELECT count(*) FROM organisations") == 1
    # `distinct` registers a namesake, and a parent the registry holds is taken, as alone
    assert await _together(
        conn,
        _command("kharkiv-2", "KHARKIV"),
        _command("oblast", "Oblast", parent_id="kharkiv"),
        distinct=True,
    ) == [
        {"organisation_id": "kharkiv-2", "version": 1},
        {"organisation_id": "oblast", "version": 1},
    ]
