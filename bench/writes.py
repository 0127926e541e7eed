"""Every write kind through HTTP, each against the naive route in the same run (issue 19, point 3).

`python -m bench.writes [--seconds 12] [--rounds 3] [--concurrency 32] [--pg embedded|system|URL]
[--quick]` (--quick: the long convoy and the sweep stop at 1,000 events, 50 sweep writes)

Each service runs as its own uvicorn process on a fresh database, its cases on records of their
own (one process a service, not one a case: four pools of 20 are what PostgreSQL's 100
connections allow); organisations are announced to pledges and shipments through the handlers
their consumers run, pledge lines to shipments the same way, the rest is seeded through the
services' own routes. Cases:
  registration       registry POST /v1/organisations, a new organisation each request
  pledges, many needs  pledges POST /v1/pledges, one line answering one of 200 open needs
  pledges, one need  every client pledging to the same need (big enough never to be covered)
  entry batches      shipments POST /v1/convoys/{id}/entries, 5 checkpoints a request, to one of
                     32 convoys in transit
  one long convoy    single checkpoints to one convoy that has 10,000 events already
  confirmations      POST /v1/convoys/{id}/delivery, each request a different arrived convoy
                     (seeded before each round for as many as the last round's rate needs), each
                     client a receiver of its own
The baseline is bench/naive_app.py (POST /items: the body stored as one jsonb row), sent the same
bodies as the case it is compared with, in the same round. The measured seconds are split into
rounds in which the targets take turns, so that the machine's background load hits all alike.
The load client is its own process (bench/load.py, request templates in rotation). A write
refused for losing a race (409 concurrency-conflict: another write to the same convoy came
first) is sent again at once, as a client would, its latency counting from the first send; the
table gives how many were re-sent. Requests still unanswered 2 s after a window are dropped by
the client, and the next target waits until the server has finished them (idle again).

A history sweep first (the long convoy grows to its size there) times sequential writes (one
client, one request at a time) at 10, 1,000 and 10,000 events of history: single checkpoints to
one convoy (events in its stream) and single-line pledges to one need (pledge lines answering
it); "flat within 20 %" compares the median at the largest history with the one at the
smallest.

Prints a table and writes bench/results/writes.json. Targets (each case >= 0.75 of the naive
route, one need and one convoy >= 0.5; flat within 20 %) are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import append
from bench.common import (
    MACHINE_NOTE,
    BenchStack,
    CpuMeter,
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
    summary,
    table,
    write_results,
)
from shared import db as dbmod
from shared import directory
from shared.auth import Role
from shared.incoming import Incoming
from shared.testing import fresh_database, issue_key
from tests.e2e.processes import Proc

WARMUP_S = 2.0
ROUND_WARMUP_S = 1.0
NEEDS = 200  # pledges spread over this many needs
CONVOYS_IN_TRANSIT = 32  # entry batches spread over this many convoys
ENTRIES_PER_BATCH = 5
SEED_BATCH = 500  # entries a seeding request carries (the route's maximum)
RETRY_ON = "concurrency-conflict"  # a 409 for a lost race is sent again, as a client would
PLEDGE_SEED_LINES = 100  # lines a seeding pledge carries (a pledge's maximum)
FIRST_GUESS_PER_S = 600.0  # confirmations a second, before a round has measured it
ABANDON_AFTER_S = 2.0  # requests unanswered this long after a window are dropped by the client

ORGANISATIONS = {
    "kharkiv": ("Kharkiv", "municipality", "UA"),
    "lille": ("Lille", "municipality", "FR"),
    "chu-lille": ("CHU de Lille", "hospital", "FR"),
    "leeds": ("Leeds", "municipality", "GB"),
    "transports-nord": ("Transports du Nord", "company", "FR"),
}
DISPATCHED = "2022-06-07T06:10:00+02:00"
ON_THE_ROAD = "2022-06-08T09:30:00+02:00"
ARRIVED = "2022-06-10T10:00:00+03:00"

# -- request bodies (string.Template: ${id} unique, ${n} the request's number) --------------


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def registration_body() -> str:
    return _json(
        {
            "organisation_id": "${id}",
            "name": "Bench organisation ${id}",
            "kind": "municipality",
            "country": "UA",
            "region": "Kharkiv oblast",
        }
    )


def need_body(need_id: str, quantity: str = "1000000000") -> str:
    return _json(
        {
            "need_id": need_id,
            "kind": "item",
            "category": "generators",
            "description": "Generators for heating points and water pumping",
            "quantity": quantity,
            "unit": "pieces",
            "priority": "critical",
            "serves": ["heating", "water"],
        }
    )


def pledge_body(need_id: str, lines: int = 1) -> str:
    return _json(
        {
            "pledge_id": "${id}",
            "recipient_id": "kharkiv",
            "lines": [
                {
                    "line_id": f"l{i + 1}",
                    "kind": "in_kind",
                    "need_id": need_id,
                    "item": "Medium generator 5 kVA",
                    "category": "generators",
                    "quantity": "1",
                    "unit": "pieces",
                    "weight_kg": "95",
                }
                for i in range(lines)
            ],
        }
    )


def plan_body(convoy: str) -> str:
    return _json(
        {
            "convoy_id": convoy,
            "reference": "Lille - Kharkiv generators",
            "origin_id": "lille",
            "destination_id": "kharkiv",
            "carrier_id": "transports-nord",
            "planned_departure": "2022-06-07T06:00:00+02:00",
            "vehicles": [
                {"registration": "GH-482-LK", "type": "semi-trailer truck", "capacity_kg": "12000"}
            ],
            "occurred_at": "2022-06-01T09:00:00+02:00",
        }
    )


def load_body(pledge_id: str) -> str:
    return _json(
        {
            "manifest_line_id": "m1",
            "pledge_id": pledge_id,
            "line_id": "l1",
            "quantity": "10",
            "vehicle": "GH-482-LK",
            "occurred_at": "2022-06-06T15:00:00+02:00",
        }
    )


def checkpoints_body(count: int, prefix: str = "${id}") -> str:
    return _json(
        {
            "entries": [
                {
                    "entry_id": f"{prefix}-{i}",
                    "kind": "checkpoint",
                    "occurred_at": ON_THE_ROAD,
                    "place": "Poltava",
                    "coordinates": {"lat": 49.5883, "lon": 34.5514},
                }
                for i in range(count)
            ]
        }
    )


def road_body(arrived: bool) -> str:
    entries: list[dict[str, Any]] = [
        {"entry_id": "dispatch", "kind": "dispatch", "occurred_at": DISPATCHED}
    ]
    if arrived:
        entries.append(
            {"entry_id": "arrival", "kind": "arrival", "occurred_at": ARRIVED, "place": "Kharkiv"}
        )
    return _json({"entries": entries})


def delivery_body() -> str:
    return _json(
        {
            # each client is a person of the recipient's: one receiver for every confirmation
            # would make them all update that person's row (privacy_subjects) one at a time
            "receiver": {"name": "Receiver ${worker}", "role": "warehouse manager"},
            "lines": [{"manifest_line_id": "m1", "received": "10", "damaged": "0", "short": "0"}],
            "occurred_at": "2022-06-10T12:00:00+03:00",
        }
    )


# -- targets --------------------------------------------------------------------------------

Measured = dict[str, Any]


@dataclass
class Case:
    """One write kind: its service, the requests it sends, and what its rounds measured."""

    key: str
    label: str
    target_ratio: float
    server: Proc
    db_url: str
    headers: dict[str, str]
    requests: list[dict[str, str]]
    sent: int = 0  # requests sent so far: the next round's offset in the rotation
    ready: Callable[[int], Awaitable[None]] | None = None  # make `n` more requests valid
    rounds: list[Measured] = field(default_factory=list)
    naive_rounds: list[Measured] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bench:
    args: argparse.Namespace
    stack: BenchStack
    server_url: str
    postmaster: int | None
    logs: Path
    cleanup: AsyncExitStack

    servers: dict[str, tuple[Proc, str]] = field(default_factory=dict)

    async def service(self, name: str) -> tuple[Proc, str]:
        """The service's server, started on a fresh database the first time. The cases of one
        service share it (records of their own): a pool of 20 a process, as deployed, and the
        server's max_connections (100) allows four processes, not one a case."""
        if name not in self.servers:
            self.servers[name] = await self._start(name)
        return self.servers[name]

    async def _start(self, name: str) -> tuple[Proc, str]:
        scripts = [dbmod.schema_text(f"services.{name}")]
        if name != "registry":
            scripts.insert(0, directory.SCHEMA)
        db_url = await self.cleanup.enter_async_context(fresh_database(self.server_url, *scripts))
        if name != "registry":
            await announce_organisations(db_url, name)
        proc = self.stack.api(name, db_url)
        self.cleanup.callback(self.stack.stop, proc)
        self.stack.wait_ready(proc)
        return proc, db_url

    async def seed(
        self,
        proc: Proc,
        headers: dict[str, str],
        path: str,
        body: str,
        *,
        total: int,
        offset: int = 0,
        concurrency: int = 8,
        what: str,
    ) -> dict[str, Any]:
        """`total` requests from one template, numbered from `offset`; every one must succeed."""
        result = await run_load(
            {
                "mode": "count",
                "host": "127.0.0.1",
                "port": proc.port,
                "headers": headers,
                "requests": [{"path": path, "body": body}],
                "offset": offset,
                "concurrency": min(concurrency, total),
                "total": total,
            },
            logs=self.logs,
        )
        if result["errors"] or result["completed"] != total:
            raise RuntimeError(
                f"seeding {what}: {result['completed']} of {total} succeeded;"
                f" statuses {result['statuses']}, exceptions {result['exceptions']},"
                f" first refusals {result['error_samples']}"
            )
        return result


