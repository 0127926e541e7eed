"""`twinaid restore` of a backup whose copies of upstream facts someone changed: a revoked
logistics key made an active registry_admin one in shipments' api_keys, and a pledge line's
quantity in shipments' pledge_lines, each with its sha256 in the manifest. A service's own log
cannot rebuild those; restored with the registry and pledges, each copy is checked against the
upstream's verified log, set to what that log says, and every difference named. Restored alone,
the verdict says the copies were not checked."""

from __future__ import annotations

import asyncio
import csv
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services import keys_admin
from services.audit import copies
from services.ops import backup as backupmod
from services.ops import restore as restoremod
from shared import db as dbmod
from shared.auth import Role
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.testing import fresh_database, seal_everything
from tests.e2e.test_backup_restore import twinaid
from tests.e2e.test_compare_exact import SCHEMAS
from tests.registry.conftest import RegistryApi, api  # noqa: F401

LINE = {
    "pledge_id": "p-1",
    "line_id": "l-1",
    "donor_id": "lille",
    "recipient_id": "kharkiv",
    "partnership_id": None,
    "item": "Generators",
    "category": "energy",
    "unit": "pieces",
    "quantity": "12",
    "weight_kg": None,
    "delivered": "0",
    "remaining": "12",
    "status": "committed",
}


async def _consume(service: str, urls: dict[str, str]) -> None:
    """What `service`'s consumers apply of its upstreams' logs (the handlers of its copies)."""
    conn = await asyncpg.connect(urls[service])
    try:
        for upstream in dict.fromkeys(c.upstream for c in copies.COPIES[service]):
            handlers = {
                t: h
                for c in copies.COPIES[service]
                if c.upstream == upstream
                for t, h in c.handlers.items()
            }
            async for event in restoremod._log_of(urls[upstream]):
                if event.event_type in handlers:
                    async with conn.transaction():
                        await handlers[event.event_type](conn, copies.incoming(upstream, event))
    finally:
        await conn.close()


@pytest.fixture
async def stack(api: RegistryApi, pg_server: str) -> AsyncIterator[dict[str, str]]:  # noqa: F811
    """The registry (lille registered), pledges (one pledge line) and shipments, sealed, each
    copy applied; a lille logistics key issued and revoked with `twinaid keys`."""
    await api.register(
        {"organisation_id": "lille", "name": "Lille", "kind": "municipality", "country": "FR"}
    )
    async with AsyncExitStack() as stack:
        urls = {"registry": api.url}
        for service in ("pledges", "shipments"):
            urls[service] = await stack.enter_async_context(
                fresh_database(pg_server, *SCHEMAS[service])
            )
        issued = await keys_admin.keys_issue(
            urls, organisation="lille", roles=[Role("logistics")], label="ERP"
        )
        await keys_admin.keys_revoke(urls, key_id=issued["key_id"])
        conn = await asyncpg.connect(urls["pledges"])
        try:
            await PostgresEventStore(conn).append(
                stream_type="pledge",
                stream_id="pledge-p-1",
                expected_version=0,
                events=[NewEvent(event_type="pledges.pledge-line-updated", data=LINE)],
                metadata=Metadata(actor="test", organisation="lille"),
                now=datetime.now(UTC),
            )
        finally:
            await conn.close()
        for url in urls.values():
            conn = await asyncpg.connect(url)
            try:
                await seal_everything(conn)
            finally:
                await conn.close()
        for service in ("pledges", "shipments"):
            await _consume(service, urls)
        yield {**urls, "key_id": issued["key_id"]}


def _forge(folder: Path, table: str, change: Any) -> None:
    """`change(row, columns)` on every row of shipments' `table` in the backup, and the file's
    sha256 in the manifest made to match."""
    path = folder / backupmod.table_path("shipments", table)
    manifest = json.loads((folder / backupmod.MANIFEST).read_text())
    columns = manifest["services"]["shipments"]["tables"][table]["columns"]
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows, table
    for row in rows:
        change(row, columns)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    manifest["files"][backupmod.table_path("shipments", table)] = backupmod.sha256_of(path)
    (folder / backupmod.MANIFEST).write_text(json.dumps(manifest))


