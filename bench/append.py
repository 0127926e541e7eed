"""Append throughput through HTTP: the registry's POST /v1/organisations against a naive baseline.

`python -m bench.append [--seconds 15] [--rounds 3] [--concurrency 32] [--countries UA]
[--pg embedded|system|URL] [--no-relay] [--no-naive-as-services] [--no-default-gc]`

Targets, each a single uvicorn process on a fresh database, loaded one at a time; the measured
seconds are split into rounds in which the targets take turns, so that a change in the machine's
background load (it is shared) hits every target alike:
  naive       bench/naive_app.py: POST /items, one jsonb INSERT, 201 with the id (the baseline)
  naive as services  the same route with the services' process settings: a pool that skips
              asyncpg's reset query, the garbage collector tuned (shared/runtime.py): a second
              ratio, for reference, without what the service gains from those settings alone
  service     the real registry API (auth, validation, namesake check, append, projection;
              registrations that arrive together share one transaction, each decided by the
              registration handler, their events appended in one round trip: shared/batching.py,
              services/registry/handlers/registrations.py)
  default GC  the same registry with GC_GEN0_THRESHOLD=0: CPython's collector as it comes,
              not tuned as the services tune it (shared/runtime.py): what the tuning gives
  +relay      the same, with the registry worker sealing and publishing to Tansu meanwhile
The load client is its own process (bench/load.py); every request registers a new organisation.
Prints figures and writes bench/results/append.json; the 0.75 ratio target is reported, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    MACHINE_NOTE,
    BenchStack,
    CpuMeter,
    Poller,
    WaitSampler,
    cancel_on_sigterm,
    connection,
    environment,
    header,
    log_dir,
    met,
    pg_server,
    postmaster_pid,
    run_load,
    say,
    stop_popen,
    summary,
    table,
    wait_relay_leader,
    write_results,
)
from shared import db as dbmod
from shared.auth import Role
from shared.infra import free_port, start_tansu
from shared.testing import fresh_database, issue_key
from tests.e2e.processes import Proc

TARGET_RATIO = 0.75
LABELS = {
    "naive": "naive POST /items",
    "naive_as_services": "naive, the services' pool and GC settings",
    "service": "registry POST /v1/organisations",
    "service_default_gc": "registry, Python's default GC",
    "service_with_relay": "registry + relay worker (same route)",
}
WARMUP_S = 2.0
ROUND_WARMUP_S = 1.0
RELAY_SQL = (
    "SELECT (SELECT count(*) FROM events) AS committed,"
    " coalesce((SELECT max(position) FROM relay_checkpoint), 0) AS published"
)


@dataclass
class Target:
    """One started server and what one round of load against it measured."""

    key: str
    label: str
    server: Proc
    db_url: str
    path: str
    headers: dict[str, str]
    count_sql: str
    extra_pids: dict[str, int] = field(default_factory=dict)
    relay: Poller | None = None
    group_commit: bool = False  # the server groups its writes: read its batch counters
    rounds: list[dict[str, Any]] = field(default_factory=list)


async def measure_round(
    target: Target,
    *,
    args: argparse.Namespace,
    postmaster: int | None,
    logs: Path,
    seconds: float,
    warmup: float,
) -> None:
    """Drive one started server with the closed-loop load for one round."""
    assert target.server.popen is not None and target.server.port is not None
    meter = CpuMeter()
    meter.watch("server", target.server.popen.pid)
    meter.watch("postgres", postmaster, children=True)
    meter.watch("harness", os.getpid())
    for label, pid in target.extra_pids.items():
        meter.watch(label, pid)
    waits = WaitSampler(target.db_url)
    counters_before = await _server_counters(target)

    def on_start() -> None:
        meter.mark("start")
        waits.start()

    def on_end() -> None:
        meter.mark("end")
        waits.freeze()

    try:
        load = await run_load(
            {
                "mode": "closed",
                "host": "127.0.0.1",
                "port": target.server.port,
                "path": target.path,
                "headers": target.headers,
                "countries": args.countries,
                "concurrency": args.concurrency,
                "warmup": warmup,
                "seconds": seconds,
            },
            logs=logs,
            on_start=on_start,
            on_end=on_end,
            on_pid=lambda pid: meter.watch("client", pid),
        )
    finally:
        await waits.stop()
    raw: dict[str, Any] = {
        "seconds": seconds,
        "load": load,
        "cores": meter.cores(),
        "waits": (dict(waits.counts), waits.samples),
    }
    if target.relay is not None:
        window = target.relay.between(meter.marks["start"][0], meter.marks["end"][0])
        if len(window) >= 2:
            (a0, first), (a1, last) = window[0], window[-1]
            raw["published_per_s"] = (last["published"] - first["published"]) / (a1 - a0)
            raw["lags"] = [row["committed"] - row["published"] for _, row in window]
        raw["drain_s"] = await _drain(target.db_url)
    counters_after = await _server_counters(target)
    if counters_before is not None and counters_after is not None:
        raw["counters"] = {
            k: counters_after[k] - counters_before.get(k, 0.0) for k in counters_after
        }
    target.rounds.append(raw)


SERVER_COUNTERS = {
    # what the service's /metrics counts, by the name this bench gives it
    "statements": 'twinaid_group_commit_batches_total{kind="registrations"}',
    "writes": 'twinaid_group_commit_items_total{kind="registrations"}',
    "gc_young": 'python_gc_collections_total{generation="0"}',
    "gc_middle": 'python_gc_collections_total{generation="1"}',
    "gc_full": 'python_gc_collections_total{generation="2"}',
    "gc_objects_collected": None,  # summed over the generations
}


async def _server_counters(target: Target) -> dict[str, float] | None:
    """The service's group-commit and garbage-collector counters, from its /metrics."""
    if not target.group_commit:
        return None
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"http://127.0.0.1:{target.server.port}/metrics")).text
    found = dict.fromkeys(SERVER_COUNTERS, 0.0)
    by_series = {series: name for name, series in SERVER_COUNTERS.items() if series}
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series in by_series:
            found[by_series[series]] = float(value)
        elif series.startswith("python_gc_objects_collected_total{"):
            found["gc_objects_collected"] += float(value)
    return found


