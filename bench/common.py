"""Shared by the benchmarks: servers and processes, the load process, CPU accounting,
percentiles, tables and result files. Processes are started with tests/e2e/processes.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from shared.infra import free_port
from shared.outbox import LEADER_LOCK
from shared.testing import test_server_url
from tests.e2e.processes import Proc, Stack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
MACHINE_NOTE = (
    "{cores} cores shared by the load client, the server under test, PostgreSQL (and the relay,"
    " broker and consumer where running), plus whatever else runs on the machine: read the"
    " figures as relative, not as capacity."
)


# -- servers and processes ----------------------------------------------------------------


def pg_server(mode: str) -> str:
    """embedded | system | a URL (shared.testing). The embedded server gets a data directory of
    its own, so the bench neither stops nor is stopped by a concurrent test run's server."""
    if mode == "embedded":
        os.environ.setdefault("TWINAID_DATA_DIR", str(ROOT / ".data" / "bench"))
    os.environ["TWINAID_TEST_PG"] = mode
    return test_server_url()


class BenchStack(Stack):
    """The e2e stack with the settings a deployment has: the tests shorten the relay's poll
    interval and the consumer's gap grace, a benchmark keeps the defaults."""

    def env(self, db_url: str, **extra: str) -> dict[str, str]:
        env = super().env(db_url, **extra)
        for name in ("RELAY_POLL_INTERVAL", "CONSUMER_GAP_GRACE"):
            if name not in extra:
                env.pop(name, None)
        return env

    def factory_app(self, name: str, factory: str, db_url: str, **extra_env: str) -> Proc:
        """Any `uvicorn --factory` app, started exactly as Stack.api starts a service."""
        port = free_port()
        proc = Proc(
            name,
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                factory,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            self.env(db_url, **extra_env),
            self.logs / f"{name}.log",
            port=port,
        )
        self.procs.append(proc.start())
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)


def log_dir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"twinaid-bench-{name}-"))


def cancel_on_sigterm() -> None:
    """SIGTERM behaves as Ctrl-C: the main task is cancelled and every `finally` runs."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def stop_popen(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- the load process -----------------------------------------------------------------------


Hook = Callable[[], None]


async def run_load(
    config: Mapping[str, Any],
    *,
    logs: Path,
    on_start: Hook | None = None,
    on_end: Hook | None = None,
    on_pid: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run bench.load in its own process; the hooks fire at its measured window's edges."""
    out = logs / f"load-{time.monotonic_ns()}.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load",
        json.dumps({**config, "out": str(out)}),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    if on_pid is not None:
        on_pid(proc.pid)
    try:
        assert proc.stdout is not None
        async for line in proc.stdout:
            word = line.split(b" ", 1)[0]
            if word == b"START" and on_start is not None:
                on_start()
            elif word == b"END" and on_end is not None:
                on_end()
        if await proc.wait() != 0:
            raise RuntimeError(f"the load process failed with exit code {proc.returncode}")
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(ProcessLookupError):
                await asyncio.wait_for(proc.wait(), 5)
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


# -- CPU accounting -------------------------------------------------------------------------


def _cpu_seconds(proc: psutil.Process, *, children: bool) -> float:
    procs = [proc]
    if children:
        for _ in range(5):  # a child that exits while being listed makes the listing fail
            try:
                procs += proc.children(recursive=True)
                break
            except psutil.NoSuchProcess:
                continue
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = p.cpu_times()
            total += t.user + t.system
    return total


async def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's main process, if it runs on this machine."""
    conn = await asyncpg.connect(url)
    try:
        backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
        try:
            return int(psutil.Process(backend).ppid())  # while the backend still lives
        except psutil.Error:
            return None
    finally:
        await conn.close()


@dataclass
class CpuMeter:
    """CPU seconds of named processes (with their children for PostgreSQL) and of the machine,
    between two snapshots; what the machine spent beyond them is reported as `other`."""

    pids: dict[str, tuple[int, bool]] = field(default_factory=dict)
    marks: dict[str, tuple[float, dict[str, float], float]] = field(default_factory=dict)

    def watch(self, name: str, pid: int | None, *, children: bool = False) -> None:
        if pid is not None:
            self.pids[name] = (pid, children)

    def mark(self, label: str) -> None:
        used: dict[str, float] = {}
        for name, (pid, children) in self.pids.items():
            with contextlib.suppress(psutil.Error):
                used[name] = _cpu_seconds(psutil.Process(pid), children=children)
        machine = psutil.cpu_times()
        busy = (
            machine.user
            + machine.system
            + machine.nice
            + machine.irq
            + machine.softirq
            + getattr(machine, "steal", 0.0)
        )
        self.marks[label] = (time.monotonic(), used, busy)

    def cores(self, start: str = "start", end: str = "end") -> dict[str, float]:
        """Average cores used per process between two marks, plus `other` and `machine`."""
        if start not in self.marks or end not in self.marks:
            return {}
        t0, used0, busy0 = self.marks[start]
        t1, used1, busy1 = self.marks[end]
        wall = max(t1 - t0, 1e-9)
        result = {
            name: round((used1[name] - used0.get(name, 0.0)) / wall, 2)
            for name in used1
            if name in used0
        }
        machine = (busy1 - busy0) / wall
        result["other"] = round(max(0.0, machine - sum(result.values())), 2)
        result["machine"] = round(machine, 2)
        return result


# -- what PostgreSQL backends wait on ----------------------------------------------------------


