"""`make run` for real: the embedded PostgreSQL, Tansu, three APIs, three workers, demo data."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from services.registry import demo
from shared import devstack
from shared.db import with_database
from shared.settings import SERVICES
from tests.e2e.processes import Printed, read_until_ready, stack_env
from tests.shared.kafka_helpers import read_topic

# `make run` brings its own embedded PostgreSQL whatever TWINAID_TEST_PG says: CI runs it once
pytestmark = pytest.mark.once


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
    # one event per organisation (and one for its contacts when it has some), one per
    # partnership step (proposed included)
    logged = (
        organisations
        + sum(1 for o in demo.ORGANISATIONS if o.contacts)
        + sum(len(p.history) for p in demo.PARTNERSHIPS)
    )

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


def test_a_configured_port_that_is_taken_stops_the_start_with_a_clear_error(
    tmp_path: Path,
) -> None:
    base = _free_block()
    with socket.socket() as holder:
        # the registry's API is the base + 1
        holder.bind(("127.0.0.1", base + 1))
        holder.listen()
        taken = base + 1
        env = {**stack_env(tmp_path), "TWINAID_PORT_BASE": str(base)}
        done = subprocess.run(
            [sys.executable, "-m", "shared.devstack", "--exit-after-ready"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {taken} (the registry API) is in use" in done.stderr
    assert "TWINAID_PORT_BASE" in done.stderr
    assert not (tmp_path / "pg").exists(), "it started PostgreSQL before claiming its ports"


def _free_block(size: int = 21) -> int:
    """A base below the ephemeral range (where other tests' connections take ports at random)
    whose `size` ports are all free now."""
    for base in range(20_000, 30_000, size):
        try:
            for port in range(base, base + size):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no free block of ports below the ephemeral range")


def test_a_port_the_previous_run_left_in_time_wait_is_claimed_again() -> None:
    with socket.socket() as listener:
        # as uvicorn's and asyncio's servers bind (Linux lets a port be had again only if the
        # socket that left it in TIME_WAIT allowed address reuse too)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        served.close()  # the server side closes first: its end of the port waits in TIME_WAIT
        client.close()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # what the stack did before: it then took another port
    assert devstack.claim_port(port, "the registry API") == port


def test_free_ports_picked_for_a_run_are_all_different(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the system may hand out a port it handed out a moment ago (its socket is closed): the
    # broker and a worker's health endpoint once got the same one
    handed = iter([5101, 5101, 5102, 5101, 5102, 5103, 5104, 5103, 5105, 5106, 5107, 5108])
    monkeypatch.setattr(devstack, "free_port", lambda: next(handed))
    stack = devstack.DevStack(data_dir=tmp_path, env={"TWINAID_PORT_BASE": "0"}, start_timeout=1.0)
    stack._claim_ports(broker=True)
    ports = [stack.broker_port, *(int(u.rsplit(":", 1)[1]) for u in stack._urls())]
    assert len(ports) == 1 + 2 * len(SERVICES)
    assert len(set(ports)) == len(ports)
