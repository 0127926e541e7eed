"""Versioned schema migrations: each service's database is brought to the release's schema by
yoyo (yoyo-migrations over psycopg 3), from plain-SQL migration files.

Where they live, in the order they apply (`-- depends:` headers name what must come first):
shared/migrations/ (the event log, in every service's database), shared/migrations/directory/
(the consumers' copy of the registry's organisations, pledges and shipments only) and
services/<service>/migrations/. A migration's id is its file name, unique across all of them
(`<folder>_<number>_<what>`): yoyo records applied ids in the database (`_yoyo_migration`).

The migration files are the only text of the schema: a change to it is a new migration file
(`<folder>_<next number>_<what>.sql`, its `-- depends:` naming the last one), never an edit to
one already released. Scratch databases (the tests' fresh databases, the audit's replay and
copies, benchmarks) are built from the same files without yoyo: `sql_of` and `source_sql` give
their SQL in the order yoyo applies them, run on the caller's connection (db.apply_schema), so
a scratch database costs one round trip per file and no bookkeeping. tests/shared/test_migrations.py
proves a database migrated by yoyo from nothing has exactly the schema of one built that way.

Concurrency: processes start together (every API and worker runs `migrate` at start-up).
Applying takes yoyo's lock, a row in `yoyo_lock`, which each other starter waits for; once it
holds the lock, a starter looks again at what is pending, so each migration runs once. The row
names the PostgreSQL backend of the session holding it (not a client's process id, which
another machine may share): a row whose session is gone, left by a process killed while it
migrated, is taken over instead of blocking every later start (yoyo's own lock needs
`yoyo break-lock` then). With nothing pending, nothing is locked at all (`migrate` reads
the applied ids on the caller's own connection): a restart takes no lock DDL would need.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import psycopg
from yoyo import exceptions as yoyo_exceptions  # type: ignore[import-untyped]
from yoyo.backends.core.postgresql import (  # type: ignore[import-untyped]
    PostgresqlPsycopgBackend,
)
from yoyo.connections import DatabaseURI, parse_uri  # type: ignore[import-untyped]
from yoyo.migrations import (  # type: ignore[import-untyped]
    MigrationList,
    default_migration_table,
    read_migrations,
    topological_sort,
)

log = logging.getLogger("twinaid.migrations")

SHARED = "package:shared:migrations"
DIRECTORY = "package:shared:migrations/directory"
# Each service's migration folders, in order. pledges and shipments consume the registry's
# organisations (shared/directory.py), so their databases hold the directory too.
SOURCES: Mapping[str, tuple[str, ...]] = {
    "registry": (SHARED, "package:services.registry:migrations"),
    "pledges": (SHARED, DIRECTORY, "package:services.pledges:migrations"),
    "shipments": (SHARED, DIRECTORY, "package:services.shipments:migrations"),
}
TABLE = default_migration_table  # _yoyo_migration: (migration_hash, migration_id, applied_at_utc)
# How long a starter waits for another one's migrations: a migration may rewrite a large table.
LOCK_TIMEOUT_S = 600.0
LOCK_POLL_S = 0.1


class UnknownService(ValueError):
    pass


class MigrationFailed(RuntimeError):
    """The database could not be reached, the lock not taken in time, or a migration failed
    (rolled back: each runs in its own transaction)."""


@dataclass(frozen=True)
class Status:
    id: str
    applied_at: datetime | None  # UTC; None: pending


_reading = threading.Lock()
_migrations: dict[str, MigrationList] = {}


def migrations_of(service: str) -> MigrationList:
    """The service's migrations in the order they apply, read and loaded once per process.

    yoyo resolves `-- depends:` through one registry of every migration it ever read (keyed by
    id), so a service's folders are read and loaded together, one service at a time."""
    if service not in SOURCES:
        raise UnknownService(
            f"no migrations for a service named {service!r} (services: {', '.join(SOURCES)})"
        )
    with _reading:
        if service not in _migrations:
            found = read_migrations(*SOURCES[service])
            for migration in found:
                migration.load()
            _migrations[service] = found
        return _migrations[service]


def in_order(service: str) -> list[Any]:
    """The service's migrations in the order yoyo applies them to an empty database (its
    `to_apply`): the sources' order and file names', a migration after what it `-- depends:` on."""
    return list(topological_sort(migrations_of(service)))


def ids_of(service: str) -> list[str]:
    return [m.id for m in in_order(service)]


def sql_of(service: str) -> tuple[str, ...]:
    """The SQL of each of the service's migrations, in the order yoyo applies them: run one
    after another on an empty database, the service's schema without yoyo (scratch databases)."""
    return tuple(m.source for m in in_order(service))