class WaitSampler:
    """Samples pg_stat_activity of one database: what its active backends are doing."""

    def __init__(self, url: str, *, every: float = 0.05) -> None:
        self.url = url
        self.every = every
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self.frozen = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            while True:
                rows = await conn.fetch(
                    "SELECT wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = current_database() AND state = 'active'"
                    " AND pid <> pg_backend_pid()"
                )
                if self.frozen:
                    return
                self.samples += 1
                for row in rows:
                    if row["wait_event_type"] is None:
                        self.counts["CPU (no wait event)"] += 1
                    else:
                        self.counts[f"{row['wait_event_type']}:{row['wait_event']}"] += 1
                await asyncio.sleep(self.every)
        finally:
            await conn.close()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def freeze(self) -> None:
        """Stop counting now (from a synchronous hook); `stop()` later."""
        self.frozen = True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def summary(self, top: int = 6) -> dict[str, float]:
        """Average number of active backends in each state, the busiest first."""
        n = max(self.samples, 1)
        return {k: round(v / n, 2) for k, v in self.counts.most_common(top)}


class Poller:
    """Runs one query every `every` seconds, keeping (monotonic time, row) samples."""

    def __init__(self, url: str, query: str, *args: object, every: float = 0.1) -> None:
        self.url = url
        self.query = query
        self.args = args
        self.every = every
        self.samples: list[tuple[float, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            loop = asyncio.get_running_loop()
            next_at = loop.time()
            while True:
                row = await conn.fetchrow(self.query, *self.args)
                self.samples.append((time.monotonic(), dict(row) if row else {}))
                next_at += self.every
                await asyncio.sleep(max(0.0, next_at - loop.time()))
        finally:
            await conn.close()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def latest(self) -> dict[str, Any]:
        return self.samples[-1][1] if self.samples else {}

    def between(self, t0: float, t1: float) -> list[tuple[float, dict[str, Any]]]:
        return [(t, row) for t, row in self.samples if t0 <= t <= t1]


# -- statistics and output --------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of unsorted values (nan when there are none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def summary(values: Sequence[float], digits: int = 1) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), digits),
        "p95": round(percentile(values, 95), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits),
        "mean": round(sum(values) / len(values), digits),
    }


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def met(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.rstrip("\n") if done.returncode == 0 else ""


def _busy_cores(seconds: float) -> float:
    """Cores the machine keeps busy over `seconds` (before the run: someone else's load)."""
    a = psutil.cpu_times()
    time.sleep(seconds)
    b = psutil.cpu_times()
    busy: float = sum(
        getattr(b, f) - getattr(a, f) for f in ("user", "system", "nice", "irq", "softirq")
    )
    return round(busy / seconds, 2)


async def environment(server_url: str, pg_mode: str) -> dict[str, Any]:
    conn = await asyncpg.connect(server_url)
    try:
        settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in (
                "server_version",
                "fsync",
                "synchronous_commit",
                "shared_buffers",
                "max_connections",
            )
        }
    finally:
        await conn.close()
    # BENCH_SOURCE_COMMIT: when running from an exported tree (`git archive`), its commit
    commit = os.environ.get("BENCH_SOURCE_COMMIT") or await asyncio.to_thread(
        _git, "rev-parse", "--short", "HEAD"
    )
    status = await asyncio.to_thread(_git, "status", "--porcelain", "--untracked-files=no")
    changed = [line[3:] for line in status.splitlines() if not line[3:].startswith("bench/")]
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "source_tree": "exported (git archive) from that commit"
        if os.environ.get("BENCH_SOURCE_COMMIT")
        else "the working tree",
        "uncommitted_changes_outside_bench": changed,
        "cores": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "busy_cores_before_start": await asyncio.to_thread(_busy_cores, 1.0),
        "python": platform.python_version(),
        "postgres": {"mode": pg_mode, **settings},
    }


def header(title: str, env: Mapping[str, Any]) -> None:
    pg = env["postgres"]
    say()
    say(title)
    say(MACHINE_NOTE.format(cores=env["cores"]))
    say(
        f"Before the run the machine was already busy on {env['busy_cores_before_start']} cores"
        f" (load average {env['load_average_at_start']})."
    )
    say(
        f"PostgreSQL {pg['server_version']} ({pg['mode']}; fsync={pg['fsync']},"
        f" synchronous_commit={pg['synchronous_commit']}); code at {env['git_commit']}"
        + (
            f" with uncommitted changes in {', '.join(env['uncommitted_changes_outside_bench'])}"
            if env["uncommitted_changes_outside_bench"]
            else ""
        )
    )


def write_results(name: str, data: Mapping[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


@contextlib.asynccontextmanager
async def connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def wait_relay_leader(db_url: str, timeout: float = 60) -> float:
    """Seconds until a relay holds its leader lock in this database: its worker has applied the
    schema (which takes ACCESS EXCLUSIVE locks, so writes sent before would queue behind it, or
    deadlock with it) and is publishing."""
    started = time.monotonic()
    async with connection(db_url) as conn:
        while time.monotonic() - started < timeout:
            held = await conn.fetchval(
                "SELECT true FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND ((classid::bigint << 32) | objid::bigint) = $1",
                LEADER_LOCK,
            )
            if held:
                return round(time.monotonic() - started, 2)
            await asyncio.sleep(0.02)
    raise RuntimeError(f"no relay became the leader within {timeout:g} s")


def say(text: str = "") -> None:
    print(text, flush=True)