async def _key(db_url: str, organisation: str, role: Role) -> dict[str, str]:
    token = await issue_key(db_url, organisation=organisation, roles=[role])
    return {"Authorization": f"Bearer {token}"}


def _incoming(upstream: str, event_type: str, data: dict[str, Any], position: int) -> Incoming:
    return Incoming(
        upstream=upstream,
        event_id=uuid.uuid4(),
        position=position,
        event_type=event_type,
        stream_id=f"bench-{position}",
        stream_version=1,
        occurred_at=datetime(2022, 5, 1, tzinfo=UTC),
        data=data,
        correlation_id=f"corr-{position}",
        organisation=None,
    )


async def announce_organisations(db_url: str, service: str) -> None:
    """What the registry would have announced, applied by the service's own consumer handler."""
    handlers = importlib.import_module(f"services.{service}.subscriptions").HANDLERS
    handler = handlers["registry"]["registry.organisation-registered"]
    async with connection(db_url) as conn:
        for i, (oid, (name, kind, country)) in enumerate(ORGANISATIONS.items(), start=1):
            async with conn.transaction():
                await handler(
                    conn,
                    _incoming(
                        "registry",
                        "registry.organisation-registered",
                        {"organisation_id": oid, "name": name, "kind": kind, "country": country},
                        i,
                    ),
                )


