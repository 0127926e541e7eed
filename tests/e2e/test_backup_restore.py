"""The backup and restore drill, end to end.

Three services run as processes on fresh databases of the test server (APIs, workers, the
test broker), loaded with the demo data; `twinaid backup` writes them, with the signing key and
the latest signed checkpoints, to a .tar.gz while they run. The stack is stopped (the machine is
lost), and `twinaid restore` brings the backup into a NEW embedded PostgreSQL, the databases
named as a deployment names them. Then: each log verifies (the API's verify, and against the
checkpoints the backup kept), `twinaid audit compare` finds no difference, and workers resumed
on the restored databases and the same broker seal, publish and apply a write made after the
restore. The drill's figures go to restore_drill.json in the test's folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.ops import backup as backupmod
from shared import db as dbmod
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.infra import EmbeddedPostgres
from shared.testing import fresh_database, seal_everything
from tests.conftest import SESSION_KEY_FILE
from tests.e2e.processes import Stack
from tests.e2e.test_compare_exact import SCHEMAS, SERVICES, _demo, _keys, _settled


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Variables the processes started meanwhile inherit."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def twinaid(*args: str, env: dict[str, str], expect: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == expect, done.stdout + done.stderr
    return done.stdout + (done.stderr if expect else "")


async def _heads(dbs: dict[str, str]) -> dict[str, int]:
    heads = {}
    for service, url in dbs.items():
        conn = await asyncpg.connect(url)
        try:
            heads[service] = int(await conn.fetchval("SELECT position FROM sealer_state"))
        finally:
            await conn.close()
    return heads


async def _quiet(dbs: dict[str, str], *, checkpointed: bool) -> None:
    """Until every event is sealed, published and applied downstream, each log holds a signed
    checkpoint (if asked) and no log moved for three seconds."""
    still, last = 0, {}
    for _ in range(1200):
        heads = await _heads(dbs)
        done = await _settled(dbs)
        if done and checkpointed:
            for url in dbs.values():
                conn = await asyncpg.connect(url)
                try:
                    done = done and bool(
                        await conn.fetchval(
                            "SELECT count(*) FROM events WHERE event_type = $1",
                            "audit.chain-checkpoint",
                        )
                    )
                finally:
                    await conn.close()
        still = still + 1 if done and heads == last else 0
        last = heads
        if still >= 30:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the services did not settle")


@dataclass
class Drill:
    backup: Path
    manifest: dict[str, Any]
    old_dbs: dict[str, str]
    old_server: str
    keys: dict[str, str]
    prefix: str
    seconds_backup: float


@pytest.fixture(scope="module")
async def drill(
    pg_server: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Drill]:
    folder = tmp_path_factory.mktemp("backup-drill")
    prefix = f"t{uuid.uuid4().hex[:8]}."
    async with AsyncExitStack() as exits:
        dbs = {
            s: await exits.enter_async_context(fresh_database(pg_server, *SCHEMAS[s]))
            for s in SERVICES
        }
        keys = await _keys(dbs)
        stack = Stack(kafka=kafka_bootstrap, prefix=prefix, logs=folder)
        with environment(CHECKPOINT_INTERVAL="1"):
            procs = {s: stack.api(s, dbs[s]) for s in SERVICES}
            apis = {s: f"http://127.0.0.1:{p.port}" for s, p in procs.items()}
            for service in SERVICES:
                feeds = {s: url for s, url in apis.items() if s != service}
                stack.worker(service, dbs[service], feeds=feeds, feed_key=keys["service"])
        try:
            for proc in procs.values():
                await asyncio.to_thread(stack.wait_ready, proc, 60)
            for service in SERVICES:
                await _demo(service, apis[service], keys["admin"])
            await _quiet(dbs, checkpointed=True)
            # an online backup: the services are running
            target = folder / "backup.tar.gz"
            started = time.monotonic()
            twinaid(
                *(f"--database={s}={dbs[s]}" for s in SERVICES),
                "backup",
                str(target),
                env={"DATABASE_URL": pg_server},
            )
            seconds = time.monotonic() - started
        finally:
            stack.stop_all()  # the machine is lost
        with tarfile.open(target) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        yield Drill(target, manifest, dbs, pg_server, keys, prefix, seconds)


async def _api_verify(
    client: httpx.AsyncClient, api: str, key: str, held: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"}
    plain = await client.get(f"{api}/v1/audit/verify", headers=headers)
    against = await client.post(
        f"{api}/v1/audit/verify", headers=headers, json={"checkpoints": held}
    )
    assert plain.status_code == against.status_code == 200, plain.text + against.text
    return plain.json(), against.json()


async def _applied(url: str, organisation_id: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(
            await conn.fetchval(
                "SELECT 1 FROM directory WHERE organisation_id = $1", organisation_id
            )
        )
    finally:
        await conn.close()


async def test_a_backup_restored_on_a_new_server_is_the_same_history_and_runs_on(
    drill: Drill, kafka_bootstrap: str, tmp_path: Path
) -> None:
    manifest = drill.manifest
    # the backup: every service, its head, its checkpoints, its key, every file's sha256
    assert list(manifest["services"]) == list(SERVICES)
    for service, entry in manifest["services"].items():
        assert entry["events"] > 0 and entry["head"]["position"] > 0, service
        assert entry["checkpoint_positions"], f"{service}: no signed checkpoint backed up"
        assert entry["signing_key"] == f"keys/{service}.ed25519"
    assert manifest["services"]["shipments"]["tables"]["directory"]["rows"] > 0
    assert "databases/registry/events.csv" in manifest["files"]
    # nothing was written after the backup: its heads are the lost machine's last
    assert await _heads(drill.old_dbs) == {
        s: e["head"]["position"] for s, e in manifest["services"].items()
    }

    server = EmbeddedPostgres(tmp_path / "new-pg").url
    installed = tmp_path / "keys"
    started = time.monotonic()
    out = twinaid(
        "restore",
        str(drill.backup),
        "--install-keys",
        str(installed),
        "--json",
        env={"DATABASE_URL": server},
    )
    seconds_restore = time.monotonic() - started
    verdict = json.loads(out)
    assert verdict["verdict"] == "same history" and verdict["ok"], out
    assert verdict["pins"] == "given"  # $TRUSTED_KEYS, not the backup's own copy
    for report in verdict["services"]:
        entry = manifest["services"][report["service"]]
        assert report["chain"]["intact"] and report["chain"]["warning"] is None, report
        assert report["head"] == entry["head"] and report["head_matches"], report
        assert report["held_checkpoints"] == len(entry["checkpoint_positions"])
        assert report["chain"]["checkpoints_checked"] >= 2 * report["held_checkpoints"]
        # every row is back; only an empty table this release no longer has is passed over
        passed_over = report["tables_passed_over"]
        assert all(entry["tables"][t]["rows"] == 0 for t in passed_over), report
        assert report["rows"] == {
            t: v["rows"] for t, v in entry["tables"].items() if t not in passed_over
        }
        assert "events" in report["rows"] and "event_chain" in report["rows"]
    assert (installed / "registry.ed25519").read_bytes() == SESSION_KEY_FILE.read_bytes()
    assert json.loads((installed / "trusted_keys.json").read_text()) == json.loads(
        os.environ["TRUSTED_KEYS"]
    )
    refused = twinaid("restore", str(drill.backup), env={"DATABASE_URL": server}, expect=2)
    assert "is not empty" in refused and "--replace" in refused

    # the restored databases run on: APIs and workers on them, the same broker and topics,
    # signing with the key the restore installed
    restored = {s: dbmod.with_database(server, f"twinaid_{s}") for s in SERVICES}
    stack = Stack(kafka=kafka_bootstrap, prefix=drill.prefix, logs=tmp_path)
    try:
        key_file = str(installed / "registry.ed25519")
        with environment(SIGNING_KEY_FILE=key_file, CHECKPOINT_INTERVAL="1"):
            procs = {s: stack.api(s, restored[s]) for s in SERVICES}
            apis = {s: f"http://127.0.0.1:{p.port}" for s, p in procs.items()}
            for service in SERVICES:
                feeds = {s: url for s, url in apis.items() if s != service}
                stack.worker(
                    service, restored[service], feeds=feeds, feed_key=drill.keys["service"]
                )
        for proc in procs.values():
            await asyncio.to_thread(stack.wait_ready, proc, 60)
        held = json.loads(
            tarfile.open(drill.backup).extractfile("checkpoints.json").read()  # type: ignore[union-attr]
        )
        async with httpx.AsyncClient(timeout=60) as client:
            for service in SERVICES:
                mine = [c for c in held if c["service"] == service]
                plain, against = await _api_verify(
                    client, apis[service], drill.keys["auditor"], mine
                )
                assert plain["intact"] and against["intact"], (service, plain, against)
                assert against["checkpoints_checked"] >= plain["checkpoints_checked"] + len(mine)
                assert plain["head_position"] >= manifest["services"][service]["head"]["position"]
            compared = json.loads(
                twinaid(
                    *(f"--database={s}={restored[s]}" for s in SERVICES),
                    "audit",
                    "compare",
                    "--json",
                    *(f"--url={s}={apis[s]}" for s in SERVICES),
                    env={"DATABASE_URL": server, "TWINAID_AUDIT_KEY": drill.keys["auditor"]},
                )
            )
            assert [r["service"] for r in compared] == list(SERVICES)
            assert all(r["chain"]["intact"] and not r["differences"] for r in compared), compared

            # a write after the restore: sealed after the restored log, applied downstream
            organisation = f"restored-{uuid.uuid4().hex[:8]}"
            answer = await client.post(
                f"{apis['registry']}/v1/organisations",
                headers={"Authorization": f"Bearer {drill.keys['admin']}"},
                json={
                    "organisation_id": organisation,
                    "name": "After the restore",
                    "kind": "ngo",
                    "country": "FR",
                    "region": None,
                    "aliases": [],
                },
            )
            assert answer.status_code == 201, answer.text
        for _ in range(600):
            if all([await _applied(restored[s], organisation) for s in ("pledges", "shipments")]):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the write after the restore was not applied downstream")
        conn = await asyncpg.connect(restored["registry"])
        try:
            position = await conn.fetchval(
                "SELECT c.position FROM events e JOIN event_chain c USING (event_id)"
                " WHERE e.stream_id = $1",
                f"organisation-{organisation}",
            )
        finally:
            await conn.close()
        assert position > manifest["services"]["registry"]["head"]["position"]
    finally:
        stack.stop_all()

    figures = {
        "seconds_backup": round(drill.seconds_backup, 3),
        "seconds_restore": round(seconds_restore, 3),
        "events": {r["service"]: r["events"] for r in verdict["services"]},
        "verdict": verdict["verdict"],
        "restore": {
            r["service"]: {"load": r["seconds_load"], "verify": r["seconds_verify"]}
            for r in verdict["services"]
        },
    }
    (tmp_path / "restore_drill.json").write_text(json.dumps(figures, indent=2))
    print("restore drill:", json.dumps(figures))


async def test_a_changed_backup_file_is_refused_before_anything_is_loaded(
    drill: Drill, tmp_path: Path
) -> None:
    folder = tmp_path / "unpacked"
    with tarfile.open(drill.backup) as tar:
        tar.extractall(folder, filter="data")
    lines = (folder / "databases/registry/events.csv").read_text().splitlines(keepends=True)
    (folder / "databases/registry/events.csv").write_text("".join(lines[:-1]))
    server = dbmod.with_database(drill.old_server, "postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    refused = twinaid(
        f"--database=registry={dbmod.with_database(server, name)}",
        "restore",
        str(folder),
        "--service",
        "registry",
        env={"DATABASE_URL": server},
        expect=2,
    )
    assert "databases/registry/events.csv does not match its sha256" in refused
    admin = await asyncpg.connect(server)
    try:
        assert not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await admin.close()


async def test_events_not_yet_sealed_at_the_backup_are_sealed_in_order_after_the_restore(
    pg_server: str, tmp_path: Path
) -> None:
    """The writing transactions' ids of the old server mean nothing on the new one: events
    the sealer had not reached are sealed after the restore in their commit order, then new
    writes after them."""
    now = datetime.now(UTC)
    async with fresh_database(pg_server, *SCHEMAS["registry"]) as old:
        conn = await asyncpg.connect(old)
        try:
            for i in range(6):
                async with conn.transaction():
                    await PostgresEventStore(conn).append(
                        stream_type="t",
                        stream_id=f"s-{i}",
                        expected_version=0,
                        events=[NewEvent("t.happened", {"i": i})],
                        metadata=Metadata(),
                        now=now,
                    )
                if i == 2:
                    await seal_everything(conn)
        finally:
            await conn.close()
        manifest = await asyncio.to_thread(
            backupmod.backup, {"registry": old}, tmp_path / "b", keys=None
        )
        assert manifest["services"]["registry"]["unsealed_events"] == 3
    server = EmbeddedPostgres(tmp_path / "new-pg").url
    target = dbmod.with_database(server, "twinaid_registry")
    out = json.loads(
        twinaid("restore", str(tmp_path / "b"), "--json", env={"DATABASE_URL": server})
    )
    assert out["ok"] and out["services"][0]["head"]["position"] == 3, out
    conn = await asyncpg.connect(target)
    try:
        async with conn.transaction():
            await PostgresEventStore(conn).append(
                stream_type="t",
                stream_id="s-new",
                expected_version=0,
                events=[NewEvent("t.happened", {"i": 6})],
                metadata=Metadata(),
                now=now,
            )
        await seal_everything(conn)
        order = await conn.fetch(
            "SELECT e.stream_id FROM event_chain c JOIN events e USING (event_id)"
            " ORDER BY c.position"
        )
        verdict = await PostgresEventStore(conn).verify()
    finally:
        await conn.close()
    assert [r["stream_id"] for r in order] == [*(f"s-{i}" for i in range(6)), "s-new"]
    assert verdict.intact and verdict.head_position == 7
