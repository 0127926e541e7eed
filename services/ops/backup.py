"""`twinaid backup`: each service's database, signing key and latest signed checkpoints.

No PostgreSQL client tools: every table of a service's database goes out as CSV through COPY
(asyncpg), inside one read-only REPEATABLE READ transaction, so the tables of a service are one
consistent snapshot. The schema itself is not dumped: a restore brings it back with the
service's own set-up (`shared/db.py migrate`), as every process of the service does.

The backup is a directory (or a .tar.gz of one):

    manifest.json                 when, services, per-table rows and columns, sequences, each
                                  log's head (position and hash), the checkpoint positions,
                                  the sha256 of every other file
    databases/<service>/<table>.csv
    checkpoints.json              the latest signed checkpoints of every log, in the form
                                  `twinaid audit --checkpoints` and POST /v1/audit/verify take
    keys/<service>.ed25519        each service's signing key (SIGNING_KEY_FILE), unless
    keys/trusted_keys.json        --without-keys; and the pinned public keys (TRUSTED_KEYS)

Keys and checkpoints are meant to be kept apart from the database backups (README, "Backup and
restore"): the manifest still lists their sha256 once they are moved away.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from shared import db as dbmod
from shared import service_schema, signing

FORMAT = "twinaid-backup/1"
MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints.json"
PINS = "keys/trusted_keys.json"
# What the schema set-up keeps for itself (migrate writes it again on the restored database).
BOOKKEEPING = re.compile(r"^(twinaid_schema_applied|_?yoyo.*|.*migration.*)$")
APPEND_ONLY = ("events", "event_chain")
DEFAULT_CHECKPOINTS = 20


def schema_scripts(service: str) -> list[str]:
    """The DDL `service`'s API and worker hand to migrate (shared/service_schema.py), after the
    shared tables."""
    return [dbmod.schema_text("shared"), *service_schema.scripts(service)]


def key_path(service: str) -> str:
    return f"keys/{service}.ed25519"


def table_path(service: str, table: str) -> str:
    return f"databases/{service}/{table}.csv"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_archive(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz"))


async def tables(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """The service's tables (schema bookkeeping aside) and the columns a COPY writes: every
    column but generated ones, in table order."""
    rows = await conn.fetch(
        """
        SELECT c.relname AS name, array_agg(a.attname::text ORDER BY a.attnum) AS columns
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
          AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
        GROUP BY c.relname ORDER BY c.relname
        """
    )
    return {r["name"]: list(r["columns"]) for r in rows if not BOOKKEEPING.match(r["name"])}


def copied_rows(status: str) -> int:
    """The row count of a COPY command tag (`COPY 42`)."""
    return int(status.rsplit(" ", 1)[-1])


@dataclass
class ServiceBackup:
    service: str
    database: str
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)
    head_position: int = 0
    head_hash: str = ""
    events: int = 0
    unsealed: int = 0
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    signing_key: str | None = None
    public_key: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "tables": self.tables,
            "sequences": self.sequences,
            "head": {"position": self.head_position, "hash": self.head_hash},
            "events": self.events,
            "unsealed_events": self.unsealed,
            "checkpoint_positions": [int(c["position"]) for c in self.checkpoints],
            "signing_key": self.signing_key,
            "public_key": self.public_key,
        }


async def dump_service(
    service: str, url: str, folder: Path, *, checkpoints: int = DEFAULT_CHECKPOINTS
) -> ServiceBackup:
    """Write every table of `service`'s database under `folder`/databases/`service`/."""
    done = ServiceBackup(service, dbmod.database_name(url))
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for table, columns in (await tables(conn)).items():
                status = await conn.copy_from_table(
                    table,
                    columns=columns,
                    output=str(folder / table_path(service, table)),
                    format="csv",
                )
                done.tables[table] = {"rows": copied_rows(status), "columns": columns}
            done.sequences = {
                r["name"]: int(r["last_value"])
                for r in await conn.fetch(
                    "SELECT sequencename AS name, last_value FROM pg_sequences"
                    " WHERE schemaname = current_schema() AND last_value IS NOT NULL"
                )
            }
            if "events" in done.tables and "sealer_state" in done.tables:
                await _log_state(conn, done, checkpoints)
    finally:
        await conn.close()
    return done


