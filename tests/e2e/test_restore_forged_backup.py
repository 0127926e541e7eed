"""`twinaid restore` of a backup someone changed: a read model rewritten along with its sha256
in the manifest is rebuilt from the verified log (and reported), and a cut or foreign .tar.gz
is one clean refusal (exit 2) with nothing created."""

from __future__ import annotations

import asyncio
import csv
import json
import uuid
from pathlib import Path

import asyncpg
import pytest

from services.ops import backup as backupmod
from shared import db as dbmod
from shared.testing import seal_everything
from tests.e2e.test_backup_restore import twinaid
from tests.shipments.conftest import ShipmentsApi, api, settings_overrides  # noqa: F401


async def _backed_up(api: ShipmentsApi, target: Path) -> None:  # noqa: F811
    await api.plan("c1")
    conn = await asyncpg.connect(api.url)
    try:
        await seal_everything(conn)
    finally:
        await conn.close()
    await asyncio.to_thread(backupmod.backup, {"shipments": api.url}, target, keys=None)


def _forge_delivered(folder: Path) -> None:
    """What an attacker who can rewrite the backup does: c1 said delivered (column and
    document), and the file's sha256 in the manifest made to match."""
    path = folder / backupmod.table_path("shipments", "convoys")
    manifest = json.loads((folder / backupmod.MANIFEST).read_text())
    columns = manifest["services"]["shipments"]["tables"]["convoys"]["columns"]
    status, document = columns.index("status"), columns.index("document")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert [r[status] for r in rows] == ["planned"]
    for row in rows:
        row[status] = "delivered"
        row[document] = json.dumps({**json.loads(row[document]), "status": "delivered"})
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    manifest["files"][backupmod.table_path("shipments", "convoys")] = backupmod.sha256_of(path)
    (folder / backupmod.MANIFEST).write_text(json.dumps(manifest))


async def _exists(server: str, name: str) -> bool:
    admin = await asyncpg.connect(dbmod.with_database(server, "postgres"))
    try:
        return bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await admin.close()


async def test_a_read_model_changed_in_the_backup_is_rebuilt_from_the_log_and_reported(
    api: ShipmentsApi,  # noqa: F811
    pg_server: str,
    tmp_path: Path,
) -> None:
    await _backed_up(api, tmp_path / "b")
    _forge_delivered(tmp_path / "b")
    target = dbmod.with_database(pg_server, f"t_{uuid.uuid4().hex[:12]}")
    try:
        out = twinaid(
            f"--database=shipments={target}",
            "restore",
            str(tmp_path / "b"),
            "--service",
            "shipments",
            "--json",
            env={"DATABASE_URL": pg_server},
        )
        verdict = json.loads(out)
        # the log is whole and the same: the history is; what it derives is rebuilt from it
        assert verdict["ok"] and verdict["read_models"] == "rebuilt from the log", out
        [report] = verdict["services"]
        assert report["read_models"]["differed_from_backup"] == {"convoys": 1}, report
        assert report["read_models"]["rows"]["convoys"] == 1
        conn = await asyncpg.connect(target)
        try:
            row = await conn.fetchrow("SELECT status, document FROM convoys")
        finally:
            await conn.close()
        assert row["status"] == "planned"
        assert json.loads(row["document"])["status"] == "planned"
        printed = twinaid(
            f"--database=shipments={target}",
            "restore",
            str(tmp_path / "b"),
            "--service",
            "shipments",
            "--replace",
            env={"DATABASE_URL": pg_server},
        )
        assert "WARNING: convoys: 1 rows of the backup differed from what the log says" in printed
        assert "read models rebuilt from the log" in printed.splitlines()[-1]
    finally:
        conn = await asyncpg.connect(dbmod.with_database(pg_server, "postgres"))
        try:
            await conn.execute(
                f'DROP DATABASE IF EXISTS "{dbmod.database_name(target)}" WITH (FORCE)'
            )
        finally:
            await conn.close()


async def test_an_untouched_backup_rebuilds_the_same_read_models(
    api: ShipmentsApi,  # noqa: F811
    pg_server: str,
    tmp_path: Path,
) -> None:
    await _backed_up(api, tmp_path / "b")
    name = f"t_{uuid.uuid4().hex[:12]}"
    target = dbmod.with_database(pg_server, name)
    try:
        out = twinaid(
            f"--database=shipments={target}",
            "restore",
            str(tmp_path / "b"),
            "--service",
            "shipments",
            "--json",
            env={"DATABASE_URL": pg_server},
        )
        [report] = json.loads(out)["services"]
        assert report["ok"] and report["read_models"]["differed_from_backup"] == {}, report
        assert report["read_models"]["events_replayed"] == report["events"]
    finally:
        conn = await asyncpg.connect(dbmod.with_database(pg_server, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.mark.parametrize("damage", ["cut", "junk"])
async def test_a_cut_or_foreign_archive_is_one_clean_refusal_and_nothing_is_created(
    api: ShipmentsApi,  # noqa: F811
    pg_server: str,
    tmp_path: Path,
    damage: str,
) -> None:
    archive = tmp_path / "b.tar.gz"
    await _backed_up(api, archive)
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2] if damage == "cut" else b"not a backup\n" * 40)
    name = f"t_{uuid.uuid4().hex[:12]}"
    refused = twinaid(
        f"--database=shipments={dbmod.with_database(pg_server, name)}",
        "restore",
        str(archive),
        env={"DATABASE_URL": pg_server},
        expect=2,
    )
    assert refused.strip().splitlines() == [
        line for line in refused.strip().splitlines() if "restore refused" in line
    ]
    assert len(refused.strip().splitlines()) == 1, refused
    assert f"{archive} is not a whole .tar.gz backup" in refused
    assert "bug" not in refused and "Traceback" not in refused
    assert not await _exists(pg_server, name)
