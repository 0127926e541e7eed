"""The load generator, run as its own process so that its CPU is not the server's event loop.

`python -m bench.load '<json config>'`. Three modes:
- "closed": `concurrency` connections post back to back for `warmup` + `seconds`; only requests
  that complete inside the measured window count.
- "count": `total` requests over `concurrency` connections, as fast as possible.
- "rate": open loop, `rate` requests/s for `seconds` on a fixed schedule; a request is sent at its
  scheduled time whatever happened to earlier ones (latency is measured from the schedule, so a
  stalled server cannot hide its queue), on as many connections as that needs.

What is sent: without `requests` in the config, every request registers a new organisation at
`path` (the registry's body; bench.append). With `requests`, a list of {"path", "body"} templates
(string.Template: ${id} a unique id, ${n} the request's number in the rotation, ${worker},
${seq}): the n-th request the process sends, counted across its connections from `offset`, takes
template n modulo their number (bench.writes: pledges to many needs, entries to many convoys,
one confirmation per arrived convoy). The result says how many requests were `sent`, warm-up
included (the next run's `offset`), and keeps a few refused responses' bodies (`error_samples`).
"count" mode also stops sending after `max_seconds`, when given; "closed" mode sends a request
refused with a 409 holding `retry_on` again (bench.writes: writes racing for one record) and,
with `abandon_after`, drops requests still unanswered that long after the window.

It prints `START` and `END` (the measured window) on stdout for the harness and writes its result
as JSON to `out`. The HTTP/1.1 client is a minimal keep-alive one over asyncio streams: on two
cores, httpx would spend several times more CPU per request, taken from the server under test.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
import uuid
from dataclasses import dataclass, field
from string import Template
from typing import Any


class HttpError(Exception):
    pass


# uvicorn closes a keep-alive connection after 5 s idle; a request sent as it does so is lost
# (the server never reads it), so a connection idle this long is replaced before use.
MAX_IDLE_S = 3.0


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used_at = 0.0

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        if self.writer is not None and time.monotonic() - self.used_at > MAX_IDLE_S:
            self.close()
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(head + body)
            await self.writer.drain()
            raw = await self.reader.readuntil(b"\r\n\r\n")
            status = int(raw[9:12])
            length = -1
            close = False
            for line in raw.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
                elif name == b"transfer-encoding":
                    raise HttpError("chunked responses are not supported")
            if length < 0:
                raise HttpError("no content-length")
            payload = await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        self.used_at = time.monotonic()
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Target:
    host: str
    port: int
    path: str
    headers: dict[str, str]
    countries: list[str] = field(default_factory=lambda: ["UA"])
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def request(self, worker: int, seq: int) -> tuple[str, bytes, bytes]:
        """A unique organisation (the registry's body; the naive route stores the same shape).
        Countries take turns: the registry serialises registrations within one country."""
        ident = f"b{self.run_id}-{worker}-{seq}"
        body = json.dumps(
            {
                "organisation_id": ident,
                "name": f"Bench organisation {ident}",
                "kind": "municipality",
                "country": self.countries[(worker + seq) % len(self.countries)],
                "region": "Kharkiv oblast",
            },
            separators=(",", ":"),
        ).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        ).encode()
        return ident, head, body


@dataclass
class Templated(Target):
    """Requests made from templates in rotation (config `requests`), numbered from `offset`."""

    templates: list[tuple[Template, Template]] = field(default_factory=list)
    offset: int = 0
    sent: int = 0

    def request(self, worker: int, seq: int) -> tuple[str, bytes, bytes]:
        n = self.offset + self.sent
        self.sent += 1
        ident = f"b{self.run_id}-{worker}-{seq}"
        path, body_template = self.templates[n % len(self.templates)]
        values = {"id": ident, "n": n, "worker": worker, "seq": seq}
        body = body_template.substitute(values).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        head = (
            f"POST {path.substitute(values)} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        ).encode()
        return ident, head, body


def sent(target: Target) -> dict[str, int]:
    return {"sent": target.sent} if isinstance(target, Templated) else {}


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    exceptions: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    def record(
        self,
        status: int | None,
        latency_ms: float,
        error: str | None = None,
        payload: bytes = b"",
    ) -> None:
        if status is not None:
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
            if 200 <= status < 300:
                self.latencies_ms.append(latency_ms)
                return
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{status} {payload[:500].decode(errors='replace')}")
        self.errors += 1
        if error is not None:
            self.exceptions[error] = self.exceptions.get(error, 0) + 1


def marker(word: str) -> None:
    sys.stdout.write(f"{word} {time.time():.6f}\n")
    sys.stdout.flush()


async def closed_loop(
    target: Target,
    *,
    concurrency: int,
    warmup: float,
    seconds: float,
    retry_on: bytes = b"",
    abandon_after: float | None = None,
) -> dict[str, Any]:
    """`retry_on`: a 409 whose body holds these bytes is sent again until it succeeds (or the
    window ends), as a client retries a write that lost a race; its latency counts from the
    first send. `abandon_after`: requests still unanswered this long after the window are
    dropped (their connections closed) instead of awaited."""
    tally = Tally()
    loop = asyncio.get_running_loop()
    begin = loop.time()
    start, end = begin + warmup, begin + warmup + seconds

    async def clock() -> None:
        await asyncio.sleep(start - loop.time())
        marker("START")
        await asyncio.sleep(end - loop.time())
        marker("END")

    async def client(worker: int) -> None:
        conn = Connection(target.host, target.port)
        seq = 0
        while loop.time() < end:
            seq += 1
            _, head, body = target.request(worker, seq)
            t0 = time.perf_counter()
            status: int | None = None
            error: str | None = None
            payload = b""
            try:
                status, payload = await conn.post(head, body)
                while status == 409 and retry_on and retry_on in payload and loop.time() < end:
                    retried[0] += 1  # sent again as it was: the wait is the request's latency
                    status, payload = await conn.post(head, body)
            except (OSError, asyncio.IncompleteReadError, HttpError, ValueError) as exc:
                error = type(exc).__name__
                await asyncio.sleep(0.01)
            done = loop.time()
            if start <= done < end:
                tally.record(status, (time.perf_counter() - t0) * 1000, error, payload)
                if status is not None and 200 <= status < 300:
                    per_second[int(done - start)] += 1
        conn.close()

    per_second = [0] * max(1, math.ceil(seconds))
    retried = [0]
    abandoned: dict[str, int] = {}
    if abandon_after is None:
        await asyncio.gather(clock(), *(client(i) for i in range(concurrency)))
    else:
        clients = [asyncio.create_task(client(i)) for i in range(concurrency)]
        await clock()
        _, pending = await asyncio.wait(clients, timeout=abandon_after)
        for task in pending:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        abandoned["abandoned"] = len(pending)
    return {
        "window_s": seconds,
        "completed": len(tally.latencies_ms),
        "completed_per_second": per_second,
        **_tally_dict(tally),
        **sent(target),
        **({"retried": retried[0]} if retry_on else {}),
        **abandoned,
    }


async def count_mode(
    target: Target, *, concurrency: int, total: int, max_seconds: float | None = None
) -> dict[str, Any]:
    tally = Tally()
    remaining = iter(range(total))
    marker("START")
    t0 = time.perf_counter()
    deadline = t0 + max_seconds if max_seconds is not None else math.inf

    async def client(worker: int) -> None:
        conn = Connection(target.host, target.port)
        for seq in remaining:
            if time.perf_counter() >= deadline:
                break
            _, head, body = target.request(worker, seq)
            r0 = time.perf_counter()
            try:
                status, payload = await conn.post(head, body)
                tally.record(status, (time.perf_counter() - r0) * 1000, payload=payload)
            except (OSError, asyncio.IncompleteReadError, HttpError, ValueError) as exc:
                tally.record(None, 0, type(exc).__name__)
        conn.close()

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - t0
    marker("END")
    return {
        "elapsed_s": elapsed,
        "completed": len(tally.latencies_ms),
        **_tally_dict(tally),
        **sent(target),
    }


async def rate_mode(target: Target, *, rate: float, seconds: float) -> dict[str, Any]:
    """Open loop. Every request is listed with wall-clock times, for joining with the database."""
    tally = Tally()
    idle: list[Connection] = []
    opened = 0
    requests: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    n = round(rate * seconds)
    late = 0

    async def one(seq: int, scheduled_wall: float, scheduled: float) -> None:
        nonlocal opened
        if idle:
            conn = idle.pop()
        else:
            conn = Connection(target.host, target.port)
            opened += 1
        ident, head, body = target.request(0, seq)
        status: int | None = None
        error: str | None = None
        try:
            status, _ = await conn.post(head, body)
        except (OSError, asyncio.IncompleteReadError, HttpError, ValueError) as exc:
            error = type(exc).__name__
        done = loop.time()
        latency_ms = (done - scheduled) * 1000
        tally.record(status, latency_ms, error)
        requests.append(
            {
                "id": ident,
                "scheduled": scheduled_wall,
                "done": scheduled_wall + (done - scheduled),
                "status": status,
            }
        )
        idle.append(conn)

    tasks: list[asyncio.Task[None]] = []
    marker("START")
    t0, wall0 = loop.time(), time.time()
    for seq in range(n):
        at = t0 + seq / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            late += 1
        tasks.append(asyncio.create_task(one(seq, wall0 + seq / rate, at)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - t0
    marker("END")
    for conn in idle:
        conn.close()
    return {
        "elapsed_s": elapsed,
        "scheduled": n,
        "completed": len(tally.latencies_ms),
        "connections_opened": opened,
        "sent_late_over_5ms": late,
        "requests": requests,
        **_tally_dict(tally),
    }


def _tally_dict(tally: Tally) -> dict[str, Any]:
    return {
        "latencies_ms": tally.latencies_ms,
        "statuses": tally.statuses,
        "errors": tally.errors,
        "exceptions": tally.exceptions,
        "error_samples": tally.error_samples,
    }


def make_target(config: dict[str, Any]) -> Target:
    common: dict[str, Any] = {
        "host": config["host"],
        "port": int(config["port"]),
        "headers": dict(config.get("headers", {})),
    }
    if "requests" not in config:
        return Target(
            path=config["path"], countries=list(config.get("countries", ["UA"])), **common
        )
    templates = [(Template(r["path"]), Template(r["body"])) for r in config["requests"]]
    if not templates:
        raise SystemExit("`requests` lists no template")
    return Templated(
        path=config["requests"][0]["path"],
        templates=templates,
        offset=int(config.get("offset", 0)),
        **common,
    )


async def run(config: dict[str, Any]) -> dict[str, Any]:
    target = make_target(config)
    mode = config["mode"]
    if mode == "closed":
        return await closed_loop(
            target,
            concurrency=int(config["concurrency"]),
            warmup=float(config["warmup"]),
            seconds=float(config["seconds"]),
            retry_on=str(config.get("retry_on", "")).encode(),
            abandon_after=(
                None if config.get("abandon_after") is None else float(config["abandon_after"])
            ),
        )
    if mode == "count":
        max_seconds = config.get("max_seconds")
        return await count_mode(
            target,
            concurrency=int(config["concurrency"]),
            total=int(config["total"]),
            max_seconds=None if max_seconds is None else float(max_seconds),
        )
    if mode == "rate":
        return await rate_mode(target, rate=float(config["rate"]), seconds=float(config["seconds"]))
    raise SystemExit(f"unknown mode {mode!r}")


def main() -> None:
    config = json.loads(sys.argv[1])
    cpu0 = time.process_time()
    result = asyncio.run(run(config))
    result["client_cpu_s"] = time.process_time() - cpu0
    with open(config["out"], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