async def _log_state(conn: asyncpg.Connection, done: ServiceBackup, checkpoints: int) -> None:
    state = await conn.fetchrow("SELECT position, hash FROM sealer_state")
    done.head_position = int(state["position"])
    done.head_hash = bytes(state["hash"]).hex()
    done.events = done.tables["events"]["rows"]
    done.unsealed = int(
        await conn.fetchval(
            "SELECT count(*) FROM events e"
            " WHERE NOT EXISTS (SELECT 1 FROM event_chain c WHERE c.event_id = e.event_id)"
        )
    )
    rows = await conn.fetch(
        "SELECT e.data::text AS data FROM event_chain c JOIN events e USING (event_id)"
        " WHERE e.event_type = $1 ORDER BY c.position DESC LIMIT $2",
        signing.CHECKPOINT,
        checkpoints,
    )
    done.checkpoints = [json.loads(r["data"]) for r in reversed(rows)]


@dataclass(frozen=True)
class Keys:
    """Where each service's signing key is kept, and the pins (TRUSTED_KEYS' JSON text)."""

    files: Mapping[str, Path]
    pins: str | None


def copy_keys(keys: Keys, folder: Path, services: Sequence[str]) -> dict[str, str]:
    """Copy the key files (mode 600) and the pins; returns each copied key's public key."""
    (folder / "keys").mkdir(parents=True, exist_ok=True)
    public = {}
    for service in services:
        source = keys.files.get(service)
        if source is None:
            continue
        signer = signing.KeyFile(source).current()  # never creates one
        if signer is None:
            raise SystemExit(f"twinaid: no usable signing key for {service} in {source}")
        public[service] = signer.public_key
        target = folder / key_path(service)
        target.touch(mode=0o600)
        shutil.copyfile(source, target)
    if keys.pins is not None:
        (folder / PINS).write_text(keys.pins)
    return public


async def dump_all(
    urls: Mapping[str, str], folder: Path, *, checkpoints: int
) -> list[ServiceBackup]:
    return [await dump_service(s, url, folder, checkpoints=checkpoints) for s, url in urls.items()]


def backup(
    urls: Mapping[str, str],
    target: Path,
    *,
    keys: Keys | None,
    checkpoints: int = DEFAULT_CHECKPOINTS,
) -> dict[str, Any]:
    """Back up every service of `urls` into `target` (a new directory, or a .tar.gz file);
    returns the manifest."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise SystemExit(f"twinaid: {target} exists and is not an empty directory")
    started = time.monotonic()
    archive = is_archive(target)
    folder = Path(tempfile.mkdtemp(prefix="twinaid-backup-")) if archive else target
    try:
        for service in urls:
            (folder / "databases" / service).mkdir(parents=True, exist_ok=True)
        dumped = asyncio.run(dump_all(urls, folder, checkpoints=checkpoints))
        held = [c for d in dumped for c in d.checkpoints]
        (folder / CHECKPOINTS).write_text(json.dumps(held, indent=1) + "\n")
        public = copy_keys(keys, folder, list(urls)) if keys is not None else {}
        for d in dumped:
            d.signing_key = key_path(d.service) if d.service in public else None
            d.public_key = public.get(d.service)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            "services": {d.service: d.as_dict() for d in dumped},
            "files": {p.relative_to(folder).as_posix(): sha256_of(p) for p in files},
            "seconds": round(time.monotonic() - started, 3),
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if archive:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(target, "w:gz") as tar:
                for path in sorted(folder.iterdir()):
                    tar.add(path, arcname=path.name)
    finally:
        if archive:
            shutil.rmtree(folder, ignore_errors=True)
    return manifest
