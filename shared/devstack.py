"""`make run`: PostgreSQL, the broker, every service's API and worker, demo keys and demo data.

`python -m shared.devstack [--exit-after-ready]`. Ctrl-C or SIGTERM stops everything and exits 0.
Services are named by module strings only: shared never imports services.

Once ready, the stack supervises its children: one that dies (an API, a worker, the broker, the
embedded PostgreSQL) is started again, with the same command and port, after a backoff that
grows while it keeps dying; nothing but a signal stops the stack. Ports are fixed for the whole
run (TWINAID_PORT_BASE, or free ones picked once with TWINAID_PORT_BASE=0): a configured port
that is taken is an error at start-up, not a silent other one. Workers notice a broker that came
back empty by themselves (shared/kafka.py BrokerEpoch) and republish or catch up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import asyncpg
import httpx

from shared import auth, kafka, signing
from shared import db as dbmod
from shared.auth import Role
from shared.infra import EmbeddedPostgres, free_port, port_open, tansu_binary
from shared.settings import SERVICES, Settings, database_for

HOST = "127.0.0.1"
DEMO_LABEL = "demo"
STOP_GRACE = 10.0
# restart backoff: doubles from the first to the last while a child keeps dying; a child that
# stayed up STABLE_AFTER seconds starts from the first again
BACKOFF_FIRST = 0.5
BACKOFF_LAST = 15.0
STABLE_AFTER = 30.0
PG_BACKOFF_LAST = 2.0


@dataclass(frozen=True, slots=True)
class DemoKey:
    who: str
    organisation: str
    roles: tuple[Role, ...]


# Organisation ids are the slugs of services/registry/demo.py.
DEMO_KEYS = (
    DemoKey("registry administrator", "twinaid", (Role.REGISTRY_ADMIN,)),
    DemoKey("member: Lille", "lille", (Role.MEMBER,)),
    DemoKey("member: Kharkiv", "kharkiv", (Role.MEMBER,)),
    DemoKey("member: Leeds", "leeds", (Role.MEMBER,)),
    DemoKey("member: Bucha", "bucha", (Role.MEMBER,)),
    DemoKey("logistics: Lille convoys", "lille", (Role.LOGISTICS,)),
    DemoKey("key administrator: Lille (org_admin)", "lille", (Role.ORG_ADMIN,)),
    DemoKey("logistics: Kharkiv", "kharkiv", (Role.LOGISTICS,)),
    DemoKey("auditor", "twinaid-audit", (Role.AUDITOR,)),
    DemoKey("service (the workers' FEED_API_KEY)", "twinaid", (Role.SERVICE,)),
)


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived; a BaseException so that no `except Exception` swallows it."""


class StartupFailed(Exception):
    pass


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


def _bindable(port: int) -> bool:
    # With address reuse, as uvicorn, asyncio servers and Tansu bind: a port whose last
    # connections linger in TIME_WAIT (the previous run's) can be had; one listened on cannot.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def claim_port(port: int, what: str) -> int:
    """`port`, or a free one if it is 0. Raises StartupFailed if `port` is taken."""
    if port <= 0:
        return free_port()
    if not _bindable(port):
        raise StartupFailed(
            f"port {port} ({what}) is in use on {HOST}: stop what holds it, or choose other "
            "ports with TWINAID_PORT_BASE (0 picks free ones)"
        )
    return port


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "  (no log)"
    return "\n".join(f"  | {line}" for line in text) or "  (empty log)"