async def announce_pledge_lines(db_url: str, prefix: str, start: int, count: int) -> None:
    """Committed in-kind lines as pledges announces them (pledges.pledge-line-updated), one a
    convoy: `{prefix}-{n}` line l1, 1,000 pieces."""
    from services.shipments import subscriptions

    handler = subscriptions.HANDLERS["pledges"][subscriptions.PLEDGE_LINE_UPDATED]
    async with connection(db_url) as conn, conn.transaction():
        for n in range(start, start + count):
            await handler(
                conn,
                _incoming(
                    "pledges",
                    subscriptions.PLEDGE_LINE_UPDATED,
                    {
                        "pledge_id": f"{prefix}-{n}",
                        "line_id": "l1",
                        "donor_id": "lille",
                        "recipient_id": "kharkiv",
                        "partnership_id": None,
                        "item": "Medium generator 5 kVA",
                        "category": "generators",
                        "unit": "pieces",
                        "quantity": "1000",
                        "weight_kg": "1000",
                        "delivered": "0",
                        "remaining": "1000",
                        "status": "committed",
                    },
                    1_000_000 + n if prefix == "ready" else 2_000_000 + n,
                ),
            )


@dataclass
class Shipments:
    bench: Bench
    proc: Proc
    db_url: str
    planner: dict[str, str]
    carrier: dict[str, str]
    recipient: dict[str, str]

    async def convoys(self, prefix: str, start: int, count: int, *, arrived: bool) -> None:
        """Convoys `{prefix}-{n}`: planned, one line loaded, dispatched (and arrived)."""
        await announce_pledge_lines(self.db_url, prefix, start, count)
        b = self.bench
        convoy = f"{prefix}-${{n}}"
        kw: dict[str, Any] = {"total": count, "offset": start}
        await b.seed(self.proc, self.planner, "/v1/convoys", plan_body(convoy), **kw, what="plan")
        await b.seed(
            self.proc,
            self.planner,
            f"/v1/convoys/{convoy}/manifest",
            load_body(convoy),
            **kw,
            what="load",
        )
        await b.seed(
            self.proc,
            self.carrier,
            f"/v1/convoys/{convoy}/entries",
            road_body(arrived),
            **kw,
            what="dispatch",
        )

    async def grow(self, convoy: str, to_events: int) -> int:
        """Checkpoints sent to `convoy` in batches until its stream holds `to_events` events."""
        missing = to_events - await stream_events(self.db_url, f"convoy-{convoy}")
        tag = uuid.uuid4().hex[:6]
        full, rest = divmod(max(missing, 0), SEED_BATCH)
        path = f"/v1/convoys/{convoy}/entries"
        if full:
            body = checkpoints_body(SEED_BATCH, f"seed{tag}-${{n}}")
            await self.bench.seed(
                self.proc, self.carrier, path, body, total=full, concurrency=1, what="history"
            )
        if rest:
            body = checkpoints_body(rest, f"rest{tag}-${{n}}")
            await self.bench.seed(
                self.proc, self.carrier, path, body, total=1, concurrency=1, what="history"
            )
        return await stream_events(self.db_url, f"convoy-{convoy}")


