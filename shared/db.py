"""Connection pools, database creation, migrations and schema application."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared import migrations
from shared.errors import ServiceUnavailable

log = logging.getLogger("twinaid.db")

# What a restart or loss of the database looks like to a client: retry later, never crash.
CONNECTION_LOST: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database (query such as ?host=/socket kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def ensure_database(url: str) -> None:
    """Create the database named in `url` if it does not exist yet."""
    name = database_name(url)
    admin = await asyncpg.connect(with_database(url, "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await admin.close()


def schema_text(package: str) -> str:
    """The schema `package` defines, as the SQL of its migration folder (<package>/migrations/:
    "shared" the event log's, "services.pledges" the pledges' own tables) in the order yoyo
    applies it: what a scratch database applies (apply_schema), after the folders it depends on
    (shared/migrations.py SOURCES)."""
    return migrations.source_sql(f"package:{package}:migrations")


async def migrate(conn: asyncpg.Connection, service: str, *scripts: str) -> list[str]:
    """Bring `service`'s database to the current release's schema: what every process of the
    service (API, worker) and the commands run at start-up. The service's versioned migrations
    (shared/migrations.py) apply what is pending, under their lock, on connections of their
    own to the database `conn` reached; with nothing pending (every restart) it only reads.
    Returns the migration ids applied.

    `scripts`, the caller's schema DDL, are not run here: they are the same migrations' SQL
    (schema_text), what scratch databases are built from (apply_schema), with no bookkeeping.
    """
    del scripts
    return await migrations.migrate(conn, service)


async def apply_schema(conn: asyncpg.Connection, *scripts: str) -> None:
    """Apply DDL scripts once per distinct set, in one transaction: how a scratch database is
    built from its migrations' SQL (schema_text, migrations.sql_of) without yoyo. Applied again with
    the same scripts it takes no lock at all (DDL takes exclusive table locks)."""
    digest = hashlib.sha256("\x00".join(scripts).encode()).hexdigest()
    if await conn.fetchval("SELECT to_regclass('twinaid_schema_applied') IS NOT NULL") and (
        await conn.fetchval("SELECT true FROM twinaid_schema_applied WHERE digest = $1", digest)
    ):
        return
    # Several processes may start at once: serialise DDL with a transaction-level lock.
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(7424001)")
        for script in scripts:
            if _has_statements(script):
                await conn.execute(script)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS twinaid_schema_applied"
            " (digest text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute(
            "INSERT INTO twinaid_schema_applied (digest) VALUES ($1) ON CONFLICT DO NOTHING", digest
        )


def _has_statements(script: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in script.splitlines())


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    """What a connection gets on its way back to the pool, beyond what asyncpg always does
    (roll back an open transaction, drop listener callbacks): nothing. asyncpg's default
    (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) costs a round trip
    per request, and no pooled connection ever carries session state: locks are
    transaction-level (`pg_advisory_xact_lock`), cursors live inside transactions, LISTEN and
    session locks use connections of their own (shared/outbox.py, shared/notify.py). Keep it
    so: never `SET` (only `SET LOCAL`), `LISTEN` or take a session lock on a pooled connection.
    """


ACQUIRE_TIMEOUT_S = 10.0


class Database:
    """The pool of one service. Use cases run in `transaction()`, reads in `connection()`."""

    def __init__(self, url: str, *, max_size: int = 20) -> None:
        self.url = url
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=self.max_size,
            command_timeout=30,
            reset=_no_session_reset,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "Database.open() was not called"
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self.pool
        try:
            # asyncio.timeout, not acquire(timeout=): asyncpg wraps a timed acquire in
            # wait_for, a task of its own per request on the write path
            async with asyncio.timeout(ACQUIRE_TIMEOUT_S):
                conn = await pool.acquire()
        except TimeoutError as exc:
            # every connection is busy: overload, not an outage
            raise ServiceUnavailable("the service is busy: retry shortly") from exc
        except (
            OSError,
            asyncpg.CannotConnectNowError,
            asyncpg.ConnectionDoesNotExistError,
        ) as exc:
            raise ServiceUnavailable("the database is not reachable") from exc
        try:
            yield conn
        finally:
            try:
                await pool.release(conn)
            except CONNECTION_LOST as exc:
                # the pool has terminated the broken connection; do not mask what happened
                log.warning("dropped a broken database connection: %r", exc)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn
