"""`twinaid restore`: a backup (services/ops/backup.py) back into a server, then proof that it
holds the same history.

Each service's database is brought to the release's schema by the service's own set-up
(`migrate`), then every table is loaded with COPY in one transaction. A target that holds data
is refused, unless told to replace it (the log is append-only: replacing drops the database).

Events keep everything the chain seals; only `tx_id`, the writing transaction's id (which the
sealer orders by, and which belongs to the server that wrote it), is renumbered: the restored
server's transaction ids start lower than the old ones, and a new write must sort after
everything restored, or the sealer would never reach it. Sealed events (and the sealer's last
one) take ids 1 and 2, events not yet sealed at the backup 3, 4, ... in their order, and the
server's transaction counter is moved past them.

Then each log is verified (shared/sealer.py verify, with the pinned keys and against the
checkpoints kept: the backup's and any given) and its head, rows and counts compared with the
manifest.

Last, every read model (the tables the service's projections derive from its log, snapshots
among them) is rebuilt from the restored log, as `twinaid rebuild` does: whoever could rewrite
the backup's files could have changed a read model (a convoy said delivered) along with its
sha256 in the manifest, and nothing signs a read model; the log is what the pinned keys and
the checkpoints vouch for. The rows the backup held are compared with the rebuilt ones first,
and each table where they differed is reported (such a backup was changed, or its source
database was).

Nor can a service's own log rebuild its copies of upstream facts (the keys and the directory
the registry's events give, the pledge lines pledges' give: services/audit/copies.py). Those
are checked against the upstream's restored and verified log when the upstream is restored in
the same run, as `twinaid audit compare` checks them: a copy that differs is set to the one
rebuilt from the upstream's log, each difference reported (a forged key in a backup is not
restored as it was). A copy matched on a key of its own (pledges' deliveries, a read model of
pledges' log) cannot be set so: a difference there is reported and makes the restore differ.
A copy whose upstream is not restored with it is not checked, and the verdict says so.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from services import cli_databases
from services.audit import copies, replay
from services.ops.backup import (
    APPEND_ONLY,
    CHECKPOINTS,
    FORMAT,
    MANIFEST,
    PINS,
    is_archive,
    key_path,
    schema_scripts,
    sha256_of,
    table_path,
    tables,
)
from shared import db as dbmod
from shared import devstack_keys
from shared import projections as proj
from shared.event_store import PostgresEventStore
from shared.events import RecordedEvent
from shared.keys import KeyRing


class Refused(Exception):
    """The restore would lose or mix data, or the backup is not whole: nothing was written."""


@contextlib.contextmanager
def opened(source: Path) -> Iterator[Path]:
    """The backup's folder: `source` itself, or a .tar.gz unpacked in a temporary folder."""
    if not source.exists():
        raise Refused(f"no backup at {source}")
    if not is_archive(source):
        yield source
        return
    folder = Path(tempfile.mkdtemp(prefix="twinaid-restore-"))
    try:
        try:
            with tarfile.open(source, "r:gz") as tar:
                tar.extractall(folder, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            # a cut, damaged or foreign file: nothing was loaded yet
            why = str(exc) or type(exc).__name__
            raise Refused(f"{source} is not a whole .tar.gz backup: {why}") from None
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_manifest(folder: Path, services: Sequence[str] | None) -> dict[str, Any]:
    """The manifest, once every file it lists that is present has its sha256 and every
    database file of `services` (None: all) is present; Refused naming what is wrong."""
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise Refused(f"{folder / MANIFEST} is not a readable manifest: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise Refused(f"{folder} is not a {FORMAT} backup (format {manifest.get('format')!r})")
    services = services or list(manifest["services"])
    unknown = [s for s in services if s not in manifest["services"]]
    if unknown:
        raise Refused(f"the backup holds no {', '.join(unknown)}")
    needed = {table_path(s, t) for s in services for t in manifest["services"][s]["tables"]}
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.exists():
            if name in needed:
                raise Refused(f"{name} is missing from the backup")
            continue  # a key or the checkpoints, kept apart
        if sha256_of(path) != digest:
            raise Refused(f"{name} does not match its sha256 in the manifest: changed since")
    return manifest


async def holds_data(url: str) -> str | None:
    """The first table of the database at `url` that holds data, if it exists and one does
    (the row the schema set-up puts in sealer_state is not data)."""
    admin = await asyncpg.connect(dbmod.with_database(url, "postgres"))
    try:
        name = dbmod.database_name(url)
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return None
    finally:
        await admin.close()
    conn = await asyncpg.connect(url)
    try:
        for table in await tables(conn):
            query = f'SELECT EXISTS (SELECT 1 FROM "{table}")'
            if table == "sealer_state":
                query = "SELECT EXISTS (SELECT 1 FROM sealer_state WHERE position > 0)"
            if await conn.fetchval(query):
                return table
    finally:
        await conn.close()
    return None


async def drop_database(url: str) -> None:
    admin = await asyncpg.connect(dbmod.with_database(url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbmod.database_name(url)}" WITH (FORCE)')
    finally:
        await admin.close()


def _columns(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


# tx_id renumbered (see the module's docstring): $1 is the sealer's last transaction
_TX_ID = """CASE WHEN r.tx_id < $1::text::xid8 THEN '1'::xid8
                 WHEN r.tx_id = $1::text::xid8 THEN '2'::xid8
                 ELSE (2 + dense_rank() OVER (PARTITION BY r.tx_id > $1::text::xid8
                                              ORDER BY r.tx_id))::text::xid8 END"""


async def _load_events(conn: asyncpg.Connection, path: Path, columns: Sequence[str]) -> int:
    """Load the events through a scratch table, renumbering tx_id; returns the highest
    transaction id given."""
    last_tx = await conn.fetchval("SELECT last_tx::text FROM sealer_state") or "0"
    await conn.execute(
        "CREATE TEMP TABLE twinaid_restored_events ON COMMIT DROP AS"
        f" SELECT {_columns(columns)} FROM events WITH NO DATA"
    )
    await conn.copy_to_table(
        "twinaid_restored_events", source=str(path), columns=list(columns), format="csv"
    )
    chosen = ", ".join(_TX_ID if c == "tx_id" else f'r."{c}"' for c in columns)
    await conn.execute(
        f"INSERT INTO events ({_columns(columns)}) OVERRIDING SYSTEM VALUE"
        f" SELECT {chosen} FROM twinaid_restored_events r ORDER BY r.id",
        last_tx,
    )
    await conn.execute("UPDATE sealer_state SET last_tx = '2'")
    later = await conn.fetchval(
        "SELECT count(DISTINCT tx_id) FROM twinaid_restored_events WHERE tx_id > $1::text::xid8",
        last_tx,
    )
    return 2 + int(later)


async def load_service(
    service: str, url: str, folder: Path, entry: Mapping[str, Any]
) -> dict[str, int]:
    """Schema, then every table of the backup in one transaction; returns rows per table."""
    await dbmod.ensure_database(url)
    conn = await asyncpg.connect(url)
    try:
        await dbmod.migrate(conn, service, *schema_scripts(service))
        present = await tables(conn)
        # a table this release no longer has is refused if it held rows, else passed over
        missing = [t for t in entry["tables"] if t not in present]
        lost = [t for t in missing if entry["tables"][t]["rows"]]
        if lost:
            raise Refused(f"{service}: this release has no table {', '.join(lost)}")
        loaded: dict[str, int] = {}
        highest_tx = 0
        async with conn.transaction():
            # events last: their transaction ids are renumbered from the restored sealer_state
            wanted = [t for t in entry["tables"] if t not in missing]
            for table in sorted(wanted, key=lambda t: t == "events"):
                columns = entry["tables"][table]["columns"]
                path = folder / table_path(service, table)
                if table not in APPEND_ONLY:
                    await conn.execute(f'DELETE FROM "{table}"')  # what the set-up put there
                if table == "events":
                    highest_tx = await _load_events(conn, path, columns)
                else:
                    await conn.copy_to_table(
                        table, source=str(path), columns=list(columns), format="csv"
                    )
                loaded[table] = int(await conn.fetchval(f'SELECT count(*) FROM "{table}"'))
            for sequence, value in entry["sequences"].items():
                await conn.execute("SELECT setval($1::regclass, $2, true)", sequence, value)
        # new transactions must come after every restored one (one id each)
        while int(await conn.fetchval("SELECT pg_current_xact_id()")) <= highest_tx:
            pass
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return loaded


async def verify_service(
    service: str,
    url: str,
    entry: Mapping[str, Any],
    *,
    loaded: Mapping[str, int],
    pins: Mapping[str, Sequence[str]],
    held: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The restored log verified, and compared with the manifest."""
    conn = await asyncpg.connect(url)
    try:
        verdict = await PostgresEventStore(conn).verify(
            held_checkpoints=held, service=service, keys=KeyRing.pinned(pins)
        )
    finally:
        await conn.close()
    head = entry["head"]
    expected = {t: int(v["rows"]) for t, v in entry["tables"].items()}
    rows_differ = {
        t: {"backup": n, "restored": loaded.get(t)}
        for t, n in expected.items()
        if loaded.get(t, 0) != n
    }
    head_matches = (
        verdict.head_position == head["position"] and verdict.head_hash.hex() == head["hash"]
    )
    return {
        "service": service,
        "events": loaded.get("events", 0),
        "rows": dict(loaded),
        "tables_passed_over": sorted(set(expected) - set(loaded)),
        "rows_differ": rows_differ,
        "head": {"position": verdict.head_position, "hash": verdict.head_hash.hex()},
        "manifest_head": dict(head),
        "head_matches": head_matches,
        "held_checkpoints": len(held),
        "chain": verdict.as_dict(),
        "ok": verdict.intact and head_matches and not rows_differ,
    }


async def rebuild_read_models(service: str, url: str) -> dict[str, Any]:
    """Rebuild `service`'s read models from its restored log; returns the events replayed,
    the rebuilt rows per table and, for each table whose backed-up rows differed from the
    rebuilt ones, how many rows differed."""
    projections = cli_databases.projections_of(service)
    tables = [t for p in projections for t in p.tables]
    # the backup's rows, kept in temporary tables of their own session (they hide the real
    # ones there) until compared with the rebuilt ones
    backed_up = await replay.reader(url)
    try:
        for table in tables:
            await backed_up.execute(f'CREATE TEMP TABLE "{table}" AS TABLE "{table}"')
        conn = await asyncpg.connect(url)  # writes with the codecs the services use
        try:
            replayed = await proj.rebuild(conn, projections)
        finally:
            await conn.close()
        rebuilt = await replay.reader(url)
        try:
            differed: dict[str, int] = {}
            for table in tables:
                found = await replay.diff_table(backed_up, rebuilt, {}, table)
                rows = {json.dumps(d["key"], sort_keys=True, default=str) for d in found}
                if rows:
                    differed[table] = len(rows)
            counts = {t: int(await rebuilt.fetchval(f'SELECT count(*) FROM "{t}"')) for t in tables}
        finally:
            await rebuilt.close()
    finally:
        await backed_up.close()
    return {"events_replayed": replayed, "rows": counts, "differed_from_backup": differed}


async def _log_of(url: str) -> AsyncIterator[RecordedEvent]:
    """The chained events of the database at `url`, in position order."""
    conn = await asyncpg.connect(url)
    try:
        after = 0
        while events := await PostgresEventStore(conn).read_all(after=after, limit=1000):
            for event in events:
                yield event
            after = events[-1].position or after
    finally:
        await conn.close()


async def check_copies(
    service: str, urls: Mapping[str, str], pins: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """`service`'s copies of upstream facts checked against each upstream restored in this run
    (`urls`), and set to the rebuilt ones where they differ (copies.compare with repair):
    the upstreams checked against and not, the differences, the tables rebuilt, and whether
    every difference was repaired."""
    upstreams = list(dict.fromkeys(c.upstream for c in copies.COPIES.get(service, ())))
    checked = [u for u in upstreams if u in urls]
    result: dict[str, Any] = {
        "checked_against": checked,
        "not_checked": [u for u in upstreams if u not in urls],
        "rows": {},
        "differences": [],
        "rebuilt": [],
        "ok": True,
    }
    if not checked:
        return result
    found = await copies.compare(
        service,
        live_url=urls[service],
        scratch_server=urls[service],
        events_of=lambda upstream: _log_of(urls[upstream]),
        pins=pins,
        upstreams=checked,
        repair=True,
    )
    result["rows"] = found.rows
    result["differences"] = found.differences
    result["rebuilt"] = found.repaired
    result["ok"] = all(d["table"] in found.repaired for d in found.differences)
    return result


def copies_verdict(reports: Sequence[Mapping[str, Any]]) -> str:
    """What the restore says of the copies of upstream facts: checked, or which were not."""
    missing = [
        f"{r['service']}'s of {', '.join(r['copies']['not_checked'])}"
        for r in reports
        if r["copies"]["not_checked"]
    ]
    if missing:
        return (
            "NOT checked: "
            + "; ".join(missing)
            + " (not restored in this run: restore the upstreams with it to check them)"
        )
    return "checked against the upstreams' restored logs"


def held_checkpoints(folder: Path, given: Path | None) -> list[dict[str, Any]]:
    """The backup's checkpoints (if still with it) and those in `given` (a JSON list, or
    {"checkpoints": [...]} as POST /v1/audit/verify takes)."""
    held: list[dict[str, Any]] = []
    for path in (folder / CHECKPOINTS, given):
        if path is None or (path == folder / CHECKPOINTS and not path.exists()):
            continue
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise Refused(f"the checkpoints in {path} are not readable: {exc}") from None
        found = found.get("checkpoints", []) if isinstance(found, dict) else found
        if not isinstance(found, list) or not all(isinstance(c, dict) for c in found):
            raise Refused(f"{path} holds no list of checkpoints")
        held += [c for c in found if c not in held]
    return held


def planned_keys(
    folder: Path, manifest: Mapping[str, Any], services: Sequence[str], into: Path, *, replace: bool
) -> list[tuple[Path, Path]]:
    """(backed-up file, where it goes) for each key of `services` and the pins; Refused if one
    is not with the backup or would replace another key without `replace`."""
    wanted = [
        (folder / key_path(s), devstack_keys.signing_key_file(into, s))
        for s in services
        if manifest["services"][s].get("signing_key")
    ]
    if (folder / PINS).exists():
        wanted.append((folder / PINS, devstack_keys.pins_file(into)))
    for source, target in wanted:
        if not source.exists():
            raise Refused(f"{source.name} is not with the backup (kept apart?): install it by hand")
        if target.exists() and target.read_bytes() != source.read_bytes() and not replace:
            raise Refused(f"{target} holds another key: pass --replace to overwrite it")
    return wanted


def install_keys(planned: Sequence[tuple[Path, Path]]) -> list[str]:
    for source, target in planned:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(mode=0o600)
        target.chmod(0o600)
        shutil.copyfile(source, target)
    return [str(target) for _, target in planned]


async def restore(
    urls: Mapping[str, str],
    folder: Path,
    manifest: Mapping[str, Any],
    *,
    replace: bool,
    pins: Mapping[str, Sequence[str]],
    held: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Load every service of `urls`, verify it, rebuild its read models from its log and check
    its copies of upstream facts against the upstreams restored with it (check_copies);
    Refused before writing anything if a target holds data (without `replace`)."""
    for service, url in urls.items():
        table = await holds_data(url)
        if table is not None and not replace:
            raise Refused(
                f"{service}'s database {dbmod.database_name(url)} is not empty (table {table}"
                " holds rows): restore into a new database, or pass --replace to drop it first"
            )
    reports = []
    for service, url in urls.items():
        entry = manifest["services"][service]
        started = time.monotonic()
        if replace:
            await drop_database(url)
        loaded = await load_service(service, url, folder, entry)
        loaded_at = time.monotonic()
        mine = [c for c in held if c.get("service") == service]
        report = await verify_service(service, url, entry, loaded=loaded, pins=pins, held=mine)
        verified_at = time.monotonic()
        report["read_models"] = await rebuild_read_models(service, url)
        report["seconds_load"] = round(loaded_at - started, 3)
        report["seconds_verify"] = round(verified_at - loaded_at, 3)
        report["seconds_rebuild"] = round(time.monotonic() - verified_at, 3)
        reports.append(report)
    # once every log is in: a copy is checked against its upstream's restored log
    for report in reports:
        started = time.monotonic()
        report["copies"] = await check_copies(report["service"], urls, pins)
        report["seconds_copies"] = round(time.monotonic() - started, 3)
        report["ok"] = report["ok"] and report["copies"]["ok"]
    return reports