async def stream_events(db_url: str, stream_id: str) -> int:
    async with connection(db_url) as conn:
        return int(
            await conn.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", stream_id)
        )


async def start_naive(b: Bench) -> Proc:
    db_url = await b.cleanup.enter_async_context(fresh_database(b.server_url))
    proc = b.stack.factory_app("naive-api", "bench.naive_app:create_app", db_url)
    b.cleanup.callback(b.stack.stop, proc)
    b.stack.wait_ready(proc)
    return proc


# -- measuring ------------------------------------------------------------------------------


async def measure(
    b: Bench,
    proc: Proc,
    db_url: str | None,
    *,
    headers: dict[str, str],
    requests: list[dict[str, str]],
    offset: int,
    seconds: float,
    warmup: float,
) -> Measured:
    """One round of the closed-loop load against one server, with the CPU of every process."""
    assert proc.popen is not None and proc.port is not None
    meter = CpuMeter()
    meter.watch("server", proc.popen.pid)
    meter.watch("postgres", b.postmaster, children=True)
    meter.watch("harness", os.getpid())
    waits = WaitSampler(db_url) if db_url is not None else None

    def on_start() -> None:
        meter.mark("start")
        if waits is not None:
            waits.start()

    def on_end() -> None:
        meter.mark("end")
        if waits is not None:
            waits.freeze()

    try:
        load = await run_load(
            {
                "mode": "closed",
                "host": "127.0.0.1",
                "port": proc.port,
                "headers": headers,
                "requests": requests,
                "offset": offset,
                "concurrency": b.args.concurrency,
                "retry_on": RETRY_ON if db_url is not None else "",
                "abandon_after": ABANDON_AFTER_S,
                "warmup": warmup,
                "seconds": seconds,
            },
            logs=b.logs,
            on_start=on_start,
            on_end=on_end,
            on_pid=lambda pid: meter.watch("client", pid),
        )
    finally:
        if waits is not None:
            await waits.stop()
    settled = await settle(proc.popen.pid)
    return {
        "settle_s": settled,
        "seconds": seconds,
        "load": load,
        "cores": meter.cores(),
        "waits": (dict(waits.counts), waits.samples) if waits is not None else ({}, 0),
    }


async def settle(pid: int, *, below: float = 0.15, timeout: float = 120.0) -> float:
    """Seconds until the server is idle again (under `below` of a core over 0.5 s): requests the
    client dropped at the window's end are still being served, and would load the next target."""
    proc = psutil.Process(pid)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        t0 = proc.cpu_times()
        await asyncio.sleep(0.5)
        t1 = proc.cpu_times()
        if (t1.user + t1.system - t0.user - t0.system) / 0.5 < below:
            break
    return round(time.monotonic() - started, 1)


def combine(rounds: list[Measured], key: str, label: str) -> dict[str, Any]:
    """bench.append's summary of a target's rounds, plus the first refusals."""
    holder = append.Target(
        key=key,
        label=label,
        server=None,  # type: ignore[arg-type]  # combine() reads only the rounds
        db_url="",
        path="",
        headers={},
        count_sql="",
    )
    holder.rounds = rounds
    result = append.combine(holder)
    result["waited_for_the_server_to_settle_s"] = [r["settle_s"] for r in rounds]
    result["requests_abandoned_at_window_end"] = sum(r["load"].get("abandoned", 0) for r in rounds)
    if any("retried" in r["load"] for r in rounds):
        result["retried_after_concurrency_conflict"] = sum(
            r["load"].get("retried", 0) for r in rounds
        )
    samples = [s for r in rounds for s in r["load"].get("error_samples", [])]
    if samples:
        result["first_refusals"] = samples[:3]
    return result


def _naive_requests(requests: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"path": "/items", "body": r["body"]} for r in requests]


# -- the cases ------------------------------------------------------------------------------


async def registration(b: Bench) -> Case:
    proc, db_url = await b.service("registry")
    headers = await _key(db_url, "twinaid", Role.REGISTRY_ADMIN)
    return Case(
        "registration",
        "registration (registry)",
        0.75,
        proc,
        db_url,
        headers,
        [{"path": "/v1/organisations", "body": registration_body()}],
    )


async def pledges(b: Bench) -> tuple[Case, Case, Proc, str]:
    """Both pledge cases, on needs of their own; the server and its database for the sweep."""
    many_proc, many_url = await b.service("pledges")
    recipient = await _key(many_url, "kharkiv", Role.MEMBER)
    donor = await _key(many_url, "lille", Role.MEMBER)
    await b.seed(
        many_proc, recipient, "/v1/needs", need_body("need-${n}"), total=NEEDS, what="needs"
    )
    many = Case(
        "pledges_many_needs",
        f"pledges, {NEEDS} needs",
        0.75,
        many_proc,
        many_url,
        donor,
        [{"path": "/v1/pledges", "body": pledge_body(f"need-{i}")} for i in range(NEEDS)],
    )
    one_proc, one_url = many_proc, many_url
    await b.seed(one_proc, recipient, "/v1/needs", need_body("hot-need"), total=1, what="need")
    one = Case(
        "pledges_one_need",
        "pledges, one need",
        0.5,
        one_proc,
        one_url,
        donor,
        [{"path": "/v1/pledges", "body": pledge_body("hot-need")}],
    )
    one.notes["need_quantity"] = "1000000000 pieces, 1 a pledge: never covered"
    return many, one, one_proc, one_url


async def shipments(b: Bench) -> Shipments:
    proc, db_url = await b.service("shipments")
    return Shipments(
        b,
        proc,
        db_url,
        planner=await _key(db_url, "lille", Role.LOGISTICS),
        carrier=await _key(db_url, "transports-nord", Role.LOGISTICS),
        recipient=await _key(db_url, "kharkiv", Role.MEMBER),
    )


async def entry_batches(b: Bench) -> Case:
    s = await shipments(b)
    await s.convoys("transit", 0, CONVOYS_IN_TRANSIT, arrived=False)
    return Case(
        "entry_batches",
        f"entry batches of {ENTRIES_PER_BATCH}, {CONVOYS_IN_TRANSIT} convoys",
        0.75,
        s.proc,
        s.db_url,
        s.carrier,
        [
            {
                "path": f"/v1/convoys/transit-{i}/entries",
                "body": checkpoints_body(ENTRIES_PER_BATCH),
            }
            for i in range(CONVOYS_IN_TRANSIT)
        ],
    )


async def long_convoy(b: Bench) -> tuple[Case, Shipments]:
    s = await shipments(b)
    await s.convoys("long", 0, 1, arrived=False)
    return (
        Case(
            "one_long_convoy",
            "single entries, one convoy",
            0.5,
            s.proc,
            s.db_url,
            s.carrier,
            [{"path": "/v1/convoys/long-0/entries", "body": checkpoints_body(1)}],
        ),
        s,
    )


async def confirmations(b: Bench) -> Case:
    s = await shipments(b)
    case = Case(
        "confirmations",
        "delivery confirmations",
        0.75,
        s.proc,
        s.db_url,
        s.recipient,
        [{"path": "/v1/convoys/ready-${n}/delivery", "body": delivery_body()}],
    )
    seeded = 0

    async def ready(n: int) -> None:
        """Convoys arrived and unconfirmed for the next `n` requests."""
        nonlocal seeded
        missing = case.sent + n - seeded
        if missing > 0:
            started = time.monotonic()
            await s.convoys("ready", seeded, missing, arrived=True)
            seeded += missing
            say(f"    {missing} more arrived convoys in {time.monotonic() - started:.0f} s")
        case.notes["arrived_convoys_seeded"] = seeded

    case.ready = ready
    return case


# -- the history sweep ----------------------------------------------------------------------


async def sequential(
    b: Bench, proc: Proc, headers: dict[str, str], requests: list[dict[str, str]]
) -> dict[str, Any]:
    """Writes one after another on one connection: latency of each."""
    result = await run_load(
        {
            "mode": "count",
            "host": "127.0.0.1",
            "port": proc.port,
            "headers": headers,
            "requests": requests,
            "concurrency": 1,
            "total": b.args.sweep_writes,
            "max_seconds": b.args.sweep_seconds,
        },
        logs=b.logs,
    )
    return {
        "writes": result["completed"],
        "errors": result["errors"],
        "latency_ms": summary(result["latencies_ms"]),
        **({"first_refusals": result["error_samples"][:3]} if result["error_samples"] else {}),
    }


async def sweep_entries(s: Shipments, points: list[int]) -> list[dict[str, Any]]:
    """Single checkpoints to convoy long-0 at each history size (events in its stream)."""
    out = []
    request = [{"path": "/v1/convoys/long-0/entries", "body": checkpoints_body(1)}]
    for point in points:
        started = time.monotonic()
        events = await s.grow("long-0", point)
        say(f"  road entries: {events} events in the stream ({time.monotonic() - started:.0f} s)")
        out.append({"history": events, **await sequential(s.bench, s.proc, s.carrier, request)})
    return out


async def sweep_pledges(
    b: Bench, proc: Proc, db_url: str, points: list[int]
) -> list[dict[str, Any]]:
    """Single-line pledges to need sweep-need at each history size (pledge lines answering it)."""
    recipient = await _key(db_url, "kharkiv", Role.MEMBER)
    donor = await _key(db_url, "lille", Role.MEMBER)
    await b.seed(proc, recipient, "/v1/needs", need_body("sweep-need"), total=1, what="need")
    lines = 0
    out = []
    for point in points:
        started = time.monotonic()
        missing = max(point - lines, 0)
        full, rest = divmod(missing, PLEDGE_SEED_LINES)
        if full:
            body = pledge_body("sweep-need", PLEDGE_SEED_LINES)
            await b.seed(proc, donor, "/v1/pledges", body, total=full, concurrency=1, what="lines")
        if rest:
            body = pledge_body("sweep-need", rest)
            await b.seed(proc, donor, "/v1/pledges", body, total=1, what="lines")
        lines += missing
        say(f"  pledges: {lines} pledge lines on the need ({time.monotonic() - started:.0f} s)")
        measured = await sequential(
            b, proc, donor, [{"path": "/v1/pledges", "body": pledge_body("sweep-need")}]
        )
        out.append({"history": lines, **measured})
        lines += measured["writes"]
    return out


def flatness(points: list[dict[str, Any]]) -> dict[str, Any]:
    first, last = points[0]["latency_ms"], points[-1]["latency_ms"]
    if not first.get("n") or not last.get("n"):
        return {"p50_growth": None, "p99_growth": None, "flat_within_20_percent": None}
    p50 = last["p50"] / first["p50"]
    return {
        "p50_growth": round(p50, 2),
        "p99_growth": round(last["p99"] / first["p99"], 2),
        "flat_within_20_percent": p50 <= 1.2,
    }


