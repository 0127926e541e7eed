"""Faults under load, each followed by the full audit: `python -m bench.loadgen_chaos
[--seconds 60] [--rate 15] [--pause 30] [--only kills,broker-pause,...] [--out file.json]`.

Scenarios (each on a fresh set of databases and its own broker):
- kills: SIGKILL an API process, a worker and the relay leader at random moments, several
  times each; a supervisor (this harness) starts each again at once.
- broker-pause: SIGSTOP the broker for `--pause` seconds, then SIGCONT.
- pg-restart: stop PostgreSQL (fast shutdown) for a few seconds and start it again.
- replicas: two APIs and two workers per service; the load spread over both APIs; one relay
  leader killed on the way.

After each: wait until everything is relayed and applied, then count acknowledged writes found
in the log, events found at every consumer, duplicates applied, and run `twinaid audit replay`
and `twinaid audit compare` (read-model differences).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.loadgen import Client, LoadGen, World, figures, parse_mix, timeline
from bench.loadgen_stack import Postgres, ProofStack, audit, converge, integrity
from shared.settings import SERVICES

SCENARIOS = ("kills", "broker-pause", "pg-restart", "replicas")


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


def passed(r: dict[str, Any]) -> bool:
    return bool(
        r["acknowledged"] == r["in_log"]
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
    pg = Postgres(pg_url)
    plans: dict[str, tuple[Fault, int]] = {
        "kills": (kills, 1),
        "broker-pause": (broker_pause(pause), 1),
        "pg-restart": (pg_restart(pg_down), 1),
        "replicas": (replicas, 2),
    }
    results = []
    for name in only:
        fault, n = plans[name]
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
    if args.out:
        with open(args.out, "w") as out:
            json.dump(results, out, indent=2, default=str)
    raise SystemExit(0 if all(passed(r) for r in results) else 1)


if __name__ == "__main__":
    main()
