"""Faults under load, each followed by the full audit: `python -m bench.loadgen_chaos
[--seconds 60] [--rate 15] [--pause 30] [--only kills,broker-pause,...] [--out file.json]`.

Scenarios (each on a fresh set of databases and its own broker):
- kills: SIGKILL an API process, a worker and the relay leader at random moments, several
  times each; a supervisor (this harness) starts each again at once.
- broker-pause: SIGSTOP the broker for `--pause` seconds, then SIGCONT.
- pg-restart: stop PostgreSQL (fast shutdown) for a few seconds and start it again.
- replicas: two APIs and two workers per service; the load spread over both APIs; one relay
  leader killed on the way.
- kill-each-child: `make run` itself (python -m shared.devstack, its embedded PostgreSQL and
  memory-only broker) under the load; an API, a worker, the broker and PostgreSQL SIGKILLed in
  turn, the stack's own supervisor restarting each. Reports the time to heal of each kind of
  child (until every API is ready and every worker answers, on the URLs printed at start-up).

After each: wait until everything is relayed and applied, then count acknowledged writes found
in the log, events found at every consumer, duplicates applied, and run `twinaid audit replay`
and `twinaid audit compare` (read-model differences).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import psutil

from bench.common import connection
from bench.loadgen import Client, LoadGen, World, figures, parse_mix, timeline
from bench.loadgen_stack import (
    CONSUMES,
    Keys,
    Postgres,
    ProofStack,
    audit,
    converge,
    integrity,
    issue_keys,
)
from shared.db import with_database
from shared.settings import SERVICES, database_for
from tests.e2e.processes import Printed, read_until_ready, stack_env

# on the proof's own stack of processes (this harness restarts what it kills)
PROOF_STACK_SCENARIOS = ("kills", "broker-pause", "pg-restart", "replicas")
# on `make run` itself (its supervisor restarts what is killed)
SCENARIOS = (*PROOF_STACK_SCENARIOS, "kill-each-child")
CHILD_KINDS = ("API", "worker", "broker", "PostgreSQL")
HEAL_WITHIN = 30.0


class Marks:
    def __init__(self) -> None:
        self.began = time.monotonic()
        self.items: list[tuple[float, str]] = []

    def add(self, what: str) -> None:
        self.items.append((round(time.monotonic() - self.began, 2), what))


Fault = Callable[[ProofStack, Marks, float, random.Random], Awaitable[None]]


async def kills(stack: ProofStack, marks: Marks, seconds: float, rng: random.Random) -> None:
    rounds = max(2, int(seconds // 15))
    for _ in range(rounds):
        for kind in ("api", "worker", "leader"):
            await asyncio.sleep(rng.uniform(0.2, seconds / (rounds * 3)))
            if kind == "leader":
                service = rng.choice(SERVICES)
                proc = await stack.relay_leader(service)
                if proc is None:
                    marks.add(f"no {service} relay leader to kill")
                    continue
            else:
                proc = stack.random_proc(rng, kind)
            await asyncio.to_thread(stack.kill, proc)
            marks.add(f"SIGKILL {proc.name}{' (relay leader)' if kind == 'leader' else ''}")


def broker_pause(pause: float) -> Fault:
    async def fault(stack: ProofStack, marks: Marks, seconds: float, rng: random.Random) -> None:
        await asyncio.sleep(min(seconds * 0.2, 5))
        stack.pause_broker()
        marks.add("SIGSTOP broker")
        await asyncio.sleep(pause)
        stack.resume_broker()
        marks.add("SIGCONT broker")

    return fault


def pg_restart(down: float) -> Fault:
    async def fault(stack: ProofStack, marks: Marks, seconds: float, rng: random.Random) -> None:
        await asyncio.sleep(seconds * 0.3)
        marks.add("PostgreSQL stopping")
        took = await asyncio.to_thread(stack.pg.restart, down)
        marks.add(f"PostgreSQL up again ({took:.1f} s unreachable)")

    return fault


async def replicas(stack: ProofStack, marks: Marks, seconds: float, rng: random.Random) -> None:
    await asyncio.sleep(seconds * 0.5)
    service = rng.choice(SERVICES)
    proc = await stack.relay_leader(service)
    if proc is not None:
        await asyncio.to_thread(stack.kill, proc)
        marks.add(f"SIGKILL {proc.name} (relay leader of two)")


async def scenario(
    name: str,
    fault: Fault,
    *,
    pg: Postgres,
    seconds: float,
    rate: float,
    replicas_n: int = 1,
    seed: int = 11,
    mix: str | None = None,
) -> dict[str, Any]:
    stack = ProofStack(pg=pg, name=name.replace("-", ""))
    world = World.make(stack.run.split("_")[1], cities=4, donors=6)
    rng = random.Random(seed)
    try:
        keys = await stack.prepare(world.organisations())
        await asyncio.to_thread(stack.start, replicas=replicas_n)
        await stack.wait_leaders()
        client = Client({s: stack.api_ports(s) for s in SERVICES})
        gen = LoadGen(
            client,
            world,
            member=keys.member,
            logistics=keys.logistics,
            auditor=keys.auditor,
            admin=keys.admin,
            seed=seed,
        )
        await gen.register()
        await converge(stack)
        marks = Marks()
        load = asyncio.create_task(gen.run(seconds=seconds, rate=rate, mix=parse_mix(mix)))
        gen.began = marks.began
        await fault(stack, marks, seconds, rng)
        await load
        client.close()
        converged = await converge(stack, timeout=180)
        marks.add(f"converged ({converged:.1f} s after the load)")
        checks = await integrity(stack, gen.acknowledged)
        replayed = await asyncio.to_thread(audit, stack, "replay")
        compared = await asyncio.to_thread(audit, stack, "compare")
        statuses = figures(gen.samples, seconds)["statuses"]
        return {
            "scenario": name,
            "seconds": seconds,
            "rate": rate,
            "replicas": replicas_n,
            "faults": marks.items,
            "load": figures(gen.samples, seconds),
            "timeline": timeline(gen.samples),
            "answers_500": int(statuses.get("500", 0)),
            "transport_errors": int(statuses.get("0", 0)),
            **checks,
            "replay": replayed,
            "compare": compared,
            "read_model_differences": len(compared["differences"]),
            "unexpected": gen.unexpected[:20],
        }
    except Exception:
        print(stack.tail_logs())
        raise
    finally:
        stack.stop()
        await stack.drop()


@dataclass
class _Server:
    url: str


class DevStackRun:
    """`make run` as the system under test: its own data directory and free ports."""

    def __init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="twinaid-chaos-"))
        self.keys_dir = self.data_dir / "keys"
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.printed: Printed | None = None
        self.pg = _Server("")
        self.dbs: dict[str, str] = {}
        self.keys: Keys | None = None

    def start(self, timeout: float = 180) -> None:
        env = {**stack_env(self.data_dir), "RATE_LIMIT_PER_SECOND": "0"}
        with open(self.data_dir / "stderr.log", "w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shared.devstack"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.printed = Printed(read_until_ready(self.proc, timeout, sink=self.output))
        self.pg = _Server(self.printed.database)
        self.dbs = {s: with_database(self.printed.database, database_for(s)) for s in SERVICES}

    def api_url(self, service: str, i: int = 0) -> str:
        assert self.printed is not None
        return self.printed.apis[service]

    def api_ports(self, service: str) -> list[int]:
        return [urlsplit(self.api_url(service)).port or 0]

    def child(self, kind: str, service: str) -> psutil.Process:
        """The process of that kind now running (the service's, for an API or a worker)."""
        assert self.proc is not None
        if kind == "PostgreSQL":
            pid = (self.data_dir / "pg" / "postmaster.pid").read_text().split()[0]
            return psutil.Process(int(pid))
        wanted = {
            "API": f"services.{service}.app:create_app",
            "worker": f"services.{service}.worker",
        }.get(kind)
        for p in psutil.Process(self.proc.pid).children(recursive=True):
            if (p.name() == "tansu") if kind == "broker" else (wanted in p.cmdline()):
                return p
        raise LookupError(f"no {kind} of {service} running")

    def answering(self) -> bool:
        """Every API and every worker ready (`/readyz`), on the URLs printed at start-up."""
        assert self.printed is not None
        try:
            for service in SERVICES:
                api = self.printed.apis[service]
                if httpx.get(f"{api}/readyz", timeout=2).status_code != 200:
                    return False
                if (
                    httpx.get(f"{self.printed.workers[service]}/readyz", timeout=2).status_code
                    != 200
                ):
                    return False
        except httpx.HTTPError:
            return False
        return True

    async def logged(self) -> dict[str, list[str]]:
        """Every service's event ids now."""
        ids = {}
        for service, url in self.dbs.items():
            async with connection(url) as conn:
                rows = await conn.fetch("SELECT event_id::text FROM events")
            ids[service] = [r[0] for r in rows]
        return ids

    async def applied_everywhere(self, logged: dict[str, list[str]]) -> bool:
        """Whether every consumer applied every one of `logged` of its upstreams."""
        try:
            for service, upstreams in CONSUMES.items():
                async with connection(self.dbs[service]) as conn:
                    for upstream in upstreams:
                        n = await conn.fetchval(
                            "SELECT count(*) FROM inbox WHERE consumer = $1 AND upstream = $2"
                            " AND event_id = ANY($3::uuid[])",
                            service,
                            upstream,
                            logged[upstream],
                        )
                        if n != len(logged[upstream]):
                            return False
        except (OSError, asyncpg.PostgresError):
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def tail_logs(self) -> str:
        said = "".join(self.output)[-3000:]
        logs = sorted((self.data_dir / "logs").glob("*.log"))
        return said + "\n".join(f"== {p.name}\n{p.read_text()[-1500:]}" for p in logs)


async def _logged(stack: DevStackRun) -> dict[str, list[str]]:
    """What every service logged; nothing while a database still refuses connections (an API
    can answer ready from a pooled connection while a restarted PostgreSQL is recovering)."""
    try:
        return await stack.logged()
    except (OSError, asyncpg.PostgresError):
        return {}


async def kill_each_child(
    stack: DevStackRun, marks: Marks, seconds: float, rng: random.Random
) -> dict[str, dict[str, float | None]]:
    """SIGKILL one child of each kind in turn, each once the previous one healed. Per kind, the
    seconds until the stack answered again on its URLs (`answering`), and until every consumer
    had applied every event logged until then, during the outage too (`caught_up`); None: not
    within a minute."""
    healed: dict[str, dict[str, float | None]] = {}
    for kind in CHILD_KINDS:
        await asyncio.sleep(seconds / (len(CHILD_KINDS) + 2))
        service = rng.choice(SERVICES)
        victim = stack.child(kind, service)
        victim.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.wait, 10)
        killed_at = time.monotonic()
        named = f"{service} {kind}" if kind in ("API", "worker") else kind
        marks.add(f"SIGKILL {named}")
        took: dict[str, float | None] = {"answering": None, "caught_up": None}
        healed[kind] = took
        logged: dict[str, list[str]] = {}
        while time.monotonic() - killed_at < 60 and None in took.values():
            if took["answering"] is None:
                if await asyncio.to_thread(stack.answering) and (logged := await _logged(stack)):
                    took["answering"] = round(time.monotonic() - killed_at, 1)
                    marks.add(f"{named}: answering again ({took['answering']} s)")
            elif await stack.applied_everywhere(logged):
                took["caught_up"] = round(time.monotonic() - killed_at, 1)
                marks.add(f"{named}: consumers caught up ({took['caught_up']} s)")
            await asyncio.sleep(0.25)
    return healed