# -- the run ---------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> None:
    cancel_on_sigterm()
    server_url = pg_server(args.pg)
    env = await environment(server_url, args.pg)
    logs = log_dir("writes")
    # the APIs never reach the broker: no relay or consumer runs here
    stack = BenchStack(kafka="127.0.0.1:9", prefix=f"bench{uuid.uuid4().hex[:8]}.", logs=logs)
    big = 1_000 if args.quick else 10_000
    points = [10, 100, big] if args.quick else [10, 1_000, big]
    started = time.monotonic()
    async with AsyncExitStack() as cleanup:
        cleanup.callback(stack.stop_all)
        b = Bench(args, stack, server_url, await postmaster_pid(server_url), logs, cleanup)
        say("writes benchmark: starting the targets, each on a fresh database, and seeding ...")
        naive = await start_naive(b)
        cases = [await registration(b)]
        many, one, pledges_proc, pledges_url = await pledges(b)
        cases += [many, one, await entry_batches(b)]
        long_case, long_shipments = await long_convoy(b)
        cases += [long_case, await confirmations(b)]
        say(f"  targets started and seeded in {time.monotonic() - started:.0f} s")

        say("history sweep (before the rounds: the long convoy grows to its size here) ...")
        sweep = {
            "road_entries_one_convoy": await sweep_entries(long_shipments, points),
            "pledges_one_need": await sweep_pledges(b, pledges_proc, pledges_url, points),
        }
        long_case.notes["events_in_stream_before_the_rounds"] = await stream_events(
            long_shipments.db_url, "convoy-long-0"
        )
        say(f"  sweep done at {time.monotonic() - started:.0f} s")

        per_round = args.seconds / args.rounds
        for i in range(args.rounds):
            warmup = WARMUP_S if i == 0 else ROUND_WARMUP_S
            for case in cases:
                say(f"  round {i + 1}/{args.rounds}: {case.label} (naive, then the service)")
                case.naive_rounds.append(
                    await measure(
                        b,
                        naive,
                        None,
                        headers={},
                        requests=_naive_requests(case.requests),
                        offset=0,
                        seconds=per_round,
                        warmup=warmup,
                    )
                )
                if case.ready is not None:
                    # the best second of a round so far: a round that ran out of records
                    # (answered 404 for the rest) completed fewer than it could have
                    peaks = [max(r["load"]["completed_per_second"] or [0]) for r in case.rounds]
                    rate = max([FIRST_GUESS_PER_S, *peaks])
                    await case.ready(math.ceil(rate * (per_round + warmup + 1) * 1.3) + 64)
                measured = await measure(
                    b,
                    case.server,
                    case.db_url,
                    headers=case.headers,
                    requests=case.requests,
                    offset=case.sent,
                    seconds=per_round,
                    warmup=warmup,
                )
                case.sent += int(measured["load"].get("sent", 0))
                case.rounds.append(measured)
                short = case.sent - case.notes.get("arrived_convoys_seeded", case.sent)
                if short > 0:
                    case.notes["requests_past_the_seeded_convoys"] = short
                    say(f"    {short} requests found no arrived convoy left (404): seed more")
        results = {}
        for case in cases:
            service = combine(case.rounds, case.key, case.label)
            baseline = combine(case.naive_rounds, f"{case.key}_naive", "naive")
            ratio = (
                round(service["requests_per_s"] / baseline["requests_per_s"], 3)
                if baseline["requests_per_s"]
                else None
            )
            results[case.key] = {
                "label": case.label,
                "service": service,
                "naive": baseline,
                "ratio": ratio,
                "target_ratio": case.target_ratio,
                "target_met": None if ratio is None else ratio >= case.target_ratio,
                "request": case.requests[0],
                **({"notes": case.notes} if case.notes else {}),
            }
    sweep_result = {kind: {"points": pts, **flatness(pts)} for kind, pts in sweep.items()}
    data = report(args, env, results, sweep_result, logs, time.monotonic() - started)
    if args.save:
        say(f"results: {write_results(args.save, data)}")


SWEEP_LABELS = {
    "road_entries_one_convoy": ("road entries, one convoy", "events in the convoy's stream"),
    "pledges_one_need": ("pledges, one need", "pledge lines answering the need"),
}


