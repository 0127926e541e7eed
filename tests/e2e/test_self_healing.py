"""`make run` heals itself: each kind of child killed under light writes, one after the other.

One stack for the whole test (starting it is the costly part): an API, a worker, the broker
(memory only: it comes back empty) and the embedded PostgreSQL are SIGKILLed in turn while a
writer registers organisations. After each kill the stack must answer on the same URLs and have
applied every acknowledged write at every consumer within 30 s; at the end every acknowledged
write is in the registry's log and every consumer holds every registry event exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from shared.db import with_database
from tests.e2e.processes import Printed, read_until_ready, stack_env

# `make run` brings its own embedded PostgreSQL whatever TWINAID_TEST_PG says: CI runs it once
pytestmark = pytest.mark.once

HEAL_WITHIN = 30.0
CONSUMERS = ("pledges", "shipments")  # both apply every registry event to their directory


class Writer(threading.Thread):
    """Registers an organisation every 0.1 s; keeps the ids the registry acknowledged (201)."""

    def __init__(self, api: str, key: str) -> None:
        super().__init__(daemon=True)
        self.api, self.key = api, key
        self.acknowledged: list[str] = []
        self.refused: list[int] = []
        self.unanswered = 0
        self.halt = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.api, headers=headers, timeout=5) as http:
            i = 0
            while not self.halt.wait(0.1):
                i += 1
                slug = f"heal-{i}"
                body = {
                    "organisation_id": slug,
                    "name": f"Hromada Heal {i}",
                    "kind": "municipality",
                }
                try:
                    answer = http.post("/v1/organisations", json={**body, "country": "UA"})
                except httpx.HTTPError:
                    self.unanswered += 1
                    continue
                if answer.status_code == 201:
                    self.acknowledged.append(slug)
                else:
                    self.refused.append(answer.status_code)


async def consumers_state(printed: Printed, slugs: list[str]) -> dict[str, object]:
    """What the test waits for: per consumer, which of `slugs` are missing from its directory,
    and whether its inbox holds every event of the registry's log."""
    registry = await asyncpg.connect(with_database(printed.database, "twinaid_registry"))
    try:
        logged = await registry.fetchval("SELECT count(*) FROM events")
    finally:
        await registry.close()
    state: dict[str, object] = {}
    for service in CONSUMERS:
        conn = await asyncpg.connect(with_database(printed.database, f"twinaid_{service}"))
        try:
            present = {
                r["organisation_id"]
                for r in await conn.fetch(
                    "SELECT organisation_id FROM directory WHERE organisation_id = ANY($1)", slugs
                )
            }
            inbox = await conn.fetchval(
                "SELECT count(*) FROM inbox WHERE consumer = $1 AND upstream = 'registry'", service
            )
        finally:
            await conn.close()
        state[service] = (sorted(set(slugs) - present), inbox == logged)
    return state


def healed(printed: Printed, writer: Writer) -> bool:
    """Every API and every worker ready on the URLs printed at start-up, and every
    write acknowledged so far applied at every consumer."""
    try:
        for service, api in printed.apis.items():
            if httpx.get(f"{api}/readyz", timeout=2).status_code != 200:
                return False
            if httpx.get(f"{printed.workers[service]}/readyz", timeout=2).status_code != 200:
                return False
        state = asyncio.run(consumers_state(printed, list(writer.acknowledged)))
    except (httpx.HTTPError, OSError, asyncpg.PostgresError):
        return False
    return all(missing == [] and complete for missing, complete in state.values())  # type: ignore[misc]


def child(stack: psutil.Process, match: Callable[[psutil.Process], bool]) -> psutil.Process:
    found = [p for p in stack.children(recursive=True) if match(p)]
    assert len(found) == 1, [p.cmdline() for p in found]
    return found[0]


def postmaster(data_dir: Path) -> psutil.Process:
    return psutil.Process(int((data_dir / "pg" / "postmaster.pid").read_text().split()[0]))