def combine(target: Target) -> dict[str, Any]:
    """One result from the target's rounds."""
    rounds = target.rounds
    seconds = sum(r["seconds"] for r in rounds)
    latencies = [x for r in rounds for x in r["load"]["latencies_ms"]]
    statuses: Counter[str] = Counter()
    exceptions: Counter[str] = Counter()
    waits: Counter[str] = Counter()
    samples = 0
    for r in rounds:
        statuses.update(r["load"]["statuses"])
        exceptions.update(r["load"]["exceptions"])
        waits.update(r["waits"][0])
        samples += r["waits"][1]
    names = {name for r in rounds for name in r["cores"]}
    cores = {
        name: round(sum(r["cores"].get(name, 0.0) for r in rounds) / len(rounds), 2)
        for name in sorted(names)
    }
    result: dict[str, Any] = {
        "requests_per_s": round(len(latencies) / seconds, 1),
        "requests_per_s_by_round": [
            round(r["load"]["completed"] / r["seconds"], 1) for r in rounds
        ],
        "latency_ms": summary(latencies),
        "errors": sum(r["load"]["errors"] for r in rounds),
        "statuses": dict(statuses),
        "exceptions": dict(exceptions),
        "completed_per_second": [n for r in rounds for n in r["load"]["completed_per_second"]],
        "cores_used": cores,
        "postgres_active_backends": {
            k: round(v / max(samples, 1), 2) for k, v in waits.most_common(6)
        },
    }
    counted = [r["counters"] for r in rounds if "counters" in r]
    if counted:
        total = {k: sum(c.get(k, 0.0) for c in counted) for k in SERVER_COUNTERS}
        statements, writes = total["statements"], total["writes"]
        result["group_commit"] = {
            "statements": int(statements),
            "writes": int(writes),
            "writes_per_statement": round(writes / statements, 1) if statements else None,
        }
        result["garbage_collector"] = {
            "collections": {
                "young": int(total["gc_young"]),
                "middle": int(total["gc_middle"]),
                "full": int(total["gc_full"]),
            },
            "young_collections_per_1000_writes": (
                round(1000 * total["gc_young"] / writes, 1) if writes else None
            ),
            "objects_collected": int(total["gc_objects_collected"]),
        }
    if target.relay is not None:
        lags = [x for r in rounds for x in r.get("lags", [])]
        rates = [r["published_per_s"] for r in rounds if "published_per_s" in r]
        result["relay_published_per_s"] = round(sum(rates) / len(rates), 1) if rates else None
        result["relay_lag_events"] = summary(lags, digits=0)
        drains = [r["drain_s"] for r in rounds]
        result["relay_drain_after_load_s"] = (
            None if None in drains else max(d for d in drains if d is not None)
        )
    return result