def source_sql(source: str) -> str:
    """The SQL of one folder's migrations (a source of SOURCES, such as DIRECTORY), joined in
    the order yoyo applies them: the part of the schema that folder defines."""
    service = next((s for s, sources in SOURCES.items() if source in sources), None)
    if service is None:
        raise UnknownService(f"no service migrates from {source!r}")
    return "\n".join(m.source for m in in_order(service) if m.source_dir == source)


# -- where to connect ------------------------------------------------------------------------


def uri_for_url(url: str) -> DatabaseURI:
    """yoyo's connection for a postgresql:// URL; query parameters (host=/socket, sslmode,
    sslrootcert...) reach psycopg (libpq) as connection keywords."""
    scheme = urlsplit(url).scheme
    if scheme not in {"postgresql", "postgres", "postgresql+psycopg"}:
        raise ValueError(f"not a PostgreSQL URL: {scheme}://...")
    return parse_uri("postgresql+psycopg" + url[len(scheme) :])


def uri_for_connection(conn: asyncpg.Connection) -> DatabaseURI:
    """yoyo's connection to the server, database and role an asyncpg connection reached.

    Rebuilt from what the connection itself used (asyncpg's `_addr` and `_params`: asyncpg is
    pinned, and the tests migrate through it), not from a URL in the environment, which the
    tests, the dev stack and `twinaid --database` do not set: the host actually reached (of
    several a URL may list), its port or Unix socket, the user, the password (asyncpg has
    already read it from the URL, PGPASSWORD or the passfile), the database, sslmode and
    server settings. TLS files named only in the URL's query (sslrootcert=...) are not
    recoverable from a connection: set them with PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, which
    asyncpg and libpq both read."""
    addr: Any = conn._addr
    params: Any = conn._params
    if isinstance(addr, str):  # a Unix socket: <directory>/.s.PGSQL.<port>
        directory, _, name = addr.rpartition("/")
        host, port = directory, int(name.rsplit(".", 1)[1])
    else:
        host, port = str(addr[0]), int(addr[1])
    args: dict[str, str] = {"application_name": "twinaid-migrations"}
    if params.sslmode is not None:
        args["sslmode"] = params.sslmode.name.replace("_", "-")
    if params.server_settings:
        args["options"] = " ".join(
            f"-c {key}={_libpq_escape(str(value))}" for key, value in params.server_settings.items()
        )
    password = params.password if isinstance(params.password, str) else None
    return DatabaseURI(
        scheme="postgresql+psycopg",
        username=params.user,
        password=password,
        hostname=host,
        port=port,
        database=params.database,
        args=args,
    )


def _libpq_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


# -- yoyo ------------------------------------------------------------------------------------


