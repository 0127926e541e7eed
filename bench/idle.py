"""What `make run` costs when nothing happens: the CPU of every process of an idle stack.

Starts the whole stack as `make run` does (python -m shared.devstack: the broker, three APIs,
three workers, the demo data; PostgreSQL at 127.0.0.1:5432 when there is one, else the
embedded one), lets it settle, then reads each process's CPU time over a window. Beside it, in
the same run, the floor: a bare Python process that only sleeps. Prints a table and writes
bench/results/idle.json.

    python -m bench.idle [--settle 20] [--window 60]

What is ours is the APIs, the workers and the supervisor: their polling intervals and fetch
waits. The broker (Tansu) and PostgreSQL are reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from shared.testing import test_server_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.02  # of a core, everything of ours together (issue 19 point 8)


def _label(proc: psutil.Process) -> str:
    try:
        cmd = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    for service in ("registry", "pledges", "shipments"):
        if f"services.{service}.app" in cmd:
            return f"{service}-api"
        if f"services.{service}.worker" in cmd:
            return f"{service}-worker"
    if "shared.devstack" in cmd:
        return "supervisor"
    if "tansu" in cmd or "calfkit" in cmd:
        return "broker"
    if "postgres" in cmd:
        return "postgres"
    return proc.name()


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def _system_pg() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), 1).close()
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    args = parser.parse_args(argv)
    data = Path(tempfile.mkdtemp(prefix="twinaid-idle-"))
    env = {**os.environ, "TWINAID_DATA_DIR": str(data), "TWINAID_PORT_BASE": "0"}
    if _system_pg():
        # a database server of its own is not ours to measure: use the machine's
        env["DATABASE_URL"] = test_server_url()
    log = (data / "devstack.out").open("wb")
    stack = subprocess.Popen(
        [sys.executable, "-m", "shared.devstack"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    floor = subprocess.Popen(
        [sys.executable, "-c", "import asyncio; asyncio.run(asyncio.sleep(10**9))"]
    )
    try:
        deadline = time.monotonic() + 180
        while b"Ctrl-C stops everything" not in (data / "devstack.out").read_bytes():
            if stack.poll() is not None or time.monotonic() > deadline:
                print((data / "devstack.out").read_text()[-3000:])
                raise SystemExit("the stack did not start")
            time.sleep(1)
        time.sleep(args.settle)
        root = psutil.Process(stack.pid)
        procs = [root, *root.children(recursive=True), psutil.Process(floor.pid)]
        labels = {p.pid: _label(p) for p in procs}
        labels[floor.pid] = "floor (a sleeping Python)"
        before = _cpu(procs)
        started = time.monotonic()
        time.sleep(args.window)
        after = _cpu(procs)
        elapsed = time.monotonic() - started
    finally:
        stack.terminate()
        try:
            stack.wait(60)
        except subprocess.TimeoutExpired:
            stack.kill()
        floor.kill()
        log.close()
    cores: dict[str, float] = {}
    for p in procs:
        if p.pid in before and p.pid in after:
            name = labels[p.pid]
            cores[name] = cores.get(name, 0.0) + (after[p.pid] - before[p.pid]) / elapsed
    ours = sum(v for k, v in cores.items() if k.endswith(("-api", "-worker")) or k == "supervisor")
    print(f"idle stack, {elapsed:.0f} s window after {args.settle:.0f} s settling")
    print(f"{'process':32} {'cores':>8}")
    for name, value in sorted(cores.items()):
        print(f"{name:32} {value:8.4f}")
    print(f"{'ours (APIs, workers, supervisor)':32} {ours:8.4f}   target < {TARGET}")
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "window_s": round(elapsed, 1),
        "settle_s": args.settle,
        "cores": {k: round(v, 5) for k, v in sorted(cores.items())},
        "ours": round(ours, 5),
        "target": TARGET,
        "postgres": "system" if "DATABASE_URL" in env else "embedded",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "idle.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
