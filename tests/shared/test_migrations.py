"""Versioned migrations (shared/migrations.py): a database migrated by yoyo from nothing has
exactly the schema of a scratch database built from the same files without yoyo (their SQL in
yoyo's order, `-- depends:` first); a database made by an earlier release, holding sealed events
and read-model rows, is upgraded with its chain intact and its data kept; starters racing on one
database apply each migration once; a start with nothing pending takes no lock; `twinaid
migrate` lists and applies."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services import migrate_command
from services.registry.demo import ORGANISATIONS
from shared import db as dbmod
from shared import directory, migrations
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.testing import seal_everything

SERVICES = ("registry", "pledges", "shipments")
PREVIOUS = Path(__file__).parents[1] / "fixtures" / "schema_previous"
# yoyo's bookkeeping and apply_schema's: not part of the schema
BOOKKEEPING = ("_yoyo_log", "_yoyo_migration", "_yoyo_version", "yoyo_lock")
BOOKKEEPING_OLD = ("twinaid_schema_applied",)
NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def scratch_scripts(service: str) -> tuple[str, ...]:
    """A scratch database's scripts as the tests' fresh databases and the audit name them, folder
    by folder: the event log's migrations, the directory's for a consumer, the service's own."""
    consumer = (directory.SCHEMA,) if service != "registry" else ()
    return (dbmod.schema_text("shared"), *consumer, dbmod.schema_text(f"services.{service}"))


def previous_scripts(commit: str, service: str) -> tuple[str, ...]:
    folder = PREVIOUS / commit
    consumer = ("directory.sql",) if service != "registry" else ()
    return tuple((folder / f).read_text() for f in ("shared.sql", *consumer, f"{service}.sql"))