class DevStack:
    def __init__(self, *, data_dir: Path, env: Mapping[str, str], start_timeout: float) -> None:
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.env = dict(env)
        self.start_timeout = start_timeout
        self.children: list[Child] = []
        self.broker: Child | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.postgres_restart_at: float | None = None
        self.postgres_backoff = BACKOFF_FIRST
        self.postgres_restarts = 0
        self.port_base = int(self.env.get("TWINAID_PORT_BASE", "8100"))
        self.broker_port = 0
        self.server_url = ""
        self.bootstrap = ""
        self.idempotence = True
        self.api_urls: dict[str, str] = {}
        self.worker_urls: dict[str, str] = {}
        self.tokens: list[tuple[DemoKey, str]] = []
        self.demo_output: list[str] = []
        self.trusted_keys: dict[str, list[str]] = {}

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        given_kafka = self.env.get("KAFKA_BOOTSTRAP_SERVERS")
        self._claim_ports(broker=not given_kafka)
        given_db = self.env.get("DATABASE_URL")
        if given_db:
            self.server_url = given_db
        else:
            say(f"starting the embedded PostgreSQL (data in {self.data_dir / 'pg'})")
            self.postgres = EmbeddedPostgres(self.data_dir / "pg")
            self.server_url = self.postgres.url
        if given_kafka:
            self.bootstrap = given_kafka
            self.idempotence = Settings().kafka_idempotence
        else:
            self.bootstrap = self._start_broker()
            # Tansu refuses InitProducerId (KAFKA.md)
            self.idempotence = False
        self.tokens = [(key, auth.new_key()[1]) for key in DEMO_KEYS]
        self.trusted_keys = pin_signing_keys(self.data_dir / "keys")
        asyncio.run(self._prepare())
        self._start_services()
        self._wait_ready()
        self._load_demo_data()

    def _port(self, offset: int, what: str) -> int:
        return claim_port(self.port_base + offset if self.port_base else 0, what)

    def _claim_ports(self, *, broker: bool) -> None:
        """Every port of the run, before anything starts: one that is taken fails the start."""
        if broker:
            self.broker_port = self._port(20, "the Kafka broker")
        for i, service in enumerate(SERVICES, start=1):
            self.api_urls[service] = f"http://{HOST}:{self._port(i, f'the {service} API')}"
            worker_port = self._port(10 + i, f"the {service} worker's health")
            self.worker_urls[service] = f"http://{HOST}:{worker_port}"

    def _start_broker(self) -> str:
        port = self.broker_port
        url = f"tcp://{HOST}:{port}"
        say(f"starting the Tansu broker on {HOST}:{port} (memory only)")
        argv = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        proc = self._spawn("tansu", argv, self.env)
        self.broker = Child("tansu", proc, self.logs / "tansu.log", argv=tuple(argv), env=self.env)
        deadline = time.monotonic() + 15
        while not port_open(HOST, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise StartupFailed(
                    f"the Tansu broker did not start on port {port}:\n{tail(self.broker.log)}"
                )
            time.sleep(0.02)
        return f"{HOST}:{port}"

    async def _prepare(self) -> None:
        """Databases, schemas, topics, and this run's demo keys (the previous run's revoked).
        A new memory-only broker has empty topics: each relay notices and republishes its whole
        log (shared/outbox.py); consumers drop by event id what they already applied."""
        settings = self._settings()
        for service in SERVICES:
            conn = await asyncpg.connect(await self._database(service))
            try:
                await dbmod.migrate(
                    conn,
                    service,
                    dbmod.schema_text("shared"),
                    dbmod.schema_text(f"services.{service}"),
                )
                await self._register_keys(conn)
            finally:
                await conn.close()
        await kafka.wait_for_broker(settings)
        await kafka.ensure_topics(settings, [settings.topic(s) for s in SERVICES])

    async def _register_keys(self, conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            previous = await conn.fetch(
                "SELECT key_id FROM api_keys WHERE label = $1 AND revoked_at IS NULL", DEMO_LABEL
            )
            for row in previous:
                await auth.revoke(conn, key_id=row["key_id"])
            for key, token in self.tokens:
                roles = list(key.roles)
                await auth.issue(
                    conn, organisation=key.organisation, roles=roles, label=DEMO_LABEL, token=token
                )

    async def _database(self, service: str) -> str:
        url = dbmod.with_database(self.server_url, database_for(service))
        await dbmod.ensure_database(url)
        return url

    def _settings(self) -> Settings:
        return Settings(kafka_bootstrap_servers=self.bootstrap, kafka_idempotence=self.idempotence)

    def _start_services(self) -> None:
        service_token = next(t for k, t in self.tokens if Role.SERVICE in k.roles)
        for service in SERVICES:
            env = {
                **self.env,
                "DATABASE_URL": dbmod.with_database(self.server_url, database_for(service)),
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "KAFKA_IDEMPOTENCE": str(self.idempotence).lower(),
                "UPSTREAM_FEEDS": json.dumps(
                    {s: url for s, url in self.api_urls.items() if s != service}
                ),
                "FEED_API_KEY": service_token,
                # the convoy board, served by shipments, calls every API from the browser
                "CORS_ORIGINS": json.dumps(
                    [
                        self.api_urls["shipments"],
                        self.api_urls["shipments"].replace(HOST, "localhost"),
                    ]
                ),
                "PUBLIC_URLS": json.dumps(self.api_urls),
                # every process checks every service's events and checkpoints against these
                "TRUSTED_KEYS": json.dumps(self.trusted_keys),
                # the service's key stays with the data, across restarts: its worker signs
                # checkpoints and published events with it, its API the pages of its feed
                "SIGNING_KEY_FILE": str(
                    signing_key_file(self.data_dir / "keys", service).resolve()
                ),
                "PYTHONUNBUFFERED": "1",
            }
            api_port = self.api_urls[service].rpartition(":")[2]
            # uvicorn --factory, waking once a second when idle (shared/serve.py)
            uvicorn = [sys.executable, "-m", "shared.serve", "--host", HOST]
            app = f"services.{service}.app:create_app"
            ready = f"{self.api_urls[service]}/readyz"
            self._add(f"{service}-api", [*uvicorn, "--port", api_port, app], env, ready)
            worker_env = {
                **env,
                "WORKER_HEALTH_PORT": self.worker_urls[service].rpartition(":")[2],
            }
            worker = [sys.executable, "-m", f"services.{service}.worker"]
            self._add(f"{service}-worker", worker, worker_env, self.worker_urls[service])

    def _add(self, name: str, argv: list[str], env: Mapping[str, str], health_url: str) -> None:
        proc = self._spawn(name, argv, env)
        log = self.logs / f"{name}.log"
        self.children.append(Child(name, proc, log, health_url, tuple(argv), env, time.monotonic()))

    def _spawn(
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

    def _wait_ready(self) -> None:
        pending = list(self.children)
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=1.0) as http:
            while pending:
                for child in list(pending):
                    self._check_alive(child)
                    assert child.health_url is not None
                    with contextlib.suppress(httpx.HTTPError):
                        if http.get(child.health_url).status_code == 200:
                            pending.remove(child)
                if pending and time.monotonic() > deadline:
                    details = "\n".join(
                        f"{c.name} ({c.health_url}), log {c.log}:\n{tail(c.log)}" for c in pending
                    )
                    raise StartupFailed(
                        f"not ready after {self.start_timeout:.0f} s: "
                        f"{', '.join(c.name for c in pending)}\n{details}"
                    )
                time.sleep(0.2)

    def _check_alive(self, child: Child) -> None:
        code = child.proc.poll()
        if code is not None:
            raise StartupFailed(
                f"{child.name} exited with code {code}; log {child.log}:\n{tail(child.log)}"
            )

    def _load_demo_data(self) -> None:
        admin = next(t for k, t in self.tokens if Role.REGISTRY_ADMIN in k.roles)
        for service in SERVICES:
            module = f"services.{service}.demo"
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:
                found = False
            if not found:
                continue
            say(f"loading demo data: {module}")
            done = subprocess.run(
                [sys.executable, "-m", module, "--url", self.api_urls[service], "--key", admin],
                capture_output=True,
                text=True,
                timeout=120,
                env=self.env,
                check=False,
            )
            if done.returncode != 0:
                raise StartupFailed(
                    f"{module} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
                )
            self.demo_output += [f"  {line}" for line in done.stdout.splitlines()]

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
        child.proc = self._spawn(child.name, list(child.argv), child.env, append=True)
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

    def summary(self, elapsed: float) -> str:
        rows = [f"  {'service':<10} {'API':<24} {'docs':<30} worker health"]
        for service in SERVICES:
            api, worker = self.api_urls[service], self.worker_urls[service]
            rows.append(f"  {service:<10} {api:<24} {api + '/docs':<30} {worker}")
        keys = [f"  {'who':<38} {'organisation':<14} {'roles':<15} key"]
        for key, token in self.tokens:
            roles = ",".join(r.value for r in key.roles)
            keys.append(f"  {key.who:<38} {key.organisation:<14} {roles:<15} {token}")
        broker = f"{self.bootstrap} ({'Tansu, memory only' if self.broker else 'given'})"
        kharkiv = next(t for k, t in self.tokens if k.organisation == "kharkiv")
        return "\n".join(
            [
                "",
                *rows,
                "",
                f"  Convoy board  {self.api_urls['shipments']}/board/"
                "  (sign in with a demo key below)",
                "",
                f"  PostgreSQL  {self.server_url}",
                f"  Kafka       {broker}",
                f"  logs        {self.logs}/",
                f"  key pins    {pins_file(self.data_dir / 'keys').resolve()}"
                "  (TRUSTED_KEYS; twinaid audit --trusted-keys FILE)",
                "",
                "Demo API keys (new at every start; the previous run's are revoked):",
                *keys,
                "",
                *(["Demo data:", *self.demo_output, ""] if self.demo_output else []),
                "Try:",
                f"  curl -H 'Authorization: Bearer {kharkiv}' "
                f"{self.api_urls['registry']}/v1/organisations/kharkiv",
                f"  DATABASE_URL='{self.server_url}' twinaid keys list",
                "",
                f"twinaid ready in {elapsed:.1f} s",
            ]
        )


def signing_key_file(keys_dir: Path, service: str) -> Path:
    return keys_dir / f"{service}.ed25519"


def pins_file(keys_dir: Path) -> Path:
    return keys_dir / "trusted_keys.json"


def pin_signing_keys(keys_dir: Path) -> dict[str, list[str]]:
    """Each service's signing key (kept in `keys_dir` across restarts, created the first time)
    and the pins of their public keys, kept in `keys_dir`/trusted_keys.json in TRUSTED_KEYS'
    form. A service is pinned once, to the key it first had: a later key is trusted only
    through a change its log announces, signed by the pinned key (twinaid keys rotate-signing),
    exactly as on a real deployment, whose pins an operator writes."""
    path = pins_file(keys_dir)
    pins: dict[str, list[str]] = {}
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(path.read_text())
        if isinstance(previous, dict):
            pins = {
                str(s): [str(k) for k in keys]
                for s, keys in previous.items()
                if isinstance(keys, list) and keys
            }
    for service in SERVICES:
        key = signing.Signer.from_file(signing_key_file(keys_dir, service)).public_key
        pins.setdefault(service, [key])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pins, indent=2) + "\n")
    return pins


