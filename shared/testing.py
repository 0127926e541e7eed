"""Helpers for tests and benchmarks: real servers, fresh databases, keys."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from shared import auth
from shared import db as dbmod
from shared.event_store import PostgresEventStore
from shared.infra import start_embedded_postgres

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


@asynccontextmanager
async def fresh_database(server_url: str, *scripts: str) -> AsyncIterator[str]:
    """A new empty database with the shared schema and `scripts` applied; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = dbmod.with_database(server_url, name)
    await dbmod.ensure_database(url)
    conn = await asyncpg.connect(url)
    try:
        await dbmod.apply_schema(conn, dbmod.schema_text("shared"), *scripts)
    finally:
        await conn.close()
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