async def devstack_scenario(
    name: str, *, seconds: float, rate: float, seed: int = 11, mix: str | None = None
) -> dict[str, Any]:
    """The same load, checks and audit as `scenario`, on `make run` with kill_each_child."""
    stack = DevStackRun()
    rng = random.Random(seed)
    try:
        await asyncio.to_thread(stack.start)
        world = World.make(uuid.uuid4().hex[:6], cities=4, donors=6)
        keys = stack.keys = await issue_keys(stack.dbs, world.organisations())
        client = Client({s: stack.api_ports(s) for s in SERVICES})
        gen = LoadGen(
            client,
            world,
            member=keys.member,
            logistics=keys.logistics,
            auditor=keys.auditor,
            admin=keys.admin,
            seed=seed,
        )
        await gen.register()
        await converge(stack)
        marks = Marks()
        load = asyncio.create_task(gen.run(seconds=seconds, rate=rate, mix=parse_mix(mix)))
        gen.began = marks.began
        heal = await kill_each_child(stack, marks, seconds, rng)
        await load
        client.close()
        converged = await converge(stack, timeout=180)
        marks.add(f"converged ({converged:.1f} s after the load)")
        checks = await integrity(stack, gen.acknowledged)
        replayed = await asyncio.to_thread(audit, stack, "replay")
        compared = await asyncio.to_thread(audit, stack, "compare")
        statuses = figures(gen.samples, seconds)["statuses"]
        said = "".join(stack.output)
        return {
            "scenario": name,
            "seconds": seconds,
            "rate": rate,
            "replicas": 1,
            "faults": marks.items,
            "heal_seconds": heal,
            "supervisor_restarts": said.count(" restarted (pid "),
            "load": figures(gen.samples, seconds),
            "timeline": timeline(gen.samples),
            "answers_500": int(statuses.get("500", 0)),
            "transport_errors": int(statuses.get("0", 0)),
            **checks,
            "replay": replayed,
            "compare": compared,
            "read_model_differences": len(compared["differences"]),
            "unexpected": gen.unexpected[:20],
        }
    except Exception:
        print(stack.tail_logs())
        raise
    finally:
        await asyncio.to_thread(stack.stop)