def say(message: str) -> None:
    print(message, flush=True)


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.devstack", description=__doc__)
    parser.add_argument(
        "--exit-after-ready",
        action="store_true",
        default=os.environ.get("TWINAID_EXIT_AFTER_READY", "") not in {"", "0"},
        help="start, load demo data, print, then stop everything (for tests)",
    )
    parser.add_argument(
        "--start-timeout", type=float, default=float(os.environ.get("TWINAID_START_TIMEOUT", "60"))
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="platformdirs")
    started = time.monotonic()
    stack = DevStack(
        data_dir=Path(os.environ.get("TWINAID_DATA_DIR", ".data")),
        env=os.environ,
        start_timeout=args.start_timeout,
    )
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    code = 0
    try:
        stack.start()
        say(stack.summary(time.monotonic() - started))
        if not args.exit_after_ready:
            say("Ctrl-C stops everything.")
            stack.watch()
    except Stopped:
        pass
    except StartupFailed as exc:
        print(f"twinaid: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        # A second Ctrl-C must not interrupt the orderly stop; stragglers get SIGKILL anyway.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("stopping...")
        stack.stop()
        say("stopped")
    # The embedded PostgreSQL stops in an atexit hook when this process exits.
    return code


if __name__ == "__main__":
    sys.exit(main())
