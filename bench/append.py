"""Append throughput through HTTP: the registry's POST /v1/organisations against a naive baseline.

`python -m bench.append [--seconds 15] [--concurrency 32] [--pg embedded|system|URL]`

Targets, one after the other, each a single uvicorn process on a fresh database:
  naive       bench/naive_app.py: POST /items, one jsonb INSERT, 201 with the id
  service     the real registry API (auth, validation, load stream, append, projection)
  +relay      the same, with the registry worker sealing and publishing to Tansu meanwhile
The load client is its own process (bench/load.py). Prints figures and writes
bench/results/append.json; the 0.75 ratio target is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from contextlib import AsyncExitStack
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
WARMUP_S = 2.0


async def measure(
    name: str,
    *,
    stack: BenchStack,
    server: Proc,
    db_url: str,
    path: str,
    headers: dict[str, str],
    args: argparse.Namespace,
    postmaster: int | None,
    extra_pids: dict[str, int] | None = None,
    count_sql: str,
    relay: Poller | None = None,
) -> dict[str, Any]:
    """Drive one started server with the closed-loop load; returns its figures."""
    assert server.popen is not None and server.port is not None
    meter = CpuMeter()
    meter.watch("server", server.popen.pid)
    meter.watch("postgres", postmaster, children=True)
    meter.watch("harness", os.getpid())
    for label, pid in (extra_pids or {}).items():
        meter.watch(label, pid)
    waits = WaitSampler(db_url)

    def on_start() -> None:
        meter.mark("start")
        waits.start()

    def on_end() -> None:
        meter.mark("end")
        waits.freeze()

    say(f"  {name}: {WARMUP_S:g} s warm-up, then {args.seconds:g} s measured ...")
    try:
        load = await run_load(
            {
                "mode": "closed",
                "host": "127.0.0.1",
                "port": server.port,
                "path": path,
                "headers": headers,
                "countries": args.countries,
                "concurrency": args.concurrency,
                "warmup": WARMUP_S,
                "seconds": args.seconds,
            },
            logs=stack.logs,
            on_start=on_start,
            on_end=on_end,
            on_pid=lambda pid: meter.watch("client", pid),
        )
    finally:
        await waits.stop()
    async with connection(db_url) as conn:
        rows = int(await conn.fetchval(count_sql))
    latencies = load["latencies_ms"]
    result: dict[str, Any] = {
        "requests_per_s": round(len(latencies) / args.seconds, 1),
        "latency_ms": summary(latencies),
        "errors": load["errors"],
        "statuses": load["statuses"],
        "exceptions": load["exceptions"],
        "rows_in_database_after_run": rows,
        "cores_used": meter.cores(),
        "postgres_active_backends": waits.summary(),
    }
    if relay is not None:
        t0, t1 = meter.marks["start"][0], meter.marks["end"][0]
        window = relay.between(t0, t1)
        if len(window) >= 2:
            (a0, first), (a1, last) = window[0], window[-1]
            result["relay_published_per_s"] = round(
                (last["published"] - first["published"]) / (a1 - a0), 1
            )
            lags = [row["committed"] - row["published"] for _, row in window]
            result["relay_lag_events"] = summary(lags, digits=0)
        result["relay_drain_after_load_s"] = await _drain(db_url)
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


async def run_naive(
    stack: BenchStack, server_url: str, args: argparse.Namespace, postmaster: int | None
) -> dict[str, Any]:
    async with AsyncExitStack() as cleanup:
        db_url = await cleanup.enter_async_context(fresh_database(server_url))
        proc = stack.factory_app("naive-api", "bench.naive_app:create_app", db_url)
        cleanup.callback(stack.stop, proc)
        stack.wait_ready(proc)
        return await measure(
            "naive POST /items",
            stack=stack,
            server=proc,
            db_url=db_url,
            path="/items",
            headers={},
            args=args,
            postmaster=postmaster,
            count_sql="SELECT count(*) FROM bench_items",
        )


async def run_service(
    stack: BenchStack,
    server_url: str,
    args: argparse.Namespace,
    postmaster: int | None,
    *,
    with_relay: bool,
) -> dict[str, Any]:
    async with AsyncExitStack() as cleanup:
        db_url = await cleanup.enter_async_context(
            fresh_database(server_url, dbmod.schema_text("services.registry"))
        )
        token = await issue_key(db_url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
        headers = {"Authorization": f"Bearer {token}"}
        api = stack.api("registry", db_url)
        cleanup.callback(stack.stop, api)
        url = stack.wait_ready(api)
        extra: dict[str, int] = {}
        relay: Poller | None = None
        if with_relay:
            worker = stack.worker("registry", db_url)
            cleanup.callback(stack.stop, worker)
            assert worker.popen is not None
            extra["relay worker"] = worker.popen.pid
            await wait_relay_leader(db_url)
            await _first_publish(url, headers, db_url)
            relay = Poller(
                db_url,
                "SELECT (SELECT count(*) FROM events) AS committed,"
                " coalesce((SELECT max(position) FROM relay_checkpoint), 0) AS published",
            )
            relay.start()
            cleanup.push_async_callback(relay.stop)
        name = "registry + relay worker" if with_relay else "registry POST /v1/organisations"
        return await measure(
            name,
            stack=stack,
            server=api,
            db_url=db_url,
            path="/v1/organisations",
            headers=headers,
            args=args,
            postmaster=postmaster,
            extra_pids=extra,
            count_sql="SELECT count(*) FROM events",
            relay=relay,
        )


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
    labels = {
        "naive": "naive POST /items",
        "service": "registry POST /v1/organisations",
        "service_with_relay": "registry + relay worker (same route)",
    }
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
        f"Append throughput through HTTP: {args.concurrency} connections, {WARMUP_S:g} s warm-up,"
        f" {args.seconds:g} s measured, targets run one after the other",
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
            "warmup_s": WARMUP_S,
            "concurrency": args.concurrency,
            "countries": args.countries,
            "pool_size": 20,
            "uvicorn": "one process, asyncio loop, h11",
        },
        "results": results,
        "ratio_service_over_naive": ratio,
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
    tansu = start_tansu(port, log_path=logs / "tansu.log")
    stack = BenchStack(kafka=f"127.0.0.1:{port}", prefix=f"bench{uuid.uuid4().hex[:8]}.", logs=logs)
    results: dict[str, Any] = {}
    try:
        say("append benchmark (one target at a time):")
        results["naive"] = await run_naive(stack, server_url, args, postmaster)
        results["service"] = await run_service(
            stack, server_url, args, postmaster, with_relay=False
        )
        if args.relay:
            results["service_with_relay"] = await run_service(
                stack, server_url, args, postmaster, with_relay=True
            )
    finally:
        stack.stop_all()
        stop_popen(tansu)
    data = report(args, env, results, logs)
    if args.save:
        say(f"results: {write_results(args.save, data)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per target")
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
