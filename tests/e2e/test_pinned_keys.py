"""Checkpoints are checked against pinned keys: GET /v1/audit/verify and `twinaid audit`, on a
running registry (API and worker as processes) whose key file, pins and log an operator and an
attacker change."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.audit import signing_keys
from shared import db as dbmod
from shared import signing
from shared.auth import Role
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.infra import free_port
from shared.testing import fresh_database, issue_key, seal_everything
from tests.e2e.processes import Proc, Stack
from tests.shared.test_signed_checkpoints import NOW, rewrite_history


@dataclass
class Registry:
    stack: Stack
    db: str
    url: str
    auditor: str
    key_file: Path
    pins_file: Path
    owner: str  # the pinned public key
    worker: Proc

    def cli(self, *args: str, expect: int = 0, data_dir: Path | None = None) -> str:
        command = [sys.executable, "-m", "services.cli", "--database", f"registry={self.db}"]
        env = {**os.environ, "TWINAID_AUDIT_KEY": self.auditor}
        env.pop("TRUSTED_KEYS", None)
        # nor the pins a local `make run` wrote (the default when neither is given), unless
        # `data_dir` is that of a stack
        env["TWINAID_DATA_DIR"] = str(data_dir or self.pins_file.parent / "no-dev-stack")
        done = subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == expect, done.stdout + done.stderr
        return done.stdout

    def replay(self, *pins: str, expect: int = 0) -> dict[str, Any]:
        args = ("audit", "replay", "--service", "registry", "--url", f"registry={self.url}")
        [report] = json.loads(self.cli(*args, "--json", *pins, expect=expect))
        return dict(report["chain"])

    async def verify(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url) as http:
            answer = await http.get(
                "/v1/audit/verify", headers={"Authorization": f"Bearer {self.auditor}"}
            )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def start_worker(self) -> Proc:
        env = self.stack.env(
            self.db,
            SIGNING_KEY_FILE=str(self.key_file),
            TRUSTED_KEYS=json.dumps({"registry": [self.owner]}),
        )
        log = self.stack.logs / "registry-worker.log"
        argv = [sys.executable, "-m", "services.registry.worker"]
        self.worker = Proc("registry-worker", argv, env, log).start()
        self.stack.procs.append(self.worker)
        return self.worker


async def checkpoints(db: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch(
            "SELECT e.data FROM events e JOIN event_chain c USING (event_id)"
            " WHERE e.event_type = $1 ORDER BY c.position",
            signing.CHECKPOINT,
        )
    finally:
        await conn.close()
    return [json.loads(r["data"]) for r in rows]


async def sealed_checkpoint_by(db: str, key: str) -> None:
    for _ in range(300):
        if any(c["public_key"] == key for c in await checkpoints(db)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no checkpoint signed by {key} was sealed in time")


@pytest.fixture
async def registry(pg_server: str, kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Registry]:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as db:
        admin = await issue_key(db, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
        auditor = await issue_key(db, organisation="cour-des-comptes", roles=[Role.AUDITOR])
        key_file = tmp_path / "keys" / "registry.ed25519"
        owner = signing.Signer.from_file(key_file).public_key
        pins_file = tmp_path / "keys" / "trusted_keys.json"
        pins_file.write_text(json.dumps({"registry": [owner]}))
        stack = Stack(kafka=kafka_bootstrap, prefix=f"t{uuid.uuid4().hex[:8]}.", logs=tmp_path)
        port = free_port()
        api_env = stack.env(db, TRUSTED_KEYS=json.dumps({"registry": [owner]}))
        uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "--host", "127.0.0.1"]
        api = Proc(
            "registry-api",
            [*uvicorn, "--port", str(port), "services.registry.app:create_app"],
            api_env,
            tmp_path / "registry-api.log",
            port=port,
        ).start()
        stack.procs.append(api)
        try:
            url = stack.wait_ready(api)
            running = Registry(stack, db, url, auditor, key_file, pins_file, owner, api)
            running.start_worker()
            async with httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {admin}"}
            ) as http:
                for slug in ("bucha", "bergamo"):
                    answer = await http.post(
                        "/v1/organisations",
                        json={
                            "organisation_id": slug,
                            "name": slug.title(),
                            "kind": "municipality",
                            "country": "UA",
                        },
                    )
                    assert answer.status_code == 201, answer.text
            await sealed_checkpoint_by(db, owner)
            yield running
        finally:
            stack.stop_all()


async def test_the_intact_log_verifies_against_the_pinned_key_without_a_warning(
    registry: Registry,
) -> None:
    verdict = await registry.verify()
    assert verdict["intact"] and verdict["checkpoints_checked"] >= 1
    assert verdict["warning"] is None
    chain = registry.replay("--trusted-keys", str(registry.pins_file))
    assert chain["intact"] and chain["warning"] is None
    # with neither --trusted-keys nor $TRUSTED_KEYS: the pins `make run` wrote in its data dir
    args = ("audit", "replay", "--service", "registry", "--url", f"registry={registry.url}")
    data_dir = registry.pins_file.parent.parent
    [report] = json.loads(registry.cli(*args, "--json", data_dir=data_dir))
    assert report["chain"]["intact"] and report["chain"]["warning"] is None
    [report] = json.loads(registry.cli(*args, "--json"))
    assert "no pinned key" in report["chain"]["warning"]


async def test_a_rewritten_log_resigned_with_a_new_key_fails_plain_verify_naming_the_key(
    registry: Registry,
) -> None:
    registry.worker.stop()
    conn = await asyncpg.connect(registry.db)
    try:
        await rewrite_history(
            conn,
            sql=f"""
            UPDATE events SET data = jsonb_set(data::jsonb, '{{name}}', '"Milano"')
                WHERE stream_id = 'organisation-bergamo'
                  AND event_type = 'registry.organisation-registered';
            DELETE FROM event_chain WHERE event_id IN
                (SELECT event_id FROM events WHERE event_type = '{signing.CHECKPOINT}');
            DELETE FROM events WHERE event_type = '{signing.CHECKPOINT}';
            -- and what the relay published of them, or the sealer sees a cut tail (ChainCut)
            UPDATE relay_checkpoint
                SET position = (SELECT coalesce(max(position), 0) FROM event_chain)""",
        )
        forger = signing.Signer.generate()
        position, head = await conn.fetchrow("SELECT position, hash FROM sealer_state")
        forged = forger.checkpoint(service="registry", position=position, head=head, at=NOW)
        async with conn.transaction():
            store = PostgresEventStore(conn)
            await store.append(
                stream_type=signing.STREAM_TYPE,
                stream_id="checkpoint-registry",
                expected_version=await store.current_version("checkpoint-registry"),
                events=[NewEvent(signing.CHECKPOINT, forged)],
                metadata=Metadata(actor="registry-relay"),
                now=NOW,
            )
        await seal_everything(conn)
    finally:
        await conn.close()
    named = f"signed by key {forger.public_key}, which is neither pinned nor announced"

    verdict = await registry.verify()
    assert verdict["intact"] is False and verdict["bad_position"] == position
    assert verdict["problem"] == f"checkpoint at {position} {named}"
    chain = registry.replay("--trusted-keys", str(registry.pins_file), expect=1)
    assert chain["problem"] == f"checkpoint at {position} {named}"
    out = registry.cli(
        "audit",
        "replay",
        "--service",
        "registry",
        "--url",
        f"registry={registry.url}",
        "--trusted-keys",
        str(registry.pins_file),
        expect=1,
    )
    assert f"BROKEN at position {position}: checkpoint at {position} {named}" in out, out
    # without pins the forgery passes, but not silently
    chain = registry.replay()
    assert chain["intact"] and "no pinned key for registry" in chain["warning"]
    out = registry.cli(
        "audit", "replay", "--service", "registry", "--url", f"registry={registry.url}"
    )
    assert "WARNING: checkpoint signatures not checked: no pinned key for registry" in out, out


async def test_a_key_rotated_by_the_operator_verifies_after_the_worker_restarts(
    registry: Registry,
) -> None:
    out = registry.cli("keys", "rotate-signing", "registry", "--key-file", str(registry.key_file))
    new = signing.Signer.from_file(registry.key_file).public_key
    assert new != registry.owner
    assert f"signing key {registry.owner} replaced by {new}" in out, out
    previous = registry.key_file.with_name("registry.ed25519.previous")
    assert signing.Signer.from_file(previous).public_key == registry.owner
    registry.worker.stop()
    registry.start_worker()
    await sealed_checkpoint_by(registry.db, new)

    verdict = await registry.verify()
    assert verdict["intact"], verdict["problem"]
    assert verdict["checkpoints_checked"] >= 2 and verdict["warning"] is None
    chain = registry.replay("--trusted-keys", str(registry.pins_file))
    assert chain["intact"], chain["problem"]


async def test_a_key_change_signed_by_an_untrusted_key_fails_verify(registry: Registry) -> None:
    intruder, theirs = signing.Signer.generate(), signing.Signer.generate()
    conn = await asyncpg.connect(registry.db)
    try:
        async with conn.transaction():
            await signing_keys.announce(
                conn, service="registry", previous=intruder, new=theirs, now=NOW
            )
        await seal_everything(conn)
        position = await conn.fetchval("SELECT position FROM sealer_state")
    finally:
        await conn.close()
    problem = (
        f"key change at {position} to key {theirs.public_key} is not signed by a key trusted"
        f" for registry: key {intruder.public_key} is neither pinned nor announced for registry"
    )
    verdict = await registry.verify()
    assert (verdict["intact"], verdict["bad_position"], verdict["problem"]) == (
        False,
        position,
        problem,
    )
    chain = registry.replay("--trusted-keys", str(registry.pins_file), expect=1)
    assert chain["problem"] == problem


async def test_unusable_pins_are_named_without_a_traceback(
    registry: Registry, tmp_path: Path
) -> None:
    bad = tmp_path / "pins.json"
    bad.write_text(json.dumps({"registry": ["not-a-key"]}))
    args = ("audit", "replay", "--service", "registry", "--url", f"registry={registry.url}")
    for given in (str(bad), str(tmp_path / "missing.json")):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.cli",
                "--database",
                f"registry={registry.db}",
                *args,
                "--trusted-keys",
                given,
            ],
            env={**os.environ, "TWINAID_AUDIT_KEY": registry.auditor},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert "Traceback" not in done.stderr
        assert "twinaid: " in done.stderr and given in done.stderr, done.stderr
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "--database",
            f"registry={registry.db}",
            "keys",
            "rotate-signing",
            "registry",
            "--key-file",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"no signing key at {tmp_path / 'none'}" in done.stderr