async def _drain(db_url: str, timeout: float = 30) -> float | None:
    """Seconds until the relay has published every committed event (None: not within timeout)."""
    started = time.monotonic()
    async with connection(db_url) as conn:
        while time.monotonic() - started < timeout:
            left = await conn.fetchval(
                "SELECT (SELECT count(*) FROM events)"
                " - coalesce((SELECT max(position) FROM relay_checkpoint), 0)"
            )
            if left <= 0:
                return round(time.monotonic() - started, 2)
            await asyncio.sleep(0.05)
    return None


async def start_naive(
    stack: BenchStack, server_url: str, cleanup: AsyncExitStack, *, as_services: bool = False
) -> Target:
    db_url = await cleanup.enter_async_context(fresh_database(server_url))
    proc = stack.factory_app(
        "naive-as-services-api" if as_services else "naive-api",
        "bench.naive_app:create_app",
        db_url,
        **({"NAIVE_AS_SERVICES": "1"} if as_services else {}),
    )
    cleanup.callback(stack.stop, proc)
    stack.wait_ready(proc)
    return Target(
        key="naive_as_services" if as_services else "naive",
        label=LABELS["naive_as_services" if as_services else "naive"],
        server=proc,
        db_url=db_url,
        path="/items",
        headers={},
        count_sql="SELECT count(*) FROM bench_items",
    )