class _Backend(PostgresqlPsycopgBackend):  # type: ignore[misc]
    """yoyo's psycopg 3 backend, its lock held by a PostgreSQL session (see the module doc)."""

    _is_locked: bool = False

    @contextmanager
    def lock(self, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        if self._is_locked:
            yield
            return
        holder = self.execute("SELECT pg_backend_pid()").fetchone()[0]
        self._take_lock(holder, timeout)
        try:
            self._is_locked = True
            yield
        finally:
            self._is_locked = False
            self._delete_lock_row(holder)

    def _take_lock(self, holder: int, timeout: float) -> None:
        lock = self.lock_table_quoted
        deadline = time.monotonic() + timeout
        while True:
            with self.transaction():
                # a row whose session is gone was left by a process that died holding it
                self.execute(
                    f"DELETE FROM {lock} WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a"
                    f" WHERE a.pid = {lock}.pid AND a.datname = current_database())"
                )
                taken = self.execute(
                    f"INSERT INTO {lock} (locked, ctime, pid) VALUES (1, now(), :pid)"
                    " ON CONFLICT DO NOTHING RETURNING pid",
                    {"pid": holder},
                ).fetchone()
            if taken is not None:
                return
            if time.monotonic() > deadline:
                row = self.execute(f"SELECT pid, ctime FROM {lock}").fetchone()
                raise yoyo_exceptions.LockTimeout(
                    f"migrations still locked after {timeout:.0f} s by the session of"
                    f" PostgreSQL backend {row[0] if row else '?'} (since {row[1] if row else '?'})"
                )
            time.sleep(LOCK_POLL_S)

    def get_log_data(self, migration: Any = None, operation: str = "apply") -> dict[str, Any]:
        """yoyo's `_yoyo_log` row, without its two ways to fail in a container: getpass raises
        for a uid with no passwd entry, and a fully qualified host name may wait on DNS."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = f"uid {os.getuid()}"
        return {
            "id": str(uuid.uuid1()),
            "migration_id": migration.id if migration else None,
            "migration_hash": migration.hash if migration else None,
            "username": user,
            "hostname": socket.gethostname(),
            "created_at_utc": datetime.now(UTC).replace(tzinfo=None),
            "operation": operation,
        }


@contextmanager
def _backend(uri: DatabaseURI, *, writing: bool = True) -> Iterator[Any]:
    backend = _Backend(uri, TABLE)
    try:
        if writing:
            backend.init_database()  # creates yoyo_lock the first time
        yield backend
    finally:
        backend.connection.close()


def apply(uri: DatabaseURI, service: str, *, lock_timeout: float = LOCK_TIMEOUT_S) -> list[str]:
    """Apply the service's pending migrations under the lock, one transaction each; the ids
    applied (blocking: run it in a thread from async code). Raises MigrationFailed."""
    migrations = migrations_of(service)
    where = f"{service}'s database {uri.database!r} on {uri.hostname}"
    done: list[str] = []
    current = None
    try:
        with _backend(uri) as backend:
            if not backend.to_apply(migrations):
                return done
            with backend.lock(lock_timeout):
                # again, under the lock: another starter may have applied them meanwhile
                for current in backend.to_apply(migrations):
                    log.info("%s: applying migration %s", service, current.id)
                    backend.apply_one(current)
                    done.append(current.id)
    except (psycopg.Error, yoyo_exceptions.LockTimeout) as exc:
        step = f"migration {current.id} failed and was rolled back" if current else "failed"
        applied = f" (applied before it: {', '.join(done)})" if done else ""
        raise MigrationFailed(f"migrating {where}: {step}{applied}: {exc}") from exc
    return done


def status(uri: DatabaseURI, service: str) -> list[Status]:
    """Every migration of the service, with when it was applied (None: pending). Reads only."""
    migrations = migrations_of(service)
    try:
        with _backend(uri, writing=False) as backend:
            rows = (
                backend.execute(
                    f"SELECT migration_id, applied_at_utc FROM {backend.migration_table_quoted}"
                ).fetchall()
                if TABLE in backend.list_tables()
                else []
            )
    except psycopg.Error as exc:
        raise MigrationFailed(f"reading {service}'s migrations in {uri.database!r}: {exc}") from exc
    applied = {row[0]: row[1] for row in rows}
    return [Status(m.id, applied.get(m.id)) for m in migrations]


async def applied_ids(conn: asyncpg.Connection) -> set[str] | None:
    """The migration ids recorded in the database; None before yoyo ever ran there."""
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", TABLE):
        return None
    return {r["migration_id"] for r in await conn.fetch(f'SELECT migration_id FROM "{TABLE}"')}


async def pending_ids(conn: asyncpg.Connection, service: str) -> list[str]:
    applied = await applied_ids(conn) or set()
    return [i for i in ids_of(service) if i not in applied]


async def migrate(conn: asyncpg.Connection, service: str) -> list[str]:
    """Bring the database `conn` is connected to to the service's latest migration; the ids
    applied. Nothing pending (every restart): two reads on `conn`, no lock, no other connection.
    Otherwise yoyo applies them in a thread, on connections of its own to the same database."""
    known = ids_of(service)
    applied = await applied_ids(conn) or set()
    if unknown := sorted(applied - _every_known_id()):
        log.warning(
            "the database holds migrations this release does not know (a newer release"
            " migrated it): %s",
            ", ".join(unknown),
        )
    if all(i in applied for i in known):
        return []
    done = await asyncio.to_thread(apply, uri_for_connection(conn), service)
    if done:
        log.info("%s: applied migrations %s", service, ", ".join(done))
    return done


async def migrate_url(url: str, service: str) -> list[str]:
    """`migrate` for a database named by URL (the `twinaid migrate` command)."""
    return await asyncio.to_thread(apply, uri_for_url(url), service)


async def status_url(url: str, service: str) -> list[Status]:
    return await asyncio.to_thread(status, uri_for_url(url), service)


def _every_known_id() -> set[str]:
    return {i for service in SOURCES for i in ids_of(service)}


def render(statuses: Sequence[Status]) -> list[str]:
    return [
        f"{s.id:<40} {s.applied_at:%Y-%m-%d %H:%M:%S} UTC"
        if s.applied_at
        else f"{s.id:<40} pending"
        for s in statuses
    ]
