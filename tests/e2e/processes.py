"""Services as separate processes, for end-to-end and fault tests; `make run` as a process."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.infra import free_port, port_open


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        self.popen.send_signal(sig)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@dataclass
class Stack:
    kafka: str
    prefix: str
    logs: Path
    procs: list[Proc] = field(default_factory=list)

    def env(self, db_url: str, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": db_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "KAFKA_IDEMPOTENCE": "false",
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "RELAY_POLL_INTERVAL": "0.5",
            "CONSUMER_GAP_GRACE": "1.0",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_PER_SECOND": "0",  # these tests are about faults, not rate limits
            **extra,
        }

    def api(self, service: str, db_url: str) -> Proc:
        port = free_port()
        proc = Proc(
            f"{service}-api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"services.{service}.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            self.env(db_url),
            self.logs / f"{service}-api.log",
            port=port,
        )
        self.procs.append(proc.start())
        return proc

    def worker(
        self, service: str, db_url: str, *, feeds: dict[str, str] | None = None, feed_key: str = ""
    ) -> Proc:
        env = self.env(db_url, UPSTREAM_FEEDS=json.dumps(feeds or {}), FEED_API_KEY=feed_key)
        proc = Proc(
            f"{service}-worker",
            [sys.executable, "-m", f"services.{service}.worker"],
            env,
            self.logs / f"{service}-worker.log",
        )
        self.procs.append(proc.start())
        return proc

    def wait_ready(self, proc: Proc, timeout: float = 30, path: str = "/readyz") -> str:
        url = f"http://127.0.0.1:{proc.port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.popen is not None and proc.popen.poll() is None, proc.tail()
            if port_open("127.0.0.1", proc.port or 0):
                try:
                    if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                        return url
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise AssertionError(f"{proc.name} not ready:\n{proc.tail()}")

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


# -- `make run` (python -m shared.devstack) as a process, and what it prints -------------------

KEY_LINE = re.compile(r"^\s+(?P<who>.+?)\s{2,}(?P<org>\S+)\s+(?P<roles>\S+)\s+(?P<key>twa_\S+)$")
API_LINE = re.compile(
    r"^\s+(?P<service>registry|pledges|shipments)\s+(?P<api>http://\S+)\s+\S+\s+(?P<worker>\S+)$"
)
PG_LINE = re.compile(r"^\s+PostgreSQL\s+(?P<url>\S+)$")
KAFKA_LINE = re.compile(r"^\s+Kafka\s+(?P<bootstrap>\S+) ")
READY = "twinaid ready in"


class Printed:
    def __init__(self, stdout: str) -> None:
        self.text = stdout
        lines = stdout.splitlines()
        rows = [m for line in lines if (m := API_LINE.match(line))]
        self.apis = {m["service"]: m["api"] for m in rows}
        self.workers = {m["service"]: m["worker"] for m in rows}
        self.keys = {
            m["who"]: (m["org"], m["roles"], m["key"])
            for line in lines
            if (m := KEY_LINE.match(line))
        }
        self.database = next(m["url"] for line in lines if (m := PG_LINE.match(line)))
        self.kafka = next(m["bootstrap"] for line in lines if (m := KAFKA_LINE.match(line)))

    def key(self, organisation: str, role: str) -> str:
        return next(
            k for org, roles, k in self.keys.values() if org == organisation and role == roles
        )


def stack_env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "TWINAID_DATA_DIR": str(data_dir), "TWINAID_PORT_BASE": "0"}
    env["PYTHONUNBUFFERED"] = "1"
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "TWINAID_EXIT_AFTER_READY"):
        env.pop(name, None)
    return env


def read_until_ready(
    proc: subprocess.Popen[str], timeout: float, sink: list[str] | None = None
) -> str:
    """What the stack printed up to "ready"; every line, then and later, also goes to `sink`."""
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = [] if sink is None else sink

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        if line.startswith(READY):
            return "".join(seen)
    raise AssertionError("the dev stack never said it was ready:\n" + "".join(seen))
