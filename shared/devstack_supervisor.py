"""The dev stack's children (APIs, workers, the broker, the embedded PostgreSQL), kept running.

One that dies is started again, with the same command, environment and log, after a backoff
that doubles while it keeps dying (BACKOFF_FIRST to BACKOFF_LAST) and starts from the first
again once a child stayed up STABLE_AFTER seconds. `stop` stops the services before the broker
they talk to.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.infra import EmbeddedPostgres

STOP_GRACE = 10.0
# restart backoff: doubles from the first to the last while a child keeps dying; a child that
# stayed up STABLE_AFTER seconds starts from the first again
BACKOFF_FIRST = 0.5
BACKOFF_LAST = 15.0
STABLE_AFTER = 30.0
PG_BACKOFF_LAST = 2.0


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    health_url: str | None = None
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    started_at: float = 0.0
    backoff: float = BACKOFF_FIRST
    restart_at: float | None = None
    restarts: int = 0


def _linux_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    with contextlib.suppress(OSError, AttributeError):
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    return None


_PRCTL = _linux_prctl()


def _die_with_parent() -> None:
    # If the stack itself is killed outright, its children get SIGTERM instead of lingering
    # on their ports. PR_SET_PDEATHSIG = 1.
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "  (no log)"
    return "\n".join(f"  | {line}" for line in text) or "  (empty log)"


def say(message: str) -> None:
    print(message, flush=True)


class Supervisor:
    """The children of one run, each logging into `logs`/<name>.log."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[Child] = []
        self.broker: Child | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.postgres_restart_at: float | None = None
        self.postgres_backoff = BACKOFF_FIRST
        self.postgres_restarts = 0

    def add(self, name: str, argv: list[str], env: Mapping[str, str], health_url: str) -> None:
        proc = self.spawn(name, argv, env)
        log = self.logs / f"{name}.log"
        self.children.append(Child(name, proc, log, health_url, tuple(argv), env, time.monotonic()))

    def spawn(
        self, name: str, argv: list[str], env: Mapping[str, str], *, append: bool = False
    ) -> subprocess.Popen[bytes]:
        # Own process group: a terminal's Ctrl-C reaches only the stack, which stops the
        # children in order (workers before the broker they talk to).
        with open(self.logs / f"{name}.log", "ab" if append else "wb") as out:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                process_group=0,
                preexec_fn=_die_with_parent,
            )

    def watch(self) -> None:
        """Supervise until a signal (Stopped): restart what dies, with backoff."""
        while True:
            self.supervise_once()
            time.sleep(1.0)  # a death is noticed within a second; idle costs next to nothing

    def supervise_once(self) -> None:
        now = time.monotonic()
        for child in [*([self.broker] if self.broker else []), *self.children]:
            self._supervise(child, now)
        if self.postgres is not None:
            self._supervise_postgres(now)

    def _supervise(self, child: Child, now: float) -> None:
        if child.proc.poll() is None:
            if now - child.started_at >= STABLE_AFTER:
                child.backoff = BACKOFF_FIRST
            return
        if child.restart_at is None:
            say(
                f"supervisor: {child.name} exited with code {child.proc.returncode}; "
                f"restarting it in {child.backoff:.1f} s (log {child.log})"
            )
            child.restart_at = now + child.backoff
            child.backoff = min(child.backoff * 2, BACKOFF_LAST)
            return
        if now < child.restart_at:
            return
        assert child.env is not None
        with open(child.log, "ab") as out:
            out.write(
                f"\n--- restarted by the supervisor after exit {child.proc.returncode}\n".encode()
            )
        child.proc = self.spawn(child.name, list(child.argv), child.env, append=True)
        child.started_at, child.restart_at = now, None
        child.restarts += 1
        say(f"supervisor: {child.name} restarted (pid {child.proc.pid})")

    def _supervise_postgres(self, now: float) -> None:
        assert self.postgres is not None
        if self.postgres.pid() is not None:
            return
        if self.postgres_restart_at is None:
            say(
                "supervisor: the embedded PostgreSQL is not running; "
                f"restarting it in {self.postgres_backoff:.1f} s"
            )
            self.postgres_restart_at = now + self.postgres_backoff
            return
        if now < self.postgres_restart_at:
            return
        if self.postgres.restart():
            self.postgres_restart_at, self.postgres_backoff = None, BACKOFF_FIRST
            self.postgres_restarts += 1
            say(f"supervisor: the embedded PostgreSQL restarted (pid {self.postgres.pid()})")
        else:
            # most often the killed server's backends still hold its shared memory for a
            # moment: try again soon rather than back off as far as for a crashing child
            self.postgres_backoff = min(self.postgres_backoff * 2, PG_BACKOFF_LAST)
            self.postgres_restart_at = now + self.postgres_backoff

    def stop(self) -> None:
        """SIGTERM the services, SIGKILL what is left after the grace period, then the broker."""
        self._terminate(self.children)
        if self.broker is not None:
            self._terminate([self.broker])

    @staticmethod
    def _terminate(children: list[Child]) -> None:
        for child in children:
            if child.proc.poll() is None:
                child.proc.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for child in children:
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{child.name} did not stop within {STOP_GRACE:.0f} s: killing it")
                child.proc.kill()
                child.proc.wait()