def test_the_stack_heals_each_kind_of_child_killed_under_writes_on_the_same_urls(
    tmp_path: Path,
) -> None:
    env = stack_env(tmp_path)
    output: list[str] = []
    with open(tmp_path / "stderr.log", "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.devstack"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    writer: Writer | None = None
    try:
        printed = Printed(read_until_ready(proc, timeout=120, sink=output))
        stack = psutil.Process(proc.pid)
        admin = printed.key("twinaid", "registry_admin")
        writer = Writer(printed.apis["registry"], admin)
        writer.start()
        victims: dict[str, Callable[[], psutil.Process]] = {
            "API": lambda: child(
                stack, lambda p: "services.registry.app:create_app" in p.cmdline()
            ),
            "worker": lambda: child(stack, lambda p: "services.pledges.worker" in p.cmdline()),
            "broker": lambda: child(stack, lambda p: p.name() == "tansu"),
            "PostgreSQL": lambda: postmaster(tmp_path),
        }
        heal_times: dict[str, float] = {}
        for kind, find in victims.items():
            before = len(writer.acknowledged)
            while len(writer.acknowledged) < before + 5:  # writes in flight when it dies
                assert writer.is_alive()
                time.sleep(0.1)
            victim = find()
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            killed_at = time.monotonic()
            while not healed(printed, writer):
                elapsed = time.monotonic() - killed_at
                assert elapsed < HEAL_WITHIN, (
                    f"not healed {elapsed:.0f} s after killing the {kind}: "
                    f"{asyncio.run(diagnosis(printed, list(writer.acknowledged)))}"
                )
                time.sleep(0.5)
            heal_times[kind] = round(time.monotonic() - killed_at, 1)
            replacement = find()
            assert replacement.pid != victim.pid
            assert proc.poll() is None, "the stack stopped itself"
        writer.halt.set()
        writer.join(10)
        assert len(writer.acknowledged) >= 20
        assert set(writer.refused) <= {503}, writer.refused  # while PostgreSQL was down

        # every acknowledged write is in the log; every consumer applied each event once
        deadline = time.monotonic() + HEAL_WITHIN
        while not healed(printed, writer):
            assert time.monotonic() < deadline, asyncio.run(
                consumers_state(printed, writer.acknowledged)
            )
            time.sleep(0.5)
        assert asyncio.run(in_log_once(printed, writer.acknowledged)) == []
        print("time to heal (s):", heal_times)
        said = "".join(output)
        for name in ("registry-api", "pledges-worker", "tansu"):
            assert f"supervisor: {name} restarted" in said, said
        assert "supervisor: the embedded PostgreSQL restarted" in said, said
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, (tmp_path / "stderr.log").read_text()
    finally:
        (tmp_path / "stack.out").write_text("".join(output))  # what the supervisor said
        if writer is not None:
            writer.halt.set()
        if proc.poll() is None:  # a failed assertion: stop it in order, PostgreSQL too
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert not (tmp_path / "pg" / "postmaster.pid").exists(), "PostgreSQL outlived the stack"


async def in_log_once(printed: Printed, slugs: list[str]) -> list[str]:
    """The acknowledged organisations that are not in the registry's log exactly once, or not
    applied exactly once at a consumer."""
    wrong: list[str] = []
    registry = await asyncpg.connect(with_database(printed.database, "twinaid_registry"))
    try:
        logged = {
            r["organisation_id"]: r["n"]
            for r in await registry.fetch(
                "SELECT data->>'organisation_id' AS organisation_id, count(*) AS n FROM events"
                " WHERE event_type = $1 GROUP BY 1",
                "registry.organisation-registered",
            )
        }
    finally:
        await registry.close()
    wrong += [f"log: {s}" for s in slugs if logged.get(s) != 1]
    for service in CONSUMERS:
        conn = await asyncpg.connect(with_database(printed.database, f"twinaid_{service}"))
        try:
            applied = {
                r["organisation_id"]: r["applied_events"]
                for r in await conn.fetch("SELECT organisation_id, applied_events FROM directory")
            }
        finally:
            await conn.close()
        wrong += [f"{service}: {s}" for s in slugs if applied.get(s) != 1]
    return wrong


async def diagnosis(printed: Printed, slugs: list[str]) -> dict[str, object]:
    """Where the pipeline stands, for a failure's message."""
    found: dict[str, object] = {}
    for service in ("registry", *CONSUMERS):
        try:
            conn = await asyncpg.connect(with_database(printed.database, f"twinaid_{service}"))
        except (OSError, asyncpg.PostgresError) as exc:
            found["PostgreSQL"] = f"unreachable: {exc!r}"
            return found
        try:
            found[service] = dict(
                await conn.fetchrow(
                    "SELECT (SELECT count(*) FROM events) AS logged,"
                    " (SELECT count(*) FROM event_chain) AS sealed,"
                    " (SELECT max(position) FROM relay_checkpoint) AS relayed,"
                    " (SELECT count(*) FROM inbox WHERE upstream = 'registry') AS from_registry,"
                    " (SELECT max(position) FROM consumer_progress"
                    "  WHERE upstream = 'registry') AS registry_prefix"
                )
                or {}
            )
        finally:
            await conn.close()
    found["consumers"] = await consumers_state(printed, slugs)
    for service, api in printed.apis.items():
        with contextlib.suppress(httpx.HTTPError):
            found[f"{service} ready"] = httpx.get(f"{api}/readyz", timeout=2).text
    return found
