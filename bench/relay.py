"""Relay throughput and end-to-end latency: registry API -> relay -> Tansu -> pledges consumer.

`python -m bench.relay [--rate 200] [--seconds 20] [--burst 5000] [--pg embedded|system|URL]`

Steady: organisations are written through the API at a fixed open-loop rate. Measured: events/s
published (relay_checkpoint progress), relay lag (committed events not yet published, sampled
every 100 ms) and end-to-end latency from the write (its HTTP response, i.e. after the commit;
also from the event's recorded_at) to the consumer's effect (inbox.applied_at in the pledges
database, joined on event id). Burst: with the relay stopped, N writes as fast as possible; then
the relay starts and the drain is timed. Prints figures and writes bench/results/relay.json; the
p99 < 100 ms target is reported, never asserted.

Consumer verification (chain links and relay signatures, shared/authenticity.py) on and off in
the same run: the steady phase and a consumer burst (N events published with the consumer
stopped, then drained by it) run first with CONSUMER_VERIFY=false, then again with it on; the
ratio of the two drain rates is reported against its target (>= 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    MACHINE_NOTE,
    BenchStack,
    CpuMeter,
    Poller,
    cancel_on_sigterm,
    connection,
    environment,
    header,
    log_dir,
    met,
    percentile,
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
from shared.settings import Settings
from shared.signing import Signer
from shared.testing import fresh_database, issue_key
from tests.e2e.processes import Proc

TARGET_P99_MS = 100.0
TARGET_DRAIN_RATIO = 0.8  # the consumer's burst drain with verification, to without
# twice the consumers' session timeout (shared/kafka.py: 6 s): a consumer's group settles
# (its topics found, its partitions assigned, a late rebalance done) before a phase measures it
GROUP_SETTLE_S = 12.0
WARMUP_WRITES = 100
BURST_SAMPLE_S = 0.02
CONSUMER = "pledges"
PROGRESS_SQL = (
    "SELECT (SELECT count(*) FROM events) AS committed,"
    " (SELECT position FROM sealer_state) AS sealed,"
    " coalesce((SELECT max(position) FROM relay_checkpoint), 0) AS published"
)
APPLIED_SQL = "SELECT count(*) AS applied FROM inbox WHERE upstream = 'registry'"


class Rig:
    """The running stack of one benchmark run."""

    def __init__(
        self,
        *,
        stack: BenchStack,
        registry_db: str,
        pledges_db: str,
        url: str,
        api: Proc,
        admin: str,
        countries: list[str],
        postmaster: int | None,
        broker: int,
    ) -> None:
        self.stack = stack
        self.registry_db = registry_db
        self.pledges_db = pledges_db
        self.url = url
        self.api = api
        self.admin = admin
        self.countries = countries
        self.postmaster = postmaster
        self.broker = broker
        self.feed_key = ""
        self.relay: Proc | None = None
        self.consumer: Proc | None = None

    @property
    def port(self) -> int:
        assert self.api.port is not None
        return self.api.port

    def load_config(self, **mode: object) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "path": "/v1/organisations",
            "headers": {"Authorization": f"Bearer {self.admin}"},
            "countries": self.countries,
            **mode,
        }

    async def progress(self) -> tuple[int, int, int, int]:
        """(committed, sealed, published, applied) now."""
        async with connection(self.registry_db) as conn:
            row = await conn.fetchrow(PROGRESS_SQL)
        async with connection(self.pledges_db) as conn:
            applied = int(await conn.fetchval(APPLIED_SQL))
        return int(row["committed"]), int(row["sealed"]), int(row["published"]), applied

    async def settle(self, timeout: float = 60) -> float | None:
        """Seconds until every committed event is published and applied (None: timed out)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            committed, _, published, applied = await self.progress()
            if published >= committed and applied >= committed:
                return round(time.monotonic() - started, 2)
            await asyncio.sleep(0.05)
        return None

    async def feed_requests(self) -> int:
        """Requests to the registry's /v1/events so far: the consumer catching up over HTTP."""
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"{self.url}/metrics")).text
        total = 0
        for line in text.splitlines():
            if line.startswith("twinaid_http_requests_total{") and 'route="/v1/events"' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def meter(self) -> CpuMeter:
        meter = CpuMeter()
        for name, proc in (("api", self.api), ("relay", self.relay), ("consumer", self.consumer)):
            if proc is not None and proc.popen is not None:
                meter.watch(name, proc.popen.pid)
        meter.watch("postgres", self.postmaster, children=True)
        meter.watch("broker", self.broker)
        meter.watch("harness", os.getpid())
        return meter


