"""`make run` for real: the embedded PostgreSQL, Tansu, three APIs, three workers, demo data."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import asyncpg
import httpx
import psutil

from services.registry import demo
from shared.db import with_database
from tests.shared.kafka_helpers import read_topic

KEY_LINE = re.compile(r"^\s+(?P<who>.+?)\s{2,}(?P<org>\S+)\s+(?P<roles>\S+)\s+(?P<key>twa_\S+)$")
API_LINE = re.compile(r"^\s+(?P<service>registry|pledges|shipments)\s+(?P<api>http://\S+)\s")
PG_LINE = re.compile(r"^\s+PostgreSQL\s+(?P<url>\S+)$")
KAFKA_LINE = re.compile(r"^\s+Kafka\s+(?P<bootstrap>\S+) ")
READY = "twinaid ready in"


class Printed:
    def __init__(self, stdout: str) -> None:
        self.text = stdout
        lines = stdout.splitlines()
        self.apis = {m["service"]: m["api"] for line in lines if (m := API_LINE.match(line))}
        self.keys = {
            m["who"]: (m["org"], m["roles"], m["key"])
            for line in lines
            if (m := KEY_LINE.match(line))
        }
        self.database = next(m["url"] for line in lines if (m := PG_LINE.match(line)))
        self.kafka = next(m["bootstrap"] for line in lines if (m := KAFKA_LINE.match(line)))

    def key(self, organisation: str, role: str) -> str:
        return next(
            k for org, roles, k in self.keys.values() if org == organisation and role == roles
        )


def stack_env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "TWINAID_DATA_DIR": str(data_dir), "TWINAID_PORT_BASE": "0"}
    env["PYTHONUNBUFFERED"] = "1"
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "TWINAID_EXIT_AFTER_READY"):
        env.pop(name, None)
    return env


def read_until_ready(proc: subprocess.Popen[str], timeout: float) -> str:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if line.startswith(READY):
            return "".join(seen)
    raise AssertionError("the dev stack never said it was ready:\n" + "".join(seen))


async def registry_state(registry_db: str, pledges_db: str) -> tuple[int, bool, int]:
    """(facts in the registry log, whether the relay published the whole log, organisations in
    pledges' directory). Signed checkpoints are log events too, but not facts."""
    registry = await asyncpg.connect(registry_db)
    pledges = await asyncpg.connect(pledges_db)
    try:
        facts = await registry.fetchval(
            "SELECT count(*) FROM events WHERE event_type <> 'audit.chain-checkpoint'"
        )
        total = await registry.fetchval("SELECT count(*) FROM events")
        relayed = await registry.fetchval("SELECT coalesce(max(position), 0) FROM relay_checkpoint")
        directory = await pledges.fetchval("SELECT count(*) FROM directory")
    finally:
        await registry.close()
        await pledges.close()
    return facts, relayed == total, directory


def test_dev_stack_starts_with_demo_data_restarts_idempotently_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    env = stack_env(tmp_path)
    command = [sys.executable, "-m", "shared.devstack"]
    organisations = len(demo.ORGANISATIONS)
    # one event per organisation, one per partnership step (proposed included)
    logged = organisations + sum(len(p.history) for p in demo.PARTNERSHIPS)

    # First start on an empty data directory: loads the demo data, then stops by itself.
    first = subprocess.run(
        [*command, "--exit-after-ready"], env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"registry: {organisations} organisations registered, 0 already present" in first.stdout
    first_kharkiv = Printed(first.stdout).key("kharkiv", "member")
    assert not (tmp_path / "pg" / "postmaster.pid").exists(), "PostgreSQL outlived the stack"

    # Second start on the persisted data: until Ctrl-C.
    with open(tmp_path / "stderr.log", "w") as stderr:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        printed = Printed(read_until_ready(proc, timeout=90))
        children = psutil.Process(proc.pid).children(recursive=True)
        assert set(printed.apis) == {"registry", "pledges", "shipments"}
        assert f"registry: 0 organisations registered, {organisations} already present" in (
            printed.text
        )
        kharkiv = printed.key("kharkiv", "member")
        assert kharkiv != first_kharkiv
        assert len({k for _, _, k in printed.keys.values()}) == len(printed.keys) >= 8

        registry = printed.apis["registry"]
        answer = httpx.get(
            f"{registry}/v1/organisations/kharkiv", headers={"Authorization": f"Bearer {kharkiv}"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["name"] == "Kharkiv"
        assert "Charkiw" in answer.json()["aliases"]
        # the first run's keys were revoked when the second run printed its own
        stale = httpx.get(
            f"{registry}/v1/organisations/kharkiv",
            headers={"Authorization": f"Bearer {first_kharkiv}"},
        )
        assert stale.status_code == 401
        for service, api in printed.apis.items():
            docs = httpx.get(f"{api}/openapi.json")
            assert docs.status_code == 200, service

        # One event per fact, though the demo data was loaded twice; the relay
        # republishes the log to the new memory-only broker and pledges' worker consumes it.
        registry_db = with_database(printed.database, "twinaid_registry")
        pledges_db = with_database(printed.database, "twinaid_pledges")
        deadline = time.monotonic() + 30
        while True:
            state = asyncio.run(registry_state(registry_db, pledges_db))
            if state == (logged, True, organisations):
                break
            assert time.monotonic() < deadline, f"(events, relayed, directory) = {state}"
            time.sleep(0.5)

        # the new memory-only broker carries the whole registry log, not only this run's events
        records = asyncio.run(read_topic(printed.kafka, "registry.events", expect=logged))
        records = [r for r in records if r.key != b"checkpoint-registry"]
        assert sorted({r.key for r in records}) == sorted(
            [f"organisation-{o.organisation_id}".encode() for o in demo.ORGANISATIONS]
            + [f"partnership-{p.partnership_id}".encode() for p in demo.PARTNERSHIPS]
        )
        assert len(records) == logged

        assert {c.name() for c in children} >= {"tansu"}
        assert len(children) == 7, [c.cmdline() for c in children]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, (tmp_path / "stderr.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lingering = [c.pid for c in children if c.is_running() and c.status() != "zombie"]
    assert lingering == []
    assert not (tmp_path / "pg" / "postmaster.pid").exists(), "PostgreSQL outlived the stack"