def report(
    args: argparse.Namespace,
    env: dict[str, Any],
    results: dict[str, Any],
    sweep: dict[str, Any],
    logs: Path,
    elapsed: float,
) -> dict[str, Any]:
    header(
        f"Every write kind through HTTP: {args.concurrency} connections, {args.seconds:g} s"
        f" measured per target in {args.rounds} rounds, each case right after the naive route"
        f" with the same bodies{' (--quick)' if args.quick else ''}",
        env,
    )
    say()
    rows = []
    for r in results.values():
        s, n = r["service"], r["naive"]
        cores = s["cores_used"]
        rows.append(
            [
                r["label"],
                n["requests_per_s"],
                s["requests_per_s"],
                "-" if r["ratio"] is None else f"{r['ratio']:.2f}",
                f">= {r['target_ratio']}",
                "-" if r["target_met"] is None else met(r["target_met"]),
                s["latency_ms"].get("p50", float("nan")),
                s["latency_ms"].get("p99", float("nan")),
                s["errors"],
                s.get("retried_after_concurrency_conflict", 0),
                cores.get("server", 0.0),
                cores.get("postgres", 0.0),
                cores.get("client", 0.0),
            ]
        )
    say(
        table(
            [
                "case",
                "naive req/s",
                "req/s",
                "ratio",
                "target",
                "",
                "p50 ms",
                "p99 ms",
                "errors",
                "re-sent",
                "server",
                "postgres",
                "client",
            ],
            rows,
        )
    )
    say(
        "(re-sent: writes sent again after a 409 concurrency-conflict; server, postgres, client:"
        " cores used while the service case was measured)"
    )
    say()
    say(
        f"History sweep: {args.sweep_writes} sequential writes at each size (one connection,"
        f" at most {args.sweep_seconds:g} s a size)"
    )
    rows = []
    for kind, s in sweep.items():
        label, unit = SWEEP_LABELS[kind]
        for point in s["points"]:
            lat = point["latency_ms"]
            rows.append(
                [
                    label,
                    f"{point['history']:,} {unit}",
                    point["writes"],
                    lat.get("p50", float("nan")),
                    lat.get("p99", float("nan")),
                    point["errors"],
                ]
            )
    say(table(["write", "history", "writes", "p50 ms", "p99 ms", "errors"], rows))
    for kind, s in sweep.items():
        flat = s["flat_within_20_percent"]
        say(
            f"{SWEEP_LABELS[kind][0]}: p50 x{s['p50_growth']}, p99 x{s['p99_growth']} from the"
            f" smallest to the largest history; flat within 20 %:"
            f" {'-' if flat is None else ('met' if flat else 'not met')}"
        )
    say()
    say("req/s by round (naive | service):")
    for r in results.values():
        say(
            f"  {r['label']}: {r['naive']['requests_per_s_by_round']}"
            f" | {r['service']['requests_per_s_by_round']}"
        )
    for r in results.values():
        for side in ("naive", "service"):
            if r[side]["errors"]:
                say(
                    f"errors in {r['label']} ({side}): statuses {r[side]['statuses']},"
                    f" exceptions {r[side]['exceptions']}, first {r[side].get('first_refusals')}"
                )
    say()
    say("What the service's database backends were doing (average count per sample):")
    for r in results.values():
        say(f"  {r['label']}: {r['service']['postgres_active_backends']}")
    say(f"whole run {elapsed:.0f} s; logs: {logs}")
    return {
        "benchmark": "writes",
        "note": MACHINE_NOTE.format(cores=env["cores"]),
        "environment": env,
        "parameters": {
            "seconds": args.seconds,
            "rounds": args.rounds,
            "warmup_s": {"first_round": WARMUP_S, "later_rounds": ROUND_WARMUP_S},
            "concurrency": args.concurrency,
            "quick": args.quick,
            "needs": NEEDS,
            "convoys_in_transit": CONVOYS_IN_TRANSIT,
            "entries_per_batch": ENTRIES_PER_BATCH,
            "sweep_writes": args.sweep_writes,
            "sweep_seconds_cap": args.sweep_seconds,
            "baseline": "bench/naive_app.py POST /items, sent the case's bodies, in the same round",
            "uvicorn": "one process per target, asyncio loop, h11",
            "whole_run_s": round(elapsed),
        },
        "ratios": {k: r["ratio"] for k, r in results.items()},
        "results": results,
        "history_sweep": sweep,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=12.0, help="measured seconds per target (and case)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="the measured seconds are split into rounds"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="client connections")
    parser.add_argument("--pg", default="embedded", help="embedded | system | a server URL")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a long convoy and a sweep of 1,000 events at most, fewer sweep writes",
    )
    parser.add_argument("--sweep-writes", type=int, default=None, help="writes at each size")
    parser.add_argument(
        "--sweep-seconds", type=float, default=15.0, help="at most this long at each size"
    )
    parser.add_argument(
        "--save", default="writes", metavar="NAME", help="write bench/results/NAME.json ('')"
    )
    args = parser.parse_args()
    if args.sweep_writes is None:
        args.sweep_writes = 50 if args.quick else 200
    try:
        asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: processes stopped, databases dropped")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