async def steady(rig: Rig, args: argparse.Namespace) -> dict[str, Any]:
    say(f"  steady: {args.rate:g} writes/s for {args.seconds:g} s (open loop) ...")
    meter = rig.meter()
    progress = Poller(rig.registry_db, PROGRESS_SQL, every=0.1)
    applied = Poller(rig.pledges_db, APPLIED_SQL, every=0.1)
    feed_before, gaps_before = await rig.feed_requests(), gap_warnings(rig.stack.logs)
    progress.start()
    applied.start()
    try:
        load = await run_load(
            rig.load_config(mode="rate", rate=args.rate, seconds=args.seconds),
            logs=rig.stack.logs,
            on_start=lambda: meter.mark("start"),
            on_end=lambda: meter.mark("end"),
            on_pid=lambda pid: meter.watch("client", pid),
        )
        settled = await rig.settle()
    finally:
        await progress.stop()
        await applied.stop()
    feed_after, gaps_after = await rig.feed_requests(), gap_warnings(rig.stack.logs)
    t0, t1 = meter.marks["start"][0], meter.marks["end"][0]
    window = progress.between(t0, t1)
    lags = [row["committed"] - row["published"] for _, row in window]
    unsealed = [row["committed"] - row["sealed"] for _, row in window]
    (a0, first), (a1, last) = window[0], window[-1]
    published_rate = (last["published"] - first["published"]) / max(a1 - a0, 1e-9)
    latency = await end_to_end(rig, load["requests"])
    p99 = latency["from_response_ms"].get("p99")
    return {
        "rate_requested": args.rate,
        "seconds": args.seconds,
        "writes": {
            "scheduled": load["scheduled"],
            "ok": load["completed"],
            "errors": load["errors"],
            "statuses": load["statuses"],
            "exceptions": load["exceptions"],
            "achieved_per_s": round(load["completed"] / load["elapsed_s"], 1),
            "sent_late_over_5ms": load["sent_late_over_5ms"],
            "connections_opened": load["connections_opened"],
            "http_latency_ms_from_schedule": summary(load["latencies_ms"]),
        },
        "relay_published_per_s": round(published_rate, 1),
        "relay_lag_events": {
            "samples": len(lags),
            "max": max(lags, default=0),
            "p99": percentile(lags, 99) if lags else None,
            "p50": percentile(lags, 50) if lags else None,
        },
        "unsealed_events": {
            "max": max(unsealed, default=0),
            "p99": percentile(unsealed, 99) if unsealed else None,
        },
        "end_to_end": latency,
        "target_p99_ms": TARGET_P99_MS,
        "target_met": p99 is not None and p99 < TARGET_P99_MS,
        "settled_after_load_s": settled,
        "consumer_feed_requests_during_run": feed_after - feed_before,
        "gap_warnings_during_run": gaps_after - gaps_before,
        "cores_used": meter.cores(),
    }


