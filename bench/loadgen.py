"""A realistic load: partner cities, donors, logistics teams and auditors, each with its own
key, through the public HTTP APIs only.

`python -m bench.loadgen --seconds 30 --rate 20 [--mix need.post=2,road.batch=3,...]
[--replicas 1] [--pg URL]` starts the whole system (bench/loadgen_stack.py), registers the
cities and partnerships, runs the load open-loop (an operation is sent at its scheduled time
whatever happened to earlier ones), waits until every consumer caught up, then runs the naive
baseline (bench/naive_app.py) at the same rate, and prints throughput, p50/p95/p99 per
operation, errors by status, and the lag from a confirmed delivery to the pledge's fulfilment.

Each pledge follows the life the services were built for: a city posts a need; a donor city
pledges (in kind, sometimes with money), amends and commits; shipments hears of the line; the
donor's logistics team plans a convoy and loads it; road events arrive in late batches (some
re-sent); the recipient confirms the delivery with damaged and short quantities; the money is
received. Auditors read the feeds, reports, discrepancies and stream histories throughout. A
write that fails (transport error, 429, 5xx) goes back to its queue and is retried later with
the same Idempotency-Key and correlation id, as a careful client does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import percentile, summary, table

OPS = (
    "need.post",
    "pledge.make",
    "pledge.amend",
    "pledge.commit",
    "money.receive",
    "line.check",
    "convoy.plan",
    "convoy.load",
    "road.batch",
    "delivery.confirm",
    "audit.query",
)
DEFAULT_MIX = {
    "need.post": 2,
    "pledge.make": 2,
    "pledge.amend": 1,
    "pledge.commit": 2,
    "money.receive": 1,
    "line.check": 2,
    "convoy.plan": 2,
    "convoy.load": 2,
    "road.batch": 3,
    "delivery.confirm": 2,
    "audit.query": 2,
}
WRITE_SERVICE = {
    "need.post": "pledges",
    "pledge.make": "pledges",
    "pledge.amend": "pledges",
    "pledge.commit": "pledges",
    "money.receive": "pledges",
    "convoy.plan": "shipments",
    "convoy.load": "shipments",
    "road.batch": "shipments",
    "delivery.confirm": "shipments",
}
MAX_IDLE_S = 3.0
REQUEST_TIMEOUT_S = 15.0


class HttpError(Exception):
    pass


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Connection:
    """One keep-alive HTTP/1.1 connection (as bench.load's, with response headers)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used_at = 0.0

    async def send(self, raw: bytes) -> Answer:
        if self.writer is not None and time.monotonic() - self.used_at > MAX_IDLE_S:
            self.close()
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        try:
            self.writer.write(raw)
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            headers: dict[str, str] = {}
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name:
                    headers[name.strip().lower().decode()] = value.strip().decode("latin-1")
            if "content-length" not in headers:
                raise HttpError("no content-length")
            body = await self.reader.readexactly(int(headers["content-length"]))
        except BaseException:
            self.close()
            raise
        self.used_at = time.monotonic()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Answer(status, headers, body)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Client:
    """Connections per port, requests spread over a service's replicas."""

    def __init__(self, ports: Mapping[str, list[int]]) -> None:
        self.ports = {s: list(p) for s, p in ports.items()}
        self.idle: dict[int, list[Connection]] = {}
        self.turn = 0

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        key: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        self.turn += 1
        ports = self.ports[service]
        port = ports[self.turn % len(ports)]
        pool = self.idle.setdefault(port, [])
        conn = pool.pop() if pool else Connection(port)
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        raw = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n{extra}\r\n"
        ).encode() + payload
        answer = await asyncio.wait_for(conn.send(raw), REQUEST_TIMEOUT_S)
        pool.append(conn)
        return answer

    def close(self) -> None:
        for pool in self.idle.values():
            for conn in pool:
                conn.close()


@dataclass
class Flow:
    """One pledge's life, from the need it answers to its delivery."""

    n: int
    city: str
    donor: str
    partnership: str
    need_id: str = ""
    category: str = ""  # the need's: a line answering it has the same
    pledge_id: str = ""
    quantity: int = 0
    money: int = 0
    convoy_id: str = ""
    road_batches: int = 0
    committed_at: float = 0.0
    first_batch: list[dict[str, Any]] = field(default_factory=list)
    # a retried write is the same write: same key, same correlation id
    pending: dict[str, str] = field(default_factory=dict)

    def attempt(self, op: str) -> str:
        return self.pending.setdefault(op, uuid.uuid4().hex)

    def done(self, op: str) -> None:
        self.pending.pop(op, None)