def healed_in_time(r: dict[str, Any]) -> bool:
    times = [t for kind in r.get("heal_seconds", {}).values() for t in kind.values()]
    return all(t is not None and t <= HEAL_WITHIN for t in times)


def passed(r: dict[str, Any]) -> bool:
    return bool(
        healed_in_time(r)
        and r["acknowledged"] == r["in_log"]
        and r["upstream_events"] == r["at_every_consumer"]
        and r["duplicates"] == 0
        and r["duplicates_applied_by_consumers"] == 0
        and r["read_model_differences"] == 0
        and r["replay"]["chains_intact"]
        and r["answers_500"] == 0
    )


def summary_rows(results: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    return [
        (
            r["scenario"],
            r["acknowledged"],
            r["in_log"],
            f"{r['at_every_consumer']}/{r['upstream_events']}",
            r["duplicates"] + r["duplicates_applied_by_consumers"],
            r["read_model_differences"],
            r["answers_500"],
            "yes" if r["replay"]["chains_intact"] else "NO",
            "PASS" if passed(r) else "FAIL",
        )
        for r in results
    ]


HEADERS = (
    "scenario",
    "acknowledged writes",
    "in the log",
    "events at every consumer",
    "duplicates applied",
    "read-model differences",
    "500s",
    "chains intact",
    "verdict",
)


async def run_all(
    *,
    seconds: float,
    rate: float,
    pause: float,
    pg_down: float,
    only: list[str],
    pg_url: str | None,
) -> list[dict[str, Any]]:
    # the proof's embedded PostgreSQL, started only if a scenario on the proof stack runs
    pg = Postgres(pg_url) if set(only) & set(PROOF_STACK_SCENARIOS) else None
    plans: dict[str, tuple[Fault, int]] = {
        "kills": (kills, 1),
        "broker-pause": (broker_pause(pause), 1),
        "pg-restart": (pg_restart(pg_down), 1),
        "replicas": (replicas, 2),
    }
    results = []
    for name in only:
        if name == "kill-each-child":
            print(f"scenario {name}: {seconds:.0f} s at {rate:g} operations/s ...", flush=True)
            results.append(await devstack_scenario(name, seconds=seconds, rate=rate))
            continue
        fault, n = plans[name]
        assert pg is not None
        length = max(seconds, pause + 10) if name == "broker-pause" else seconds
        print(f"scenario {name}: {length:.0f} s at {rate:g} operations/s ...", flush=True)
        results.append(await scenario(name, fault, pg=pg, seconds=length, rate=rate, replicas_n=n))
    return results


def main() -> None:
    from bench.common import table

    p = argparse.ArgumentParser(prog="python -m bench.loadgen_chaos", description=__doc__)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--rate", type=float, default=15)
    p.add_argument("--pause", type=float, default=30, help="seconds the broker stays paused")
    p.add_argument("--pg-down", type=float, default=5, help="seconds PostgreSQL stays down")
    p.add_argument("--only", default=",".join(SCENARIOS))
    p.add_argument("--pg", help="a PostgreSQL URL (pg-restart needs the embedded server)")
    p.add_argument("--out", help="write every figure as JSON here")
    args = p.parse_args()
    results = asyncio.run(
        run_all(
            seconds=args.seconds,
            rate=args.rate,
            pause=args.pause,
            pg_down=args.pg_down,
            only=[s for s in args.only.split(",") if s],
            pg_url=args.pg,
        )
    )
    print(table(HEADERS, summary_rows(results)))
    for r in results:
        if "heal_seconds" in r:
            heal = ", ".join(
                f"{kind} {t['answering']} s (consumers caught up {t['caught_up']} s)"
                for kind, t in r["heal_seconds"].items()
            )
            print(
                f"{r['scenario']}: time to heal: {heal}; acknowledged writes lost: {len(r['lost'])}"
            )
    if args.out:
        with open(args.out, "w") as out:
            json.dump(results, out, indent=2, default=str)
    raise SystemExit(0 if all(passed(r) for r in results) else 1)


if __name__ == "__main__":
    main()