async def start_service(
    stack: BenchStack,
    server_url: str,
    cleanup: AsyncExitStack,
    *,
    with_relay: bool,
    default_gc: bool = False,
) -> Target:
    db_url = await cleanup.enter_async_context(
        fresh_database(server_url, dbmod.schema_text("services.registry"))
    )
    token = await issue_key(db_url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
    headers = {"Authorization": f"Bearer {token}"}
    if default_gc:  # the same app with CPython's collector as it comes
        api = stack.factory_app(
            "registry-default-gc-api",
            "services.registry.app:create_app",
            db_url,
            GC_GEN0_THRESHOLD="0",
        )
    else:
        api = stack.api("registry", db_url)
    cleanup.callback(stack.stop, api)
    url = stack.wait_ready(api)
    key = "service_with_relay" if with_relay else "service_default_gc" if default_gc else "service"
    target = Target(
        key=key,
        label=LABELS[key],
        server=api,
        db_url=db_url,
        path="/v1/organisations",
        headers=headers,
        count_sql="SELECT count(*) FROM events",
        group_commit=True,
    )
    if with_relay:
        worker = stack.worker("registry", db_url)
        cleanup.callback(stack.stop, worker)
        assert worker.popen is not None
        target.extra_pids["relay worker"] = worker.popen.pid
        await wait_relay_leader(db_url)
        await _first_publish(url, headers, db_url)
        target.relay = Poller(db_url, RELAY_SQL)
        target.relay.start()
        cleanup.push_async_callback(target.relay.stop)
    return target


async def _first_publish(url: str, headers: dict[str, str], db_url: str) -> None:
    """One write, and wait until the relay published it: the worker is up and leading."""
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
        response = await client.post(
            "/v1/organisations",
            json={
                "organisation_id": f"warm-{uuid.uuid4().hex[:8]}",
                "name": "Warm-up",
                "kind": "municipality",
                "country": "UA",
            },
        )
        response.raise_for_status()
    if await _drain(db_url, timeout=60) is None:
        raise RuntimeError("the relay worker did not publish within 60 s")


def report(
    args: argparse.Namespace, env: dict[str, Any], results: dict[str, Any], logs: Path
) -> dict[str, Any]:
    labels = LABELS
    rows = []
    for key, r in results.items():
        cores = r["cores_used"]
        rows.append(
            [
                labels[key],
                r["requests_per_s"],
                r["latency_ms"].get("p50", float("nan")),
                r["latency_ms"].get("p99", float("nan")),
                r["errors"],
                cores.get("client", 0.0),
                cores.get("server", 0.0),
                cores.get("postgres", 0.0),
                cores.get("relay worker", 0.0),
                cores.get("other", 0.0),
            ]
        )
    header(
        f"Append throughput through HTTP: {args.concurrency} connections, {args.seconds:g} s"
        f" measured per target in {args.rounds} rounds; one target at a time, taking turns",
        env,
    )
    say()
    say(
        table(
            [
                "target",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "client",
                "server",
                "postgres",
                "relay",
                "other",
            ],
            rows,
        )
    )
    say(
        "(client .. other: average CPU cores used during the measured window; other = the rest"
        " of the machine)"
    )
    ratio = None
    if "naive" in results and "service" in results and results["naive"]["requests_per_s"]:
        ratio = round(results["service"]["requests_per_s"] / results["naive"]["requests_per_s"], 3)
        say()
        say(
            f"ratio service/naive: {ratio:.2f}  (target >= {TARGET_RATIO}: "
            f"{met(ratio >= TARGET_RATIO)})"
        )
        if results.get("naive_as_services", {}).get("requests_per_s"):
            alike = (
                results["service"]["requests_per_s"]
                / results["naive_as_services"]["requests_per_s"]
            )
            say(
                f"ratio service/naive with the services' pool and GC settings (for reference):"
                f" {alike:.2f}"
            )
    if (
        "service_with_relay" in results
        and "service" in results
        and results["service"]["requests_per_s"] > 0
    ):
        r = results["service_with_relay"]
        cost = 1 - r["requests_per_s"] / results["service"]["requests_per_s"]
        say(
            f"with the relay sealing and publishing at the same time: {cost:.0%} fewer req/s;"
            f" relay published {r.get('relay_published_per_s', '?')} events/s, lag"
            f" {r.get('relay_lag_events', {})}, drained {r.get('relay_drain_after_load_s')} s"
            " after the load stopped"
        )
    for key, r in results.items():
        if "group_commit" in r:
            g = r["group_commit"]
            say(
                f"{labels[key]}: {g['writes']} registrations in {g['statements']} batches"
                f" (group commit: {g['writes_per_statement']} a batch, one transaction each,"
                " warm-ups included)"
            )
    for key, r in results.items():
        if "garbage_collector" in r:
            g = r["garbage_collector"]
            c = g["collections"]
            say(
                f"{labels[key]}: garbage collections young/middle/full {c['young']}/{c['middle']}"
                f"/{c['full']} ({g['young_collections_per_1000_writes']} young a 1,000 writes),"
                f" {g['objects_collected']} objects collected by them (warm-ups included)"
            )
    if (
        "service_default_gc" in results
        and "service" in results
        and results["service_default_gc"]["requests_per_s"]
    ):
        gain = (
            results["service"]["requests_per_s"] / results["service_default_gc"]["requests_per_s"]
        )
        say(
            f"the services' GC tuning (shared/runtime.py): x{gain:.2f} req/s against"
            " CPython's default"
        )
    say()
    say("req/s by round, then second by second (does it hold as the tables grow?):")
    for key, r in results.items():
        say(f"  {labels[key]}: {r['requests_per_s_by_round']}")
        say(f"    {' '.join(str(n) for n in r['completed_per_second'])}")
    for key, r in results.items():
        if r["errors"]:
            say(f"errors in {labels[key]}: statuses {r['statuses']}, exceptions {r['exceptions']}")
    say()
    say("What the target database's active backends were doing (average count per sample):")
    for key, r in results.items():
        say(f"  {labels[key]}: {r['postgres_active_backends']}")
    say(f"logs: {logs}")
    return {
        "benchmark": "append",
        "note": MACHINE_NOTE.format(cores=env["cores"]),
        "environment": env,
        "parameters": {
            "seconds": args.seconds,
            "rounds": args.rounds,
            "warmup_s": {"first_round": WARMUP_S, "later_rounds": ROUND_WARMUP_S},
            "concurrency": args.concurrency,
            "countries": args.countries,
            "pool_size": 20,
            "uvicorn": "one process, asyncio loop, h11",
        },
        "results": results,
        "ratio_service_over_naive": ratio,
        "ratio_service_over_naive_as_services": (
            round(
                results["service"]["requests_per_s"]
                / results["naive_as_services"]["requests_per_s"],
                3,
            )
            if results.get("naive_as_services", {}).get("requests_per_s") and "service" in results
            else None
        ),
        "target_ratio": TARGET_RATIO,
        "target_met": None if ratio is None else ratio >= TARGET_RATIO,
    }


async def main_async(args: argparse.Namespace) -> None:
    cancel_on_sigterm()
    server_url = pg_server(args.pg)
    env = await environment(server_url, args.pg)
    postmaster = await postmaster_pid(server_url)
    logs = log_dir("append")
    port = free_port()
    stack = BenchStack(kafka=f"127.0.0.1:{port}", prefix=f"bench{uuid.uuid4().hex[:8]}.", logs=logs)
    async with AsyncExitStack() as cleanup:
        tansu = start_tansu(port, log_path=logs / "tansu.log")
        cleanup.callback(stop_popen, tansu)
        cleanup.callback(stack.stop_all)
        say("append benchmark: starting the targets (each on a fresh database) ...")
        targets = [await start_naive(stack, server_url, cleanup)]
        if args.naive_as_services:
            targets.append(await start_naive(stack, server_url, cleanup, as_services=True))
        targets.append(await start_service(stack, server_url, cleanup, with_relay=False))
        if args.default_gc:
            targets.append(
                await start_service(stack, server_url, cleanup, with_relay=False, default_gc=True)
            )
        if args.relay:
            targets.append(await start_service(stack, server_url, cleanup, with_relay=True))
        per_round = args.seconds / args.rounds
        for i in range(args.rounds):
            for target in targets:
                warmup = WARMUP_S if i == 0 else ROUND_WARMUP_S
                say(
                    f"  round {i + 1}/{args.rounds}: {target.label}, {warmup:g} s warm-up,"
                    f" {per_round:g} s measured"
                )
                await measure_round(
                    target,
                    args=args,
                    postmaster=postmaster,
                    logs=logs,
                    seconds=per_round,
                    warmup=warmup,
                )
        results = {target.key: combine(target) for target in targets}
        for target in targets:
            async with connection(target.db_url) as conn:
                results[target.key]["rows_in_database_after_run"] = int(
                    await conn.fetchval(target.count_sql)
                )
    data = report(args, env, results, logs)
    if args.save:
        say(f"results: {write_results(args.save, data)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per target")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="the measured seconds are split into this many rounds and the targets take turns,"
        " so that a change in background load hits every target alike",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="client connections")
    parser.add_argument("--pg", default="embedded", help="embedded | system | a server URL")
    parser.add_argument(
        "--countries",
        type=lambda v: v.split(","),
        default=["UA"],
        help="countries the organisations take turns in (default UA: the registry takes one lock"
        " per country, so one country is the contended case)",
    )
    parser.add_argument(
        "--no-naive-as-services",
        dest="naive_as_services",
        action="store_false",
        help="skip the naive route with the services' process settings (a pool without asyncpg's"
        " reset query, the GC tuned); the plain naive route, the issue's baseline, has neither",
    )
    parser.add_argument(
        "--no-default-gc",
        dest="default_gc",
        action="store_false",
        help="skip the registry with CPython's garbage collector as it comes (GC_GEN0_THRESHOLD=0)",
    )
    parser.add_argument(
        "--no-relay",
        dest="relay",
        action="store_false",
        help="skip the run with the relay worker publishing meanwhile",
    )
    parser.add_argument(
        "--save",
        default="append",
        metavar="NAME",
        help="write bench/results/NAME.json ('' to skip)",
    )
    args = parser.parse_args()
    try:
        asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: processes stopped, databases dropped")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
