"""Registrations that arrive together run in one transaction (group commit), each decided by
the registration handler exactly as it would be alone, their events appended in one round trip:
real PostgreSQL, real registry app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest

from services.registry import commands, domain, handlers
from shared import db as dbmod
from shared.errors import Conflict
from shared.event_store import ConcurrencyConflict
from shared.testing import fresh_database
from tests.registry.conftest import RegistryApi, prepared


@pytest.fixture
async def url(pg_server: str) -> AsyncIterator[str]:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as database:
        yield database


@pytest.fixture
async def conn(url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(url)
    yield connection
    await connection.close()


async def together(conn: asyncpg.Connection, batch: Sequence[handlers.Batched]) -> list[Any]:
    """The batch in a transaction of its own, each outcome as a request would see it: the
    answer, or the refusal's class and the namesake it names."""
    async with conn.transaction():
        outcomes = await handlers.register_together(conn, batch)
    return [
        (type(o).__name__, getattr(o, "extra", {}).get("existing_organisation_id"))
        if isinstance(o, Exception)
        else o
        for o in outcomes
    ]


async def ids(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT organisation_id FROM organisations ORDER BY 1")
    return [r["organisation_id"] for r in rows]


async def test_each_registration_of_a_batch_is_decided_as_it_would_be_alone(
    conn: asyncpg.Connection,
) -> None:
    """A namesake of an earlier item of the same batch, an id already taken: those two are
    refused as alone (409, naming the namesake) and wrote nothing; the rest are registered,
    events and read-model rows, in one transaction."""
    assert await together(conn, [prepared("kharkiv", "Kharkiv")]) == [
        {"organisation_id": "kharkiv", "version": 1}
    ]
    answers = await together(
        conn,
        [
            prepared("bucha", "Bucha"),
            prepared("bucha-2", "BUCHA"),  # a namesake of the item before it
            prepared("kharkiv", "Kharkiv city"),  # the id is taken
            prepared("fastiv", "Fastiv"),
        ],
    )
    assert answers == [
        {"organisation_id": "bucha", "version": 1},
        ("Conflict", "bucha"),
        ("Conflict", None),  # already registered
        {"organisation_id": "fastiv", "version": 1},
    ]
    assert await ids(conn) == ["bucha", "fastiv", "kharkiv"]
    streams = await conn.fetch(
        "SELECT stream_id, count(*) AS n, count(DISTINCT tx_id) AS txs FROM events"
        " GROUP BY stream_id ORDER BY 1"
    )
    assert [(r["stream_id"], r["n"]) for r in streams] == [
        ("organisation-bucha", 1),
        ("organisation-fastiv", 1),
        ("organisation-kharkiv", 1),
    ]
    # bucha and fastiv were written by one transaction: one commit for the batch
    assert (
        await conn.fetchval(
            "SELECT count(DISTINCT tx_id) FROM events"
            " WHERE stream_id IN ('organisation-bucha', 'organisation-fastiv')"
        )
        == 1
    )


def test_a_registration_with_contacts_is_left_to_the_ordinary_path() -> None:
    """Contacts are sealed in the write's transaction (a subject and its key per person,
    services/registry/privacy.py) before the registration is decided: not in a group commit,
    where a refusal could not undo them alone."""
    contacts = prepared("fastiv", "Fastiv", contacts=({"role": "twinning", "name": "O. K."},))
    assert isinstance(contacts.command, commands.RegisterOrganisation)
    assert not handlers.batchable(contacts.command)
    plain = prepared("fastiv", "Fastiv")
    assert isinstance(plain.command, commands.RegisterOrganisation)
    assert handlers.batchable(plain.command)


async def test_a_batch_that_fails_on_the_server_writes_nothing_and_sends_every_item_back(
    url: str, conn: asyncpg.Connection
) -> None:
    """Another transaction registers the id `lviv` under another name and commits while the
    batch waits on it: the batch's append breaks the stream's uniqueness, the whole batch is
    rolled back (odesa too) and every item gets the lost race (each request runs again)."""
    other = await asyncpg.connect(url)
    try:
        transaction = other.transaction()
        await transaction.start()
        assert await handlers.register_together(other, [prepared("lviv", "Lemberg")]) == [
            {"organisation_id": "lviv", "version": 1}
        ]
        batch = asyncio.create_task(
            together(conn, [prepared("odesa", "Odesa"), prepared("lviv", "Lviv")])
        )
        await asyncio.sleep(0.3)
        assert not batch.done()  # waiting on the uncommitted lviv stream
        await transaction.commit()
        with pytest.raises(ConcurrencyConflict):
            await asyncio.wait_for(batch, 10)
    finally:
        await other.close()
    assert await ids(conn) == ["lviv"]
    assert await conn.fetchval("SELECT count(*) FROM events") == 1


async def test_a_batch_waits_for_the_name_locks_and_then_sees_the_namesakes(
    url: str, conn: asyncpg.Connection
) -> None:
    """The batch takes every item's name locks first: while another registration of the same
    names is uncommitted it waits, and afterwards finds the namesakes."""
    other = await asyncpg.connect(url)
    try:
        transaction = other.transaction()
        await transaction.start()
        await handlers.register_together(
            other, [prepared("zaporizhzhia", "Zaporizhzhia"), prepared("mykolaiv", "Mykolaiv")]
        )
        batch = asyncio.create_task(
            together(
                conn,
                [prepared("mykolaiv-2", "Mykolaiv"), prepared("zaporizhzhia-2", "Zaporizhzhia")],
            )
        )
        await asyncio.sleep(0.3)
        assert not batch.done()
        await transaction.commit()
        assert await asyncio.wait_for(batch, 10) == [
            ("Conflict", "mykolaiv"),
            ("Conflict", "zaporizhzhia"),
        ]
    finally:
        await other.close()
    assert await ids(conn) == ["mykolaiv", "zaporizhzhia"]


async def test_concurrent_registrations_through_the_api_are_grouped_and_all_recorded(
    api: RegistryApi,
) -> None:
    """60 registrations at once: every one answered 201 with its own id and version, every one
    in the log and the directory, in fewer statements than registrations."""
    responses = await asyncio.gather(
        *(
            api.client.post(
                "/v1/organisations",
                json={
                    "organisation_id": f"hromada-{i}",
                    "name": f"Hromada {i}",
                    "kind": "municipality",
                    "country": "UA",
                },
                headers=api.as_admin,
            )
            for i in range(60)
        )
    )
    assert [r.status_code for r in responses] == [201] * 60
    assert sorted(r.json()["organisation_id"] for r in responses) == sorted(
        f"hromada-{i}" for i in range(60)
    )
    assert all(r.json()["version"] == 1 for r in responses)
    assert await api.count("events") == 60
    assert await api.count("organisations") == 60
    batcher = api.app.state.ctx.group_commits["registrations"]
    assert batcher.items == 60
    assert batcher.batches < 60


@pytest.mark.parametrize(("organisations", "analysed"), [(20_000, True), (5_000, False)])
async def test_a_batch_finds_namesakes_through_the_index_in_a_large_directory(
    conn: asyncpg.Connection, organisations: int, analysed: bool
) -> None:
    """The batch's namesake check goes through the names index however large the directory
    and whether or not ANALYZE has seen it. Checked item by item against names the planner
    could not see, it guessed that 1% of an analysed table matched and scanned all of it for
    every item (the append benchmark fell from about 1,300 to 150 registrations a second at
    30,000 organisations); on a table never analysed (autovacuum off) a scan came out cheaper
    on paper up to tens of thousands of organisations."""
    keys = [domain.name_keys(f"Hromada {g}") for g in range(1, organisations + 1)]
    await conn.execute(
        "INSERT INTO organisations (organisation_id, name, name_folded, kind, country,"
        " search_names, name_skeletons, version, registered_at, updated_at)"
        " SELECT 'hromada-' || g, 'Hromada ' || g, 'hromada ' || g, 'municipality', 'UA',"
        " ARRAY['hromada ' || g], ARRAY[k.first, k.second], 1, now(), now()"
        " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(first, second, g)",
        [k[0] for k in keys],
        [k[-1] for k in keys],
    )
    if analysed:
        await conn.execute("ANALYZE organisations")

    async def sequential_scans() -> int:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(
            await conn.fetchval(
                "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'organisations'"
            )
        )

    before = await sequential_scans()
    answers = await together(
        conn,
        [prepared(f"new-{i}", f"New hromada {i}") for i in range(8)]
        + [prepared("namesake", "Hromada 777")],
    )
    assert answers == [{"organisation_id": f"new-{i}", "version": 1} for i in range(8)] + [
        ("Conflict", "hromada-777")
    ]
    assert await sequential_scans() == before


async def test_a_batch_run_again_in_savepoints_answers_each_registration_as_before(
    conn: asyncpg.Connection,
) -> None:
    """What a batch whose append the database refused is run again as (SavepointsNeeded):
    each registration alone in a savepoint, appending at once; the answers are those of the
    batch, and a refusal undoes only its own registration."""
    assert await together(conn, [prepared("kharkiv", "Kharkiv")]) == [
        {"organisation_id": "kharkiv", "version": 1}
    ]
    batch = [
        prepared("bucha", "Bucha"),
        prepared("bucha-2", "BUCHA"),
        prepared("kharkiv", "Kharkiv city"),
        prepared("fastiv", "Fastiv", parent_id="bucha"),
    ]
    async with conn.transaction():
        outcomes = await handlers.register_together(conn, batch, savepoints=True)
    assert outcomes[0] == {"organisation_id": "bucha", "version": 1}
    assert isinstance(outcomes[1], Conflict) and isinstance(outcomes[2], Conflict)
    assert outcomes[3] == {"organisation_id": "fastiv", "version": 1}
    assert await ids(conn) == ["bucha", "fastiv", "kharkiv"]
    assert await conn.fetchval("SELECT count(*) FROM events") == 3
    # and as one batch, a parent registered by an earlier registration of the same batch
    assert await together(
        conn, [prepared("irpin", "Irpin"), prepared("irpin-lyceum", "Lyceum", parent_id="irpin")]
    ) == [
        {"organisation_id": "irpin", "version": 1},
        {"organisation_id": "irpin-lyceum", "version": 1},
    ]