async def end_to_end(rig: Rig, requests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Join each write (HTTP response time) with its event (registry) and its effect (pledges)."""
    done = {r["id"]: r["done"] for r in requests if r["status"] == 201}
    async with connection(rig.registry_db) as conn:
        events = await conn.fetch(
            "SELECT e.event_id, e.data ->> 'organisation_id' AS organisation_id, e.recorded_at,"
            " c.sealed_at FROM events e"
            " LEFT JOIN event_chain c ON c.event_id = e.event_id"
            " WHERE e.event_type = 'registry.organisation-registered'"
            " AND e.data ->> 'organisation_id' = ANY($1::text[])",
            list(done),
        )
    async with connection(rig.pledges_db) as conn:
        inbox = {
            r["event_id"]: r["applied_at"]
            for r in await conn.fetch(
                "SELECT event_id, applied_at FROM inbox WHERE consumer = $1"
                " AND event_id = ANY($2::uuid[])",
                CONSUMER,
                [e["event_id"] for e in events],
            )
        }
    from_response, from_recorded, to_seal, missing = [], [], [], 0
    for event in events:
        applied_at = inbox.get(event["event_id"])
        if applied_at is None:
            missing += 1
            continue
        responded = done[event["organisation_id"]]
        from_response.append((applied_at.timestamp() - responded) * 1000)
        from_recorded.append((applied_at - event["recorded_at"]).total_seconds() * 1000)
        if event["sealed_at"] is not None:
            to_seal.append((event["sealed_at"].timestamp() - responded) * 1000)
    return {
        "events": len(events),
        "not_applied": missing,
        "samples_ms": from_response,  # pooled across phases of one mode, then dropped
        "from_response_ms": summary(from_response),
        "from_recorded_at_ms": summary(from_recorded),
        "response_to_sealed_ms": summary(to_seal),
    }


async def burst(rig: Rig, args: argparse.Namespace) -> dict[str, Any]:
    say(f"  burst: {args.burst} writes with the relay stopped, then the relay drains them ...")
    assert rig.relay is not None
    rig.stack.stop(rig.relay)
    rig.relay = None
    _, _, _, applied0 = await rig.progress()
    load = await run_load(
        rig.load_config(mode="count", total=args.burst, concurrency=32), logs=rig.stack.logs
    )
    committed, sealed, published, _ = await rig.progress()
    n = committed - published
    progress = Poller(rig.registry_db, PROGRESS_SQL, every=BURST_SAMPLE_S)
    applied = Poller(rig.pledges_db, APPLIED_SQL, every=BURST_SAMPLE_S)
    progress.start()
    applied.start()
    started = time.monotonic()
    rig.relay = rig.stack.worker("registry", rig.registry_db)
    meter = rig.meter()
    meter.mark("start")
    leader = await wait_relay_leader(rig.registry_db)
    try:
        deadline = started + 120
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if (
                progress.latest().get("published", 0) >= committed
                and applied.latest().get("applied", 0) >= committed
            ):
                break
        meter.mark("end")
    finally:
        await progress.stop()
        await applied.stop()

    def first(samples: list[tuple[float, dict[str, Any]]], key: str, above: int) -> float | None:
        return next((round(t - started, 2) for t, row in samples if row[key] > above), None)

    def reached(
        samples: list[tuple[float, dict[str, Any]]],
        key: str,
        target: int,
    ) -> float | None:
        return next((round(t - started, 2) for t, row in samples if row[key] >= target), None)

    seal_first = first(progress.samples, "sealed", sealed)
    seal_done = reached(progress.samples, "sealed", committed)
    pub_first = first(progress.samples, "published", published)
    pub_done = reached(progress.samples, "published", committed)
    applied_first = first(applied.samples, "applied", applied0)
    applied_done = reached(applied.samples, "applied", committed)

    def rate(count: int, t0: float | None, t1: float | None) -> float | None:
        return round(count / (t1 - t0), 1) if t0 is not None and t1 and t1 > t0 else None

    return {
        "events": n,
        "writes": {
            "ok": load["completed"],
            "errors": load["errors"],
            "per_s": round(load["completed"] / load["elapsed_s"], 1),
        },
        "seconds_after_worker_start": {
            "relay_leader": leader,
            "first_sealed": seal_first,
            "all_sealed": seal_done,
            "first_published": pub_first,
            "all_published": pub_done,
            "first_applied": applied_first,
            "all_applied": applied_done,
        },
        "relay_drain_per_s": rate(n, seal_first, pub_done),
        "seal_per_s": rate(n, seal_first, seal_done),
        "publish_per_s": rate(n, pub_first, pub_done),
        "consumer_per_s": rate(n, applied_first, applied_done),
        "sample_interval_s": BURST_SAMPLE_S,
        "cores_used_during_drain": meter.cores(),
    }


def start_consumer(rig: Rig, *, verify: bool) -> None:
    """(Re)start the pledges worker, checking what it consumes (CONSUMER_VERIFY) or not."""
    if rig.consumer is not None:
        rig.stack.stop(rig.consumer)
    os.environ["CONSUMER_VERIFY"] = "true" if verify else "false"
    rig.consumer = rig.stack.worker(
        CONSUMER, rig.pledges_db, feeds={"registry": rig.url}, feed_key=rig.feed_key
    )


async def consumer_burst(rig: Rig, args: argparse.Namespace, *, verify: bool) -> dict[str, Any]:
    """The consumer's own drain: N writes published with the consumer stopped, then the
    consumer (verifying or not) starts and applies them; events/s from its first to its last."""
    mode = "with" if verify else "without"
    say(f"  consumer burst {mode} verification: {args.burst} writes with the consumer stopped ...")
    assert rig.consumer is not None
    rig.stack.stop(rig.consumer)
    rig.consumer = None
    _, _, _, applied0 = await rig.progress()
    await run_load(
        rig.load_config(mode="count", total=args.burst, concurrency=32), logs=rig.stack.logs
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        committed, _, published, _ = await rig.progress()
        if published >= committed:
            break
        await asyncio.sleep(0.05)
    applied = Poller(rig.pledges_db, APPLIED_SQL, every=BURST_SAMPLE_S)
    feed_before, gaps_before = await rig.feed_requests(), gap_warnings(rig.stack.logs)
    applied.start()
    started = time.monotonic()
    start_consumer(rig, verify=verify)
    try:
        while time.monotonic() < started + 120:
            await asyncio.sleep(0.05)
            if applied.latest().get("applied", 0) >= committed:
                break
    finally:
        await applied.stop()
    feed_after, gaps_after = await rig.feed_requests(), gap_warnings(rig.stack.logs)
    samples = applied.samples
    t0 = next((t for t, row in samples if row["applied"] > applied0), None)
    t1 = next((t for t, row in samples if row["applied"] >= committed), None)
    n = committed - applied0
    return {
        "verify": verify,
        "events": n,
        "first_applied_s": round(t0 - started, 2) if t0 is not None else None,
        "all_applied_s": round(t1 - started, 2) if t1 is not None else None,
        "consumer_per_s": round(n / (t1 - t0), 1) if t0 is not None and t1 and t1 > t0 else None,
        # a gap the consumer did not see filled sends it to the registry's feed mid-drain
        "feed_requests": feed_after - feed_before,
        "gap_warnings": gaps_after - gaps_before,
    }


def pooled(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """The steady phases of one mode as one: the first phase's figures, with the end-to-end
    latency summarised over the writes of every phase (and each phase's p99 beside it)."""
    samples = [v for p in phases for v in p["end_to_end"].pop("samples_ms")]
    each = [p["end_to_end"]["from_response_ms"].get("p99") for p in phases]
    first = phases[0]
    latency = summary(samples)
    first["end_to_end"]["from_response_ms"] = latency
    first["end_to_end"]["events"] = sum(p["end_to_end"]["events"] for p in phases)
    first["end_to_end"]["not_applied"] = sum(p["end_to_end"]["not_applied"] for p in phases)
    first["phases"] = len(phases)
    first["p99_ms_per_phase"] = each
    for key in ("consumer_feed_requests_during_run", "gap_warnings_during_run"):
        first[key] = sum(p[key] for p in phases)
    p99 = latency.get("p99")
    first["target_met"] = p99 is not None and p99 < TARGET_P99_MS
    return first


def pooled_drain(drains: list[dict[str, Any]]) -> dict[str, Any]:
    """The consumer bursts of one mode: events/s over all of them, and each run's."""
    rates = [d["consumer_per_s"] for d in drains]
    first = dict(drains[0])
    first["runs_per_s"] = rates
    first["consumer_per_s"] = round(sum(rates) / len(rates), 1) if all(rates) else None
    for key in ("feed_requests", "gap_warnings"):
        first[key] = sum(d[key] for d in drains)
    return first


def gap_warnings(logs: Path) -> int:
    path = logs / "pledges-worker.log"
    if not path.exists():
        return 0
    return len(re.findall(r"did not fill", path.read_text(errors="replace")))


def report(args: argparse.Namespace, env: dict[str, Any], result: dict[str, Any]) -> None:
    s = result["steady"]
    w = s["writes"]
    e2e = s["end_to_end"]
    header("Relay: registry API -> relay (registry worker) -> Tansu -> pledges consumer", env)
    say()
    lag = s["relay_lag_events"]
    say(f"steady, {args.rate:g} writes/s open loop for {args.seconds:g} s:")
    say(
        f"  writes: {w['ok']} ok of {w['scheduled']}, {w['errors']} errors,"
        f" achieved {w['achieved_per_s']}/s"
    )
    if w["errors"]:
        say(f"  errors: statuses {w['statuses']}, exceptions {w['exceptions']}")
    say(f"  HTTP latency from the schedule (ms): {w['http_latency_ms_from_schedule']}")
    say(
        f"  relay published {s['relay_published_per_s']} events/s; lag (committed - published,"
        f" every 100 ms): p50 {lag['p50']}, p99 {lag['p99']}, max {lag['max']} events"
    )
    rows = [
        [label, d.get("p50"), d.get("p95"), d.get("p99"), d.get("max"), d.get("n")]
        for label, d in (
            ("write response -> applied", e2e["from_response_ms"]),
            ("recorded_at -> applied", e2e["from_recorded_at_ms"]),
            ("write response -> sealed", e2e["response_to_sealed_ms"]),
        )
    ]
    say()
    say(table(["end to end (ms)", "p50", "p95", "p99", "max", "events"], rows))
    p99 = e2e["from_response_ms"].get("p99")
    say(
        f"p99 write -> consumer effect: {p99} ms (target < {TARGET_P99_MS:g} ms at"
        f" {args.rate:g} writes/s: {met(s['target_met'])}); not applied: {e2e['not_applied']}"
    )
    say(
        f"  (over {s['phases']} phases, interleaved with those without; each phase's p99:"
        f" {s['p99_ms_per_phase']} ms)"
    )
    say(
        "consumer catch-ups over the HTTP feed during the steady phases:"
        f" {s['consumer_feed_requests_during_run']} requests,"
        f" {s['gap_warnings_during_run']} 'gap did not fill' warnings"
        f" ({result['gap_warnings']} in the whole run)"
    )
    say(f"CPU cores used during the window: {s['cores_used']}")
    off = result.get("steady_without_verification")
    if off:
        latency = off["end_to_end"]["from_response_ms"]
        say(
            "the same without consumer verification: p99 write -> consumer effect"
            f" {latency.get('p99')} ms, p50 {latency.get('p50')} ms"
            f" (target met: {met(off['target_met'])}; each phase's p99:"
            f" {off['p99_ms_per_phase']} ms); feed requests"
            f" {off['consumer_feed_requests_during_run']}, 'gap did not fill' warnings"
            f" {off['gap_warnings_during_run']}"
        )
        say(f"  CPU cores used during its window: {off['cores_used']}")
    c = result.get("consumer_burst")
    if c:
        say()
        say(
            table(
                [
                    "consumer burst",
                    "events",
                    "first (s)",
                    "all (s)",
                    "events/s",
                    "feed requests",
                    "gap warnings",
                ],
                [
                    [
                        f"verification {mode}",
                        c[mode]["events"],
                        c[mode]["first_applied_s"],
                        c[mode]["all_applied_s"],
                        c[mode]["consumer_per_s"],
                        c[mode]["feed_requests"],
                        c[mode]["gap_warnings"],
                    ]
                    for mode in ("off", "on")
                ],
            )
        )
        say(
            f"consumer drain with verification / without: {c['ratio_on_to_off']}"
            f" (target >= {TARGET_DRAIN_RATIO}: {met(c['target_met'])})"
        )
    b = result.get("burst")
    if b:
        t = b["seconds_after_worker_start"]
        say()
        say(
            f"burst: {b['events']} events written with the relay stopped"
            f" ({b['writes']['per_s']} writes/s), then the relay worker started:"
        )
        say(
            table(
                ["", "first (s)", "all (s)", "events/s"],
                [
                    ["sealed", t["first_sealed"], t["all_sealed"], b["seal_per_s"]],
                    ["published", t["first_published"], t["all_published"], b["publish_per_s"]],
                    [
                        "applied by consumer",
                        t["first_applied"],
                        t["all_applied"],
                        b["consumer_per_s"],
                    ],
                ],
            )
        )
        say(
            f"the relay worker held the leader lock {t['relay_leader']} s after its process"
            " started (imports, schema, broker check, topics)"
        )
        say(
            f"relay drain rate (first seal -> all published): {b['relay_drain_per_s']} events/s"
            " (seconds counted from the worker's process start, which includes its start-up)"
        )
    say(f"logs: {result['logs']}")


def pin_a_key(logs: Path) -> None:
    """Every process of the run signs with one key, pinned for the registry: what the
    consumer checks when its verification is on."""
    key_file = logs / "registry.ed25519"
    signer = Signer.from_file(key_file)
    os.environ["SIGNING_KEY_FILE"] = str(key_file)
    os.environ["TRUSTED_KEYS"] = json.dumps({"registry": [signer.public_key]})


@asynccontextmanager
async def fresh_rig(
    args: argparse.Namespace, server_url: str, postmaster: int | None, logs: Path, *, verify: bool
) -> AsyncIterator[Rig]:
    """A stack of its own: a new broker, new registry and pledges databases, the registry API,
    its relay and the pledges consumer (verifying or not), warmed up. Tansu, the dev broker,
    gets slower with every batch a topic holds (bench/broker.py measures it: its produce and
    fetch scan what is stored); Apache Kafka finds an offset through its segment index. A phase
    on the broker of the previous phases would measure the dev broker's age, not the path."""
    port = free_port()
    stack = BenchStack(kafka=f"127.0.0.1:{port}", prefix=f"bench{uuid.uuid4().hex[:8]}.", logs=logs)
    async with AsyncExitStack() as cleanup:
        tansu = start_tansu(port, log_path=logs / "tansu.log")
        cleanup.callback(stop_popen, tansu)
        registry_db = await cleanup.enter_async_context(
            fresh_database(server_url, dbmod.schema_text("services.registry"))
        )
        pledges_db = await cleanup.enter_async_context(
            fresh_database(server_url, dbmod.schema_text("services.pledges"))
        )
        cleanup.callback(stack.stop_all)
        admin = await issue_key(registry_db, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
        feed_key = await issue_key(registry_db, organisation=CONSUMER, roles=[Role.SERVICE])
        api = stack.api("registry", registry_db)
        url = stack.wait_ready(api)
        rig = Rig(
            stack=stack,
            registry_db=registry_db,
            pledges_db=pledges_db,
            url=url,
            api=api,
            admin=admin,
            postmaster=postmaster,
            broker=tansu.pid,
            countries=args.countries,
        )
        rig.feed_key = feed_key
        rig.relay = stack.worker("registry", registry_db)
        await wait_relay_leader(registry_db)
        # the consumer's first start joins its group and finds its topics: not what is measured
        start_consumer(rig, verify=verify)
        await asyncio.sleep(GROUP_SETTLE_S)
        await run_load(rig.load_config(mode="count", total=WARMUP_WRITES, concurrency=4), logs=logs)
        if await rig.settle(timeout=90) is None:
            raise RuntimeError(f"the warm-up writes did not reach the consumer; logs in {logs}")
        yield rig


async def main_async(args: argparse.Namespace) -> None:
    cancel_on_sigterm()
    server_url = pg_server(args.pg)
    env = await environment(server_url, args.pg)
    postmaster = await postmaster_pid(server_url)
    logs = log_dir("relay")
    pin_a_key(logs)
    say("relay benchmark: each phase starts its own broker, registry API and both workers ...")
    result: dict[str, Any] = {}
    bursts: dict[str, Any] = {}
    # The consumer without and with verification, in the order off, on, on, off, each phase on
    # a stack of its own (fresh_rig): whatever drifts with the machine weighs on both alike.
    phases: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    drains: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for verify in (False, True, True, False):
        async with fresh_rig(args, server_url, postmaster, logs, verify=verify) as rig:
            say(f"consumer verification {'on' if verify else 'off'}:")
            phases[verify].append(await steady(rig, args))
            if args.burst > 0:
                drains[verify].append(await consumer_burst(rig, args, verify=verify))
    result["steady"] = pooled(phases[True])
    result["steady_without_verification"] = pooled(phases[False])
    if args.burst > 0:
        bursts = {"on": pooled_drain(drains[True]), "off": pooled_drain(drains[False])}
        on, off = bursts["on"]["consumer_per_s"], bursts["off"]["consumer_per_s"]
        bursts["ratio_on_to_off"] = round(on / off, 3) if on and off else None
        bursts["target_ratio"] = TARGET_DRAIN_RATIO
        bursts["target_met"] = bool(on and off and on / off >= TARGET_DRAIN_RATIO)
        result["consumer_burst"] = bursts
        async with fresh_rig(args, server_url, postmaster, logs, verify=True) as rig:
            result["burst"] = await burst(rig, args)
    result["gap_warnings"] = gap_warnings(logs)
    result["logs"] = str(logs)
    report(args, env, result)
    data = {
        "benchmark": "relay",
        "note": MACHINE_NOTE.format(cores=env["cores"]),
        "environment": env,
        "parameters": {
            "rate": args.rate,
            "countries": args.countries,
            "seconds": args.seconds,
            "burst": args.burst,
            "warmup_writes": WARMUP_WRITES,
            "lag_sample_interval_s": 0.1,
            "settings": "the services' settings ({})".format(
                ", ".join(
                    f"{name} {getattr(Settings(), name)}"
                    for name in (
                        "relay_poll_interval",
                        "relay_batch_size",
                        "consumer_gap_grace",
                        "kafka_fetch_max_wait_ms",
                    )
                )
            ),
        },
        **result,
    }
    if args.save:
        say(f"results: {write_results(args.save, data)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="writes/s in the steady phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the steady phase")
    parser.add_argument(
        "--burst",
        type=int,
        default=5000,
        help="events written with the relay stopped (0 skips the burst)",
    )
    parser.add_argument("--pg", default="embedded", help="embedded | system | a server URL")
    parser.add_argument(
        "--countries",
        type=lambda v: v.split(","),
        default=["UA"],
        help="countries the organisations take turns in (the registry locks per country)",
    )
    parser.add_argument(
        "--save", default="relay", metavar="NAME", help="write bench/results/NAME.json ('' to skip)"
    )
    args = parser.parse_args()
    try:
        asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: processes stopped, databases dropped")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