def _admin_again(row: list[str], columns: list[str]) -> None:
    assert row[columns.index("roles")] == "{logistics}" and row[columns.index("revoked_at")]
    row[columns.index("roles")] = "{registry_admin}"
    row[columns.index("revoked_at")] = ""


def _more_generators(row: list[str], columns: list[str]) -> None:
    row[columns.index("quantity")] = "1200"
    row[columns.index("remaining")] = "1200"


async def _drop(server: str, *names: str) -> None:
    admin = await asyncpg.connect(dbmod.with_database(server, "postgres"))
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_forged_copies_are_set_to_the_upstreams_logs_and_named(
    stack: dict[str, str], pg_server: str, tmp_path: Path
) -> None:
    key_id = stack.pop("key_id")
    await asyncio.to_thread(backupmod.backup, stack, tmp_path / "bk", keys=None)
    _forge(tmp_path / "bk", "api_keys", _admin_again)
    _forge(tmp_path / "bk", "pledge_lines", _more_generators)
    names = {s: f"t_{uuid.uuid4().hex[:12]}" for s in (*stack, "alone")}
    targets = {s: dbmod.with_database(pg_server, n) for s, n in names.items()}
    try:
        out = twinaid(
            *(f"--database={s}={targets[s]}" for s in stack),
            "restore",
            str(tmp_path / "bk"),
            "--json",
            env={"DATABASE_URL": pg_server},
        )
        verdict = json.loads(out)
        assert verdict["copies"] == "checked against the upstreams' restored logs", out
        reports = {r["service"]: r for r in verdict["services"]}
        assert reports["pledges"]["copies"]["differences"] == [], out
        found = reports["shipments"]["copies"]
        assert found["checked_against"] == ["registry", "pledges"] and not found["not_checked"]
        named = {(d["table"], d["column"], d["copy_of"]) for d in found["differences"]}
        assert named == {
            ("api_keys", "roles", "registry"),
            ("api_keys", "revoked_at", "registry"),
            ("pledge_lines", "quantity", "pledges"),
            ("pledge_lines", "remaining", "pledges"),
        }, found
        assert sorted(found["rebuilt"]) == ["api_keys", "pledge_lines"]
        conn = await asyncpg.connect(targets["shipments"])
        try:
            key = await conn.fetchrow(
                "SELECT roles, revoked_at FROM api_keys WHERE key_id = $1", key_id
            )
            line = await conn.fetchrow("SELECT quantity, remaining FROM pledge_lines")
        finally:
            await conn.close()
        assert key["roles"] == ["logistics"] and key["revoked_at"] is not None
        assert (line["quantity"], line["remaining"]) == (12, 12)

        printed = twinaid(
            *(f"--database={s}={targets[s]}" for s in stack),
            "restore",
            str(tmp_path / "bk"),
            "--replace",
            env={"DATABASE_URL": pg_server},
        )
        assert 'WARNING: api_keys {"key_id": "' in printed and "registry_admin" in printed
        assert "registry's log says" in printed and "set to the log's" in printed

        # shipments alone: its copies cannot be checked, and the verdict says so
        alone = json.loads(
            twinaid(
                f"--database=shipments={targets['alone']}",
                "restore",
                str(tmp_path / "bk"),
                "--service",
                "shipments",
                "--json",
                env={"DATABASE_URL": pg_server},
            )
        )
        assert alone["copies"].startswith("NOT checked: shipments's of registry, pledges"), alone
        [report] = alone["services"]
        assert report["copies"]["not_checked"] == ["registry", "pledges"]
        assert report["copies"]["checked_against"] == []
    finally:
        await _drop(pg_server, *names.values())