@asynccontextmanager
async def empty_database(server: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = dbmod.with_database(server, name)
    await dbmod.ensure_database(url)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(dbmod.with_database(server, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


CATALOG: dict[str, str] = {
    "relations": """
        SELECT c.relname, c.relkind::text, c.relpersistence::text,
            coalesce(pg_get_viewdef(c.oid), '')
        FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r','p','v','m','c')
    """,
    # every column of tables and composite types, in order (a composite type is built by
    # position: registry_registration), with its type, nullability, default, identity
    "columns": """
        SELECT c.relname, a.attname,
               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
               format_type(a.atttypid, a.atttypmod), a.attnotnull,
               coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text,
               a.attgenerated::text
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r','p','v','m','c')
          AND a.attnum > 0 AND NOT a.attisdropped
    """,
    "indexes": """
        SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()
    """,
    "constraints": """
        SELECT c.relname, k.conname, k.contype::text, pg_get_constraintdef(k.oid), k.convalidated
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        WHERE c.relnamespace = current_schema()::regnamespace
    """,
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
    """,
    # the whole definition: arguments, result, language, volatility, SET clauses, body
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
        FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace
    """,
    "types": """
        SELECT t.typname, t.typtype::text,
               coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                         FROM pg_enum e WHERE e.enumtypid = t.oid), '')
        FROM pg_type t
        WHERE t.typnamespace = current_schema()::regnamespace AND t.typtype IN ('c','e','d')
          AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
    """,
    "sequences": """
        SELECT sequencename, data_type::text, increment_by, min_value, max_value
        FROM pg_sequences WHERE schemaname = current_schema()
    """,
    "extensions": "SELECT extname FROM pg_extension",
}


async def catalog(conn: asyncpg.Connection) -> dict[str, set[tuple[Any, ...]]]:
    """What the schema is, object by object (bookkeeping tables left out)."""
    skip = {*BOOKKEEPING, *BOOKKEEPING_OLD}
    seen: dict[str, set[tuple[Any, ...]]] = {}
    for kind, query in CATALOG.items():
        rows = {tuple(r) for r in await conn.fetch(query)}
        seen[kind] = {
            r
            for r in rows
            if not any(str(r[0]) == t or str(r[0]).startswith(f"{t}_") for t in skip)
        }
    return seen


def differences(a: dict[str, set[tuple[Any, ...]]], b: dict[str, set[tuple[Any, ...]]]) -> str:
    lines = []
    for kind in CATALOG:
        for row in sorted(a[kind] - b[kind], key=str):
            lines.append(f"{kind}: only in the first: {row}")
        for row in sorted(b[kind] - a[kind], key=str):
            lines.append(f"{kind}: only in the second: {row}")
    return "\n".join(lines)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_scratch_database_has_exactly_the_schema_yoyo_migrates_to(
    pg_server: str, service: str
) -> None:
    """The fast path (the migrations' SQL run in one transaction, no yoyo) and yoyo's own run
    from nothing agree object by object; the folder-by-folder texts scratch databases are named
    by are the same SQL in the same order."""
    async with empty_database(pg_server) as migrated, empty_database(pg_server) as scratch:
        async with connected(migrated) as conn:
            applied = await dbmod.migrate(conn, service)
            built = await catalog(conn)
        async with connected(scratch) as conn:
            await dbmod.apply_schema(conn, *migrations.sql_of(service))
            expected = await catalog(conn)
    assert applied == migrations.ids_of(service)
    assert built["relations"], "the catalog query found no tables"
    assert built == expected, differences(built, expected)
    assert "\n".join(scratch_scripts(service)) == "\n".join(migrations.sql_of(service))


async def test_the_catalog_sees_a_missing_column(pg_server: str) -> None:
    """The drift test's comparison notices a difference as small as one column."""
    async with empty_database(pg_server) as url, connected(url) as conn:
        await dbmod.migrate(conn, "registry")
        before = await catalog(conn)
        await conn.execute("ALTER TABLE api_keys ADD COLUMN note text DEFAULT 'x'")
        after = await catalog(conn)
    assert "columns: only in the second: ('api_keys', 'note'" in differences(before, after)


# -- upgrading a database made by an earlier release -----------------------------------------


def demo_events(service: str, n: int) -> list[tuple[str, str, list[NewEvent]]]:
    """(stream type, stream id, events) from the registry's demo organisations."""
    out = []
    for org in ORGANISATIONS[:n]:
        body = {k: v for k, v in org.body().items() if v is not None}
        out.append(
            (
                "organisation" if service == "registry" else f"{service}-demo",
                f"{service}-{org.organisation_id}",
                [
                    NewEvent("organisation-registered", body, occurred_at=NOW),
                    NewEvent("organisation-renamed", {"name": f"{org.name} (renamed)"}, NOW),
                ],
            )
        )
    return out


async def write_demo(conn: asyncpg.Connection, service: str, n: int) -> int:
    """Events through the current code's append, sealed by its sealer, and the consumers'
    directory rows by plain SQL; the number of events written."""
    store = PostgresEventStore(conn)
    written = 0
    for stream_type, stream_id, events in demo_events(service, n):
        version = await store.current_version(stream_id)
        await store.append(
            stream_type=stream_type,
            stream_id=stream_id,
            expected_version=version,
            events=events,
            metadata=Metadata(actor="demo", organisation="demo"),
            now=NOW,
        )
        written += len(events)
    if service != "registry":
        for position, org in enumerate(ORGANISATIONS[:n], start=1):
            await conn.execute(
                "INSERT INTO directory (organisation_id, name, kind, country, source_position)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                org.organisation_id,
                org.name,
                org.kind,
                org.country,
                position,
            )
    await seal_everything(conn)
    return written


async def table_contents(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table (bookkeeping left out)."""
    tables = await conn.fetch(
        "SELECT relname FROM pg_class WHERE relkind = 'r'"
        " AND relnamespace = current_schema()::regnamespace"
    )
    skip = {*BOOKKEEPING, *BOOKKEEPING_OLD}
    return {
        t["relname"]: [dict(r) for r in await conn.fetch(f'SELECT * FROM "{t["relname"]}"')]
        for t in tables
        if t["relname"] not in skip
    }


def kept_columns(
    rows: list[dict[str, Any]], columns: set[str] | None = None
) -> list[dict[str, Any]]:
    """The rows in one order, each with only `columns` (default: all)."""
    picked = [{k: v for k, v in r.items() if columns is None or k in columns} for r in rows]
    return sorted(picked, key=repr)


def commits() -> list[str]:
    return sorted(p.name for p in PREVIOUS.iterdir() if p.is_dir())


@pytest.mark.parametrize("commit", commits())
@pytest.mark.parametrize("service", SERVICES)
async def test_a_previous_release_database_is_upgraded_with_its_chain_intact(
    pg_server: str, service: str, commit: str
) -> None:
    async with empty_database(pg_server) as url, connected(url) as conn:
        # the earlier release: its scripts applied at start-up, as it did
        await dbmod.apply_schema(conn, *previous_scripts(commit, service))
        assert await migrations.applied_ids(conn) is None
        written = await write_demo(conn, service, 6)
        store = PostgresEventStore(conn)
        before = await store.verify()
        assert before.intact and before.checked == written
        kept = await table_contents(conn)
        assert len(kept["events"]) == written

        applied = await dbmod.migrate(conn, service)

        assert applied == migrations.ids_of(service)
        after = await store.verify()
        assert after.intact, after.problem
        assert (after.checked, after.head_hash) == (written, before.head_hash)
        now = await table_contents(conn)
        for table, rows in kept.items():
            columns = {c for row in rows for c in row}
            assert kept_columns(now[table], columns) == kept_columns(rows), table
        # the schema is now exactly the current one
        async with empty_database(pg_server) as fresh, connected(fresh) as fresh_conn:
            await dbmod.migrate(fresh_conn, service)
            assert await catalog(conn) == await catalog(fresh_conn), differences(
                await catalog(conn), await catalog(fresh_conn)
            )
        # and the chain goes on
        more = await write_demo(conn, service, 9)
        final = await store.verify()
        assert final.intact and final.checked == written + more


# -- starting together, the lock, failures ---------------------------------------------------


async def test_starters_racing_apply_each_migration_once(pg_server: str) -> None:
    """Four processes' start-ups at once (two through a pool, as the APIs and workers do):
    every one returns with the schema in place, and each migration ran exactly once."""
    async with empty_database(pg_server) as url:
        pool = dbmod.Database(url, max_size=2)
        await pool.open()

        async def through_pool() -> list[str]:
            async with pool.connection() as conn:
                return await dbmod.migrate(conn, "pledges", "ignored")

        async def direct() -> list[str]:
            async with connected(url) as conn:
                return await dbmod.migrate(conn, "pledges")

        try:
            results = await asyncio.gather(through_pool(), through_pool(), direct(), direct())
        finally:
            await pool.close()
        async with connected(url) as conn:
            logged = await conn.fetch(
                "SELECT migration_id FROM _yoyo_log WHERE operation = 'apply'"
            )
            assert await migrations.pending_ids(conn, "pledges") == []
            assert await conn.fetchval("SELECT count(*) FROM yoyo_lock") == 0
    ids = migrations.ids_of("pledges")
    assert sorted(i for applied in results for i in applied) == sorted(ids)
    assert sorted(r["migration_id"] for r in logged) == sorted(ids)


@pytest.fixture
def extra_migration(tmp_path: Path) -> Any:
    """Registry's migrations plus more of the test's, each written by `write(sql)` (its id
    `name`, after the migration it `depends` on)."""
    folder = tmp_path / "more"
    folder.mkdir()
    sources = dict(migrations.SOURCES)
    migrations.SOURCES = {**sources, "registry": (*sources["registry"], str(folder))}
    migrations._migrations.pop("registry", None)

    def write(
        sql: str, name: str = "test_9999_extra", depends: str = "registry_0001_baseline"
    ) -> str:
        (folder / f"{name}.sql").write_text(f"-- depends: {depends}\n{sql}\n")
        migrations._migrations.pop("registry", None)
        return name

    yield write
    migrations.SOURCES = sources
    migrations._migrations.pop("registry", None)


async def table_exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def test_a_scratch_database_applies_what_a_migration_depends_on_first(
    pg_server: str, extra_migration: Any
) -> None:
    """A migration whose file name sorts first but which depends on a later one runs after it,
    in yoyo's run and in a scratch database alike (in file order its reference would fail)."""
    later = extra_migration(
        "CREATE TABLE b_things (id integer PRIMARY KEY REFERENCES a_things);",
        name="test_9998_b",
        depends="test_9999_a",
    )
    earlier = extra_migration("CREATE TABLE a_things (id integer PRIMARY KEY);", "test_9999_a")
    assert migrations.ids_of("registry")[-2:] == [earlier, later]
    async with empty_database(pg_server) as migrated, empty_database(pg_server) as scratch:
        async with connected(migrated) as conn:
            assert (await dbmod.migrate(conn, "registry"))[-2:] == [earlier, later]
            built = await catalog(conn)
        async with connected(scratch) as conn:
            await dbmod.apply_schema(conn, *migrations.sql_of("registry"))
            assert await table_exists(conn, "b_things")
            expected = await catalog(conn)
    assert built == expected, differences(built, expected)


async def test_nothing_pending_takes_no_lock(pg_server: str, extra_migration: Any) -> None:
    """A restart with nothing pending returns at once while another session holds both yoyo's
    lock and an exclusive lock on the event log; a pending migration waits for the lock."""
    async with (
        empty_database(pg_server) as url,
        connected(url) as conn,
        connected(url) as holder,
    ):
        await dbmod.migrate(conn, "registry")
        pid = await holder.fetchval("SELECT pg_backend_pid()")
        await holder.execute(
            "INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), $1)", pid
        )
        async with holder.transaction():
            await holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            assert await asyncio.wait_for(dbmod.migrate(conn, "registry"), 60) == []

        extra = extra_migration("CREATE TABLE extra_things (id integer PRIMARY KEY);")
        waiting = asyncio.create_task(dbmod.migrate(conn, "registry"))
        await asyncio.sleep(1.0)
        assert not waiting.done()
        async with connected(url) as other:
            assert not await table_exists(other, "extra_things")
        await holder.execute("DELETE FROM yoyo_lock")
        assert await asyncio.wait_for(waiting, 60) == [extra]
        assert await table_exists(conn, "extra_things")


async def test_a_lock_left_by_a_dead_process_is_taken_over(
    pg_server: str, extra_migration: Any
) -> None:
    """A starter killed while it held the lock left its row; its session is gone, so the next
    starter takes the lock over instead of waiting for ever."""
    async with empty_database(pg_server) as url, connected(url) as conn:
        await dbmod.migrate(conn, "registry")
        async with connected(url) as dead:
            gone = await dead.fetchval("SELECT pg_backend_pid()")
            await dead.execute(
                "INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), $1)", gone
            )
        extra = extra_migration("CREATE TABLE extra_things (id integer PRIMARY KEY);")
        assert await asyncio.wait_for(dbmod.migrate(conn, "registry"), 60) == [extra]
        assert await conn.fetchval("SELECT count(*) FROM yoyo_lock") == 0


async def test_a_failing_migration_is_rolled_back_and_named(
    pg_server: str, extra_migration: Any
) -> None:
    async with empty_database(pg_server) as url, connected(url) as conn:
        await dbmod.migrate(conn, "registry")
        extra = extra_migration(
            "CREATE TABLE extra_things (id integer PRIMARY KEY);\n"
            "ALTER TABLE no_such_table ADD COLUMN x integer;"
        )
        with pytest.raises(migrations.MigrationFailed, match=f"migration {extra} failed") as e:
            await dbmod.migrate(conn, "registry")
        assert "no_such_table" in str(e.value)
        assert not await table_exists(conn, "extra_things")
        assert await migrations.pending_ids(conn, "registry") == [extra]
        assert await conn.fetchval("SELECT count(*) FROM yoyo_lock") == 0


# -- twinaid migrate -------------------------------------------------------------------------


def migrate_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    migrate_command.register(p.add_subparsers(dest="command", required=True))
    return p.parse_args(["migrate", *argv])


async def test_the_migrate_command_lists_and_applies(
    pg_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with empty_database(pg_server) as reg, empty_database(pg_server) as ship:
        databases = {"registry": reg, "pledges": "postgresql://unused/none", "shipments": ship}
        only = ("--service", "registry", "--service", "shipments")

        def run(*argv: str) -> tuple[int, str]:
            code = migrate_command.run(migrate_args(*argv), databases=databases)
            return code, capsys.readouterr().out

        code, listed = await asyncio.to_thread(run, *only, "--list")
        assert code == 0
        for service in ("registry", "shipments"):
            for i in migrations.ids_of(service):
                assert any(i in line and "pending" in line for line in listed.splitlines())
        code, applied = await asyncio.to_thread(run, *only)
        assert code == 0
        assert f"registry: applied {', '.join(migrations.ids_of('registry'))}" in applied
        assert f"shipments: applied {', '.join(migrations.ids_of('shipments'))}" in applied
        code, listed = await asyncio.to_thread(run, *only, "--list")
        assert "pending" not in listed
        for service in ("registry", "shipments"):
            for i in migrations.ids_of(service):
                assert any(
                    line.split()[:1] == [i] and "UTC" in line for line in listed.splitlines()
                )
        code, again = await asyncio.to_thread(run, *only)
        assert again.splitlines() == [
            "registry: up to date, nothing to apply",
            "shipments: up to date, nothing to apply",
        ]
        async with connected(ship) as conn:
            assert await table_exists(conn, "convoys")
            assert await table_exists(conn, "directory")


async def test_a_database_migrated_by_a_newer_release_is_named(
    pg_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A rolled-back deployment starts on a database a newer release migrated: it runs, and
    says which migrations it does not know."""
    async with empty_database(pg_server) as url, connected(url) as conn:
        await dbmod.migrate(conn, "shipments")
        await conn.execute(
            "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc)"
            " VALUES ('x', 'shipments_9999_from_the_future', now())"
        )
        with caplog.at_level("WARNING", logger="twinaid.migrations"):
            assert await dbmod.migrate(conn, "shipments") == []
    assert "shipments_9999_from_the_future" in caplog.text
