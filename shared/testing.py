"""Helpers for tests and benchmarks: real servers, fresh databases, keys."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from shared import auth, migrations
from shared import db as dbmod
from shared.event_store import PostgresEventStore
from shared.infra import start_embedded_postgres
from shared.settings import SERVICES

SYSTEM_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def test_server_url() -> str:
    """TWINAID_TEST_PG=embedded (default) starts the wheel's server; =system uses port 5432;
    any other value is taken as a server URL."""
    mode = os.environ.get("TWINAID_TEST_PG", "embedded")
    if mode == "embedded":
        root = Path(os.environ.get("TWINAID_DATA_DIR", ".data"))
        return start_embedded_postgres(root / "test-pg")
    if mode == "system":
        return SYSTEM_PG
    return mode


# One template database per server and schema, made once per test session (per process): each
# fresh database is a copy of it, which costs a file copy instead of running the DDL and the
# migrations' bookkeeping again for every test.
_templates: dict[tuple[str, tuple[str, ...]], str] = {}


async def _template(server_url: str, scripts: tuple[str, ...]) -> str:
    """The name of a database holding the shared schema and `scripts` (made by the service's
    migrations as well when `scripts` hold a service's schema, so an app or worker started on
    a copy finds nothing pending), never connected to after it is made."""
    key = (server_url, scripts)
    if key in _templates:
        return _templates[key]
    name = f"tpl_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    url = dbmod.with_database(server_url, name)
    await dbmod.ensure_database(url)
    service = next((s for s in SERVICES if dbmod.schema_text(f"services.{s}") in scripts), None)
    conn = await asyncpg.connect(url)
    try:
        await dbmod.apply_schema(conn, dbmod.schema_text("shared"), *scripts)
        if service is not None:
            await migrations.migrate(conn, service)
    finally:
        await conn.close()
    _templates[key] = name
    return name


async def drop_templates() -> None:
    """Drop the template databases this process made (at the end of a test session)."""
    for (server_url, _), name in list(_templates.items()):
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            admin = await asyncpg.connect(dbmod.with_database(server_url, "postgres"))
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()
    _templates.clear()


@asynccontextmanager
async def fresh_database(server_url: str, *scripts: str) -> AsyncIterator[str]:
    """A new empty database with the shared schema and `scripts` applied; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    template = await _template(server_url, scripts)
    admin = await asyncpg.connect(dbmod.with_database(server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    url = dbmod.with_database(server_url, name)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(dbmod.with_database(server_url, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def seal_everything(conn: asyncpg.Connection, *, timeout: float = 15) -> int:
    """Seal until no committed event is left unsealed; returns how many were sealed.

    Sealing waits for the oldest transaction running anywhere on the server (transaction ids
    are server-wide), so one call may seal nothing while another session is mid-transaction.
    """
    store = PostgresEventStore(conn)
    sealed = 0
    deadline = time.monotonic() + timeout
    while True:
        sealed += await store.seal()
        unsealed = await conn.fetchval(
            "SELECT count(*) FROM events e LEFT JOIN event_chain c ON c.event_id = e.event_id"
            " WHERE c.event_id IS NULL"
        )
        if unsealed == 0:
            return sealed
        if time.monotonic() > deadline:
            raise TimeoutError(f"{unsealed} events still unsealed after {timeout} s")
        await asyncio.sleep(0.02)


async def issue_key(url: str, *, organisation: str, roles: list[auth.Role]) -> str:
    conn = await asyncpg.connect(url)
    try:
        return (await auth.issue(conn, organisation=organisation, roles=roles)).token
    finally:
        await conn.close()