@dataclass
class Sample:
    at: float  # seconds since the load began, when the answer came
    op: str
    status: int  # 0: transport error or timeout
    ms: float


@dataclass
class World:
    run: str
    cities: list[str]
    donors: list[str]

    @classmethod
    def make(cls, run: str, *, cities: int = 6, donors: int = 8) -> World:
        return cls(
            run,
            [f"ua-{run}-{i}" for i in range(cities)],
            [f"eu-{run}-{i}" for i in range(donors)],
        )

    def partnership(self, donor_index: int) -> tuple[str, str]:
        city = self.cities[donor_index % len(self.cities)]
        return f"tw-{self.run}-{donor_index}", city

    def organisations(self) -> list[tuple[str, bool]]:
        return [(c, True) for c in self.cities] + [(d, False) for d in self.donors]


def _ago(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


class LoadGen:
    def __init__(
        self,
        client: Client,
        world: World,
        *,
        member: Mapping[str, str],
        logistics: Mapping[str, str],
        auditor: str,
        admin: str,
        seed: int = 7,
    ) -> None:
        self.client = client
        self.world = world
        self.member = member
        self.logistics = logistics
        self.auditor = auditor
        self.admin = admin
        self.rng = random.Random(seed)
        self.queues: dict[str, deque[Flow]] = {op: deque() for op in OPS}
        self.money: deque[Flow] = deque()
        self.samples: list[Sample] = []
        self.acknowledged: dict[str, set[str]] = {"pledges": set(), "shipments": set()}
        self.unexpected: list[str] = []
        self.flows = 0
        self.began = time.monotonic()
        self.delivered_at: dict[str, float] = {}

    # -- set-up ------------------------------------------------------------------------

    async def register(self) -> None:
        """The registry administrator registers the cities and their partnerships."""
        for org, ukrainian in self.world.organisations():
            body: dict[str, Any] = {
                "organisation_id": org,
                "name": f"{'Hromada' if ukrainian else 'City'} {org}",
                "kind": "municipality",
                "country": "UA" if ukrainian else self.rng.choice(["FR", "DE", "IT", "PL", "GB"]),
            }
            await self._setup("/v1/organisations", body)
        for i, _ in enumerate(self.world.donors):
            pid, city = self.world.partnership(i)
            body = {
                "partnership_id": pid,
                "organisations": [self.world.donors[i], city],
                "kind": "twinning",
                "occurred_at": _ago(60 * 24 * 400),
            }
            await self._setup("/v1/partnerships", body)

    async def _setup(self, path: str, body: dict[str, Any]) -> None:
        answer = await self.client.request("registry", "POST", path, key=self.admin, body=body)
        if answer.status not in (201, 409):
            raise RuntimeError(f"set-up {path}: {answer.status} {answer.body[:300]!r}")

    # -- the load ----------------------------------------------------------------------

    async def run(self, *, seconds: float, rate: float, mix: Mapping[str, float]) -> None:
        """Open loop: `rate` operations a second for `seconds`, picked by `mix` among those
        that have something to work on (posting a need and auditing always have)."""
        loop = asyncio.get_running_loop()
        self.began = time.monotonic()
        t0 = loop.time()
        tasks: set[asyncio.Task[None]] = set()
        n = int(rate * seconds)
        for i in range(n):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            op = self._pick(mix)
            task = asyncio.create_task(self._op(op))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)

    def _pick(self, mix: Mapping[str, float]) -> str:
        ready = [op for op in OPS if mix.get(op, 0) > 0 and self._ready(op)]
        if not ready:
            return "need.post"
        return self.rng.choices(ready, weights=[mix[op] for op in ready])[0]

    def _ready(self, op: str) -> bool:
        if op in ("need.post", "audit.query"):
            return True
        if op == "money.receive":
            return bool(self.money)
        return bool(self.queues[op])

    async def _op(self, op: str) -> None:
        if op == "need.post":
            flow = self._new_flow()
        elif op == "money.receive":
            flow = self.money.popleft()
        elif op == "audit.query":
            await self._audit()
            return
        else:
            flow = self.queues[op].popleft()
        try:
            await getattr(self, "_" + op.replace(".", "_"))(flow)
        except Exception as exc:  # a fault: the flow waits and tries again
            self._record(op, 0, 0.0, error=type(exc).__name__)
            (self.money if op == "money.receive" else self.queues[op]).append(flow)

    def _new_flow(self) -> Flow:
        self.flows += 1
        i = self.rng.randrange(len(self.world.donors))
        pid, city = self.world.partnership(i)
        return Flow(self.flows, city=city, donor=self.world.donors[i], partnership=pid)

    def _record(self, op: str, status: int, ms: float, *, error: str | None = None) -> None:
        self.samples.append(Sample(time.monotonic() - self.began, op, status, ms))
        if error is not None:
            self.unexpected.append(f"{op}: {error}")

    async def _write(
        self, op: str, flow: Flow, path: str, body: dict[str, Any], *, key: str, ok: int
    ) -> Answer | None:
        """One attempt; the flow goes back to `retry_op`'s queue unless it succeeded."""
        cid = flow.attempt(op)
        service = WRITE_SERVICE[op]
        t = time.perf_counter()
        answer = await self.client.request(
            service,
            "POST",
            path,
            key=key,
            body=body,
            headers={"X-Correlation-ID": f"lg-{cid}", "Idempotency-Key": f"lg-{cid}"},
        )
        self._record(op, answer.status, (time.perf_counter() - t) * 1000)
        if answer.status == ok:
            self.acknowledged[service].add(f"lg-{cid}")
            flow.done(op)
            return answer
        if answer.status >= 500 or answer.status == 429:
            self.queues[op].append(flow) if op != "money.receive" else self.money.append(flow)
            return None
        self.unexpected.append(f"{op} {path}: {answer.status} {answer.body[:200]!r}")
        return None

    async def _need_post(self, flow: Flow) -> None:
        flow.quantity = self.rng.randrange(40, 400)
        flow.need_id = f"need-{self.world.run}-{flow.n}"
        flow.category = self.rng.choice(["medicines", "generators", "food", "hygiene"])
        body = {
            "need_id": flow.need_id,
            "kind": "item",
            "category": flow.category,
            "description": f"Supplies for {flow.city}, request {flow.n}",
            "quantity": str(flow.quantity),
            "unit": "boxes",
            "priority": self.rng.choice(["critical", "high", "normal"]),
            "serves": ["hospitals"],
        }
        key = self.member[flow.city]
        if await self._write("need.post", flow, "/v1/needs", body, key=key, ok=201):
            self.queues["pledge.make"].append(flow)

    async def _pledge_make(self, flow: Flow) -> None:
        flow.pledge_id = f"pl-{self.world.run}-{flow.n}"
        lines: list[dict[str, Any]] = [
            {
                "line_id": "goods",
                "kind": "in_kind",
                "need_id": flow.need_id,
                "item": "Boxes of supplies",
                "category": flow.category,
                "quantity": str(flow.quantity),
                "unit": "boxes",
                "weight_kg": str(flow.quantity * 12),
            }
        ]
        if flow.n % 3 == 0:
            flow.money = self.rng.randrange(1_000, 50_000) * 100
            lines.append(
                {
                    "line_id": "money",
                    "kind": "money",
                    "item": "Transport costs",
                    "category": "other",
                    "amount": flow.money,
                    "currency": "EUR",
                }
            )
        body = {
            "pledge_id": flow.pledge_id,
            "donor_id": flow.donor,
            "recipient_id": flow.city,
            "partnership_id": flow.partnership,
            "lines": lines,
        }
        if await self._write(
            "pledge.make", flow, "/v1/pledges", body, key=self.member[flow.donor], ok=201
        ):
            nxt = "pledge.amend" if self.rng.random() < 0.5 else "pledge.commit"
            self.queues[nxt].append(flow)

    async def _pledge_amend(self, flow: Flow) -> None:
        new = max(10, flow.quantity - self.rng.randrange(1, 30))
        body = {"quantity": str(new), "reason": "fewer boxes found than hoped"}
        path = f"/v1/pledges/{flow.pledge_id}/lines/goods/amendments"
        if await self._write("pledge.amend", flow, path, body, key=self.member[flow.donor], ok=200):
            flow.quantity = new
            self.queues["pledge.commit"].append(flow)

    async def _pledge_commit(self, flow: Flow) -> None:
        path = f"/v1/pledges/{flow.pledge_id}/commit"
        if await self._write("pledge.commit", flow, path, {}, key=self.member[flow.donor], ok=200):
            flow.committed_at = time.monotonic()
            self.queues["line.check"].append(flow)
            if flow.money:
                self.money.append(flow)

    async def _money_receive(self, flow: Flow) -> None:
        body = {
            "amount": flow.money,
            "currency": "EUR",
            "received_on": datetime.now(UTC).date().isoformat(),
            "reference": f"SEPA-{flow.n}",
        }
        path = f"/v1/pledges/{flow.pledge_id}/lines/money/receipts"
        await self._write("money.receive", flow, path, body, key=self.member[flow.city], ok=200)

    async def _line_check(self, flow: Flow) -> None:
        """The donor's logistics team asks shipments whether the committed line arrived."""
        t = time.perf_counter()
        answer = await self.client.request(
            "shipments",
            "GET",
            f"/v1/pledge-lines/{flow.pledge_id}/goods",
            key=self.logistics[flow.donor],
        )
        self._record("line.check", answer.status, (time.perf_counter() - t) * 1000)
        if answer.status == 200 and answer.json().get("status") == "committed":
            self.queues["convoy.plan"].append(flow)
        else:
            self.queues["line.check"].append(flow)

    async def _convoy_plan(self, flow: Flow) -> None:
        flow.convoy_id = f"cv-{self.world.run}-{flow.n}"
        body = {
            "convoy_id": flow.convoy_id,
            "reference": f"{flow.donor} to {flow.city} #{flow.n}",
            "origin_id": flow.donor,
            "destination_id": flow.city,
            "carrier_id": flow.donor,
            "planned_departure": _ago(60 * 24 * 3),
            "occurred_at": _ago(60 * 24 * 4),
            "vehicles": [{"registration": f"TR-{flow.n}", "type": "truck", "capacity_kg": "20000"}],
            "drivers": [{"name": f"Driver {flow.n}", "vehicle": f"TR-{flow.n}"}],
        }
        key = self.logistics[flow.donor]
        if await self._write("convoy.plan", flow, "/v1/convoys", body, key=key, ok=201):
            self.queues["convoy.load"].append(flow)

    async def _convoy_load(self, flow: Flow) -> None:
        body = {
            "manifest_line_id": "m1",
            "pledge_id": flow.pledge_id,
            "line_id": "goods",
            "quantity": str(flow.quantity),
            "vehicle": f"TR-{flow.n}",
            "occurred_at": _ago(60 * 24 * 3 + 30),
        }
        path = f"/v1/convoys/{flow.convoy_id}/manifest"
        key = self.logistics[flow.donor]
        if await self._write("convoy.load", flow, path, body, key=key, ok=201):
            self.queues["road.batch"].append(flow)

    def _entries(self, flow: Flow, batch: int) -> list[dict[str, Any]]:
        e = f"{flow.convoy_id}-e"
        first = [
            {"entry_id": f"{e}1", "kind": "dispatch", "occurred_at": _ago(60 * 24 * 3)},
            {
                "entry_id": f"{e}2",
                "kind": "checkpoint",
                "occurred_at": _ago(60 * 60),
                "place": "Krakow",
            },
            {
                "entry_id": f"{e}3",
                "kind": "border_crossing",
                "occurred_at": _ago(60 * 40),
                "crossing_point": "Korczowa",
                "from_country": "PL",
                "to_country": "UA",
                "outcome": "cleared",
            },
        ]
        if not flow.first_batch:
            flow.first_batch = first
        first = flow.first_batch
        if batch == 0:
            return first
        # the second batch comes late and re-sends one entry already recorded
        return [
            first[2],
            {
                "entry_id": f"{e}4",
                "kind": "incident",
                "occurred_at": _ago(60 * 30),
                "incident": "delay",
                "description": "air-raid alert",
                "delay_minutes": 90,
            },
            {
                "entry_id": f"{e}5",
                "kind": "arrival",
                "occurred_at": _ago(60 * 2),
                "place": flow.city,
            },
        ]

    async def _road_batch(self, flow: Flow) -> None:
        body = {"entries": self._entries(flow, flow.road_batches)}
        path = f"/v1/convoys/{flow.convoy_id}/entries"
        if await self._write(
            "road.batch", flow, path, body, key=self.logistics[flow.donor], ok=200
        ):
            flow.road_batches += 1
            self.queues["road.batch" if flow.road_batches < 2 else "delivery.confirm"].append(flow)

    async def _delivery_confirm(self, flow: Flow) -> None:
        damaged = self.rng.randrange(0, max(1, flow.quantity // 20))
        short = self.rng.randrange(0, 3)
        received = max(0, flow.quantity - damaged - short)
        body = {
            "receiver": {"name": "Olena Petrenko", "role": "warehouse"},
            "lines": [
                {
                    "manifest_line_id": "m1",
                    "received": str(received),
                    "damaged": str(damaged),
                    "short": str(flow.quantity - received - damaged),
                }
            ],
        }
        path = f"/v1/convoys/{flow.convoy_id}/delivery"
        if await self._write(
            "delivery.confirm", flow, path, body, key=self.member[flow.city], ok=201
        ):
            self.delivered_at[flow.pledge_id] = time.monotonic()

    async def _audit(self) -> None:
        choice = self.rng.randrange(4)
        if choice == 0:
            service = self.rng.choice(["registry", "pledges", "shipments"])
            service, path = service, f"/v1/events?after={self.rng.randrange(0, 200)}&limit=100"
        elif choice == 1:
            service, path = "pledges", "/v1/reports/totals"
        elif choice == 2:
            service, path = "shipments", "/v1/discrepancies?limit=50"
        else:
            flows: list[Flow | None] = [f for f in self.queues["road.batch"] if f.pledge_id]
            flow = self.rng.choice(flows or [None])
            if flow is None:
                service, path = "pledges", "/v1/pledges?limit=20"
            else:
                service, path = "pledges", f"/v1/pledges/{flow.pledge_id}/history"
        t = time.perf_counter()
        try:
            answer = await self.client.request(service, "GET", path, key=self.auditor)
        except Exception as exc:
            self._record("audit.query", 0, 0.0, error=type(exc).__name__)
            return
        self._record("audit.query", answer.status, (time.perf_counter() - t) * 1000)
        if answer.status != 200:
            self.unexpected.append(f"audit {path}: {answer.status} {answer.body[:200]!r}")


# -- figures ---------------------------------------------------------------------------


def figures(samples: list[Sample], seconds: float) -> dict[str, Any]:
    """Throughput, latency per operation (2xx answers), and answers by status."""
    per_op: dict[str, Any] = {}
    for op in sorted({s.op for s in samples}):
        mine = [s for s in samples if s.op == op]
        per_op[op] = {
            **summary([s.ms for s in mine if 200 <= s.status < 300]),
            "statuses": dict(Counter(str(s.status) for s in mine)),
        }
    ok = [s for s in samples if 200 <= s.status < 300]
    return {
        "seconds": seconds,
        "requests": len(samples),
        "ok_per_second": round(len(ok) / seconds, 1) if seconds else 0,
        "latency_ms": summary([s.ms for s in ok]),
        "statuses": dict(Counter(str(s.status) for s in samples)),
        "per_operation": per_op,
    }


def timeline(samples: list[Sample], *, step: float = 1.0) -> list[dict[str, float]]:
    """Per `step` seconds: 2xx answers a second, their p50 and p95, and failures."""
    if not samples:
        return []
    buckets: dict[int, list[Sample]] = {}
    for s in samples:
        buckets.setdefault(int(s.at // step), []).append(s)
    out = []
    for b in range(max(buckets) + 1):
        mine = buckets.get(b, [])
        ok = [s.ms for s in mine if 200 <= s.status < 300]
        out.append(
            {
                "t": b * step,
                "ok_per_s": len(ok) / step,
                "p50_ms": percentile(ok, 50) if ok else 0.0,
                "p95_ms": percentile(ok, 95) if ok else 0.0,
                "failed": float(
                    sum(1 for s in mine if not 200 <= s.status < 300 and s.status != 404)
                ),
            }
        )
    return out


def print_figures(title: str, result: Mapping[str, Any]) -> None:
    print(
        f"\n{title}: {result['requests']} requests in {result['seconds']:.0f} s,"
        f" {result['ok_per_second']} ok/s; answers {result['statuses']}"
    )
    rows = [
        (
            op,
            f["n"] if "n" in f else 0,
            f.get("p50", "-"),
            f.get("p95", "-"),
            f.get("p99", "-"),
            json.dumps(f["statuses"]),
        )
        for op, f in result["per_operation"].items()
    ]
    print(table(("operation", "ok", "p50 ms", "p95 ms", "p99 ms", "answers"), rows))


def parse_mix(text: str | None) -> dict[str, float]:
    mix: dict[str, float] = dict(DEFAULT_MIX)
    for item in (text or "").split(","):
        if item.strip():
            op, _, weight = item.partition("=")
            if op.strip() not in OPS:
                raise SystemExit(f"unknown operation {op!r}; known: {', '.join(OPS)}")
            mix[op.strip()] = float(weight)
    return mix


async def fulfilment_lags(dbs: Mapping[str, str]) -> list[float]:
    """Seconds from each confirmed delivery (recorded in shipments) to the pledge's fulfilment
    (the delivery recorded on the pledge, caused by it, in pledges)."""
    from bench.common import connection

    async with connection(dbs["shipments"]) as conn:
        confirmed = {
            str(r["event_id"]): r["recorded_at"]
            for r in await conn.fetch(
                "SELECT event_id, recorded_at FROM events"
                " WHERE event_type = 'shipments.delivery-confirmed'"
            )
        }
    async with connection(dbs["pledges"]) as conn:
        rows = await conn.fetch(
            "SELECT metadata->>'causation_id' AS cause, min(recorded_at) AS at FROM events"
            " WHERE event_type = 'pledges.delivery-recorded' GROUP BY 1"
        )
    return [
        (r["at"] - confirmed[r["cause"]]).total_seconds() * 1000
        for r in rows
        if r["cause"] in confirmed
    ]


async def naive_baseline(port: int, *, seconds: float, rate: float) -> dict[str, Any]:
    """The same open loop against the naive insert route."""
    client = Client({"naive": [port]})
    samples: list[Sample] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    began = time.monotonic()

    async def one(i: int) -> None:
        t = time.perf_counter()
        try:
            answer = await client.request(
                "naive", "POST", "/items", key="-", body={"organisation_id": f"n{i}", "n": i}
            )
            status = answer.status
        except Exception:
            status = 0
        samples.append(
            Sample(
                time.monotonic() - began, "naive.insert", status, (time.perf_counter() - t) * 1000
            )
        )

    tasks = []
    for i in range(int(rate * seconds)):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    client.close()
    return figures(samples, seconds)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from bench.loadgen_stack import Postgres, ProofStack, converge

    pg = Postgres(args.pg)
    stack = ProofStack(pg=pg, name="loadgen")
    world = World.make(stack.run.split("_")[1])
    try:
        keys = await stack.prepare(world.organisations())
        stack.start(replicas=args.replicas, naive=True)
        await stack.wait_leaders()
        client = Client({s: stack.api_ports(s) for s in stack.apis})
        gen = LoadGen(
            client,
            world,
            member=keys.member,
            logistics=keys.logistics,
            auditor=keys.auditor,
            admin=keys.admin,
            seed=args.seed,
        )
        await gen.register()
        await converge(stack)
        await gen.run(seconds=args.seconds, rate=args.rate, mix=parse_mix(args.mix))
        client.close()
        converged = await converge(stack)
        lags = await fulfilment_lags(stack.dbs)
        result = {
            "twinaid": figures(gen.samples, args.seconds),
            "timeline": timeline(gen.samples),
            "flows_started": gen.flows,
            "deliveries_confirmed": len(gen.delivered_at),
            "fulfilment_lag_ms": summary(lags),
            "converged_after_s": round(converged, 2),
            "unexpected": gen.unexpected[:20],
        }
        assert stack.naive is not None and stack.naive.port
        result["naive"] = await naive_baseline(
            stack.naive.port, seconds=args.seconds, rate=args.rate
        )
        return result
    finally:
        stack.stop()
        await stack.drop()


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.loadgen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--rate", type=float, default=20, help="operations a second (open loop)")
    p.add_argument("--mix", help="weights, e.g. road.batch=5,audit.query=0 (others: default)")
    p.add_argument("--replicas", type=int, default=1, help="APIs and workers per service")
    p.add_argument("--pg", help="a PostgreSQL server URL (default: the proof's embedded one)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args()
    result = asyncio.run(main_async(args))
    print_figures("twinaid (every service, the mix)", result["twinaid"])
    print_figures("naive baseline (one INSERT per request, same rate)", result["naive"])
    print(
        f"\nflows started {result['flows_started']}, deliveries confirmed"
        f" {result['deliveries_confirmed']}; delivery -> pledge fulfilment lag (ms):"
        f" {result['fulfilment_lag_ms']}; converged {result['converged_after_s']} s after"
    )
    for line in result["unexpected"]:
        print(f"unexpected: {line}")
    if args.out:
        with open(args.out, "w") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
