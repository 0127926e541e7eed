"""Read models are rebuilt from the log to the same contents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from services.registry import commands, domain, handlers, projections, queries
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


async def test_a_registration_in_one_statement_leaves_the_rows_a_rebuild_makes(
    conn: asyncpg.Connection,
) -> None:
    """handlers.register_in_one_statement writes the read-model row itself (one round trip):
    the same row as the projection, with aliases, coordinates and region. A registration with
    contacts is left to the ordinary path (its people are sealed in a transaction): None,
    nothing written."""
    commands = [
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
    for command in commands:
        done = await handlers.register_in_one_statement(
            conn, command, metadata=Metadata(actor="admin"), now=NOW
        )
        assert done == {"organisation_id": command.organisation_id, "version": 1}
    with_contacts = _command(
        "lviv", "Lviv", contacts=({"role": "mayor's office", "name": "Ihor Terekhov"},)
    )
    events = await conn.fetchval("SELECT count(*) FROM events")
    assert (
        await handlers.register_in_one_statement(
            conn, with_contacts, metadata=Metadata(actor="admin"), now=NOW
        )
        is None
    )
    assert await conn.fetchval("SELECT count(*) FROM events") == events
    before = await snapshot(conn)
    assert [r[0] for r in before] == ["bucha", "fastiv", "kharkiv"]
    assert await rebuild(conn, projections.ALL) == 3
    assert await snapshot(conn) == before
    history = await queries.organisation_as_of(conn, "kharkiv", NOW)
    assert history.version == 1 and history.aliases == ("Charkiw", "Kharkov")


async def test_a_registration_in_one_statement_leaves_what_it_cannot_decide_untouched(
    conn: asyncpg.Connection,
) -> None:
    """A namesake, a taken id, a parent to check, a command the domain refuses: None, nothing
    written, and the ordinary path (register_organisation) decides."""
    meta = Metadata(actor="admin")
    assert await handlers.register_in_one_statement(
        conn, _command("kharkiv", "Kharkiv"), metadata=meta, now=NOW
    )
    events = await conn.fetchval("SELECT count(*) FROM events")
    undecided = [
        _command("kharkiv-2", "KHARKIV"),  # a namesake in the country
        _command("kharkiv-3", "Kharkov", aliases=("Kharkiv",)),  # by an alias
        _command("kharkiv", "Somewhere else"),  # the id is taken
        _command("kharkiv-oblast", "Kharkiv Oblast", parent_id="kharkiv"),  # a parent
        domain.RegisterOrganisation(
            organisation_id="nowhere",
            name="Nowhere",
            kind=domain.OrganisationKind.MUNICIPALITY,
            country="XX",  # not a country
        ),
    ]
    for command in undecided:
        assert (
            await handlers.register_in_one_statement(conn, command, metadata=meta, now=NOW) is None
        ), command
    assert await conn.fetchval("SELECT count(*) FROM events") == events
    assert await conn.fetchval("SELECT count(*) FROM organisations") == 1
    # `distinct` registers a namesake, as the ordinary path does
    assert await handlers.register_in_one_statement(
        conn, _command("kharkiv-2", "KHARKIV"), distinct=True, metadata=meta, now=NOW
    ) == {"organisation_id": "kharkiv-2", "version": 1}
