"""Services as separate processes, for end-to-end and fault tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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
