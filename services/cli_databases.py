"""Where the services' databases are (--database, DATABASE_URL, the config file, else the dev
stack's server), and a connection to one with its schema applied, for the `twinaid` commands
that open them."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from services.cli_support import Failed
from services.registry import projections as registry_projections
from shared import db as dbmod
from shared import projections as proj
from shared.infra import start_embedded_postgres
from shared.settings import SERVICES, database_for

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url(env: Mapping[str, str], configured: str | None = None) -> str:
    """DATABASE_URL, else the config file's database_url, else the dev stack's server."""
    if env.get("DATABASE_URL"):
        return env["DATABASE_URL"]
    if configured:
        return configured
    embedded = Path(env.get("TWINAID_DATA_DIR", ".data")) / "pg"
    if (embedded / "PG_VERSION").exists():
        return start_embedded_postgres(embedded)
    return DEFAULT_SERVER


def database_urls(
    overrides: Sequence[str], env: Mapping[str, str], configured: str | None = None
) -> dict[str, str]:
    """Every service's database URL; Failed on a malformed override."""
    given: dict[str, str] = {}
    for item in overrides:
        service, sep, url = item.partition("=")
        if not sep or service not in SERVICES or not url:
            raise Failed(
                f"--database wants SERVICE=URL with SERVICE one of {', '.join(SERVICES)};"
                f" got {item!r}",
                code=2,
            )
        given[service] = url
    if len(given) < len(SERVICES):
        server = server_url(env, configured)
        for service in SERVICES:
            given.setdefault(service, dbmod.with_database(server, database_for(service)))
    return given


def projections_of(service: str) -> tuple[proj.Projection, ...]:
    if service == "registry":
        return tuple(registry_projections.ALL)
    module = f"services.{service}.projections"
    if importlib.util.find_spec(module) is None:
        return ()
    return tuple(getattr(importlib.import_module(module), "ALL", ()))


async def connect(service: str, url: str) -> asyncpg.Connection:
    """A connection to a service database with its schema applied (the services do the same)."""
    await dbmod.ensure_database(url)
    conn = await asyncpg.connect(url)
    await dbmod.migrate(
        conn, service, dbmod.schema_text("shared"), dbmod.schema_text(f"services.{service}")
    )
    return conn


@asynccontextmanager
async def connected(service: str, url: str) -> AsyncIterator[asyncpg.Connection]:
    """`connect`, the connection closed after however the commands' work ends: one place for
    the open / work / close each command on one database repeats."""
    conn = await connect(service, url)
    try:
        yield conn
    finally:
        await conn.close()
