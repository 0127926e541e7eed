"""`make run`: PostgreSQL, the broker, every service's API and worker, demo keys and demo data.

`python -m shared.devstack [--exit-after-ready]`. Ctrl-C or SIGTERM stops everything and exits 0.
Services are named by module strings only: shared never imports services.

Once ready, the stack supervises its children (shared/devstack_supervisor.py): one that dies
(an API, a worker, the broker, the embedded PostgreSQL) is started again, with the same command
and port, after a backoff that grows while it keeps dying; nothing but a signal stops the stack.
Ports are fixed for the whole run (TWINAID_PORT_BASE, or free ones picked once with
TWINAID_PORT_BASE=0): a configured port that is taken is an error at start-up, not a silent other
one. Workers notice a broker that came back empty by themselves (shared/kafka.py BrokerEpoch) and
republish or catch up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

import asyncpg
import httpx

from shared import auth, kafka
from shared import db as dbmod
from shared.auth import Role
from shared.devstack_keys import (
    DEMO_KEYS,
    DEMO_LABEL,
    DemoKey,
    pin_signing_keys,
    pins_file,
    signing_key_file,
)
from shared.devstack_supervisor import Child, Supervisor, say, tail
from shared.infra import EmbeddedPostgres, free_port, port_open, tansu_binary
from shared.settings import SERVICES, Settings, database_for

HOST = "127.0.0.1"


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived; a BaseException so that no `except Exception` swallows it."""


class StartupFailed(Exception):
    pass


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


class DevStack:
    def __init__(self, *, data_dir: Path, env: Mapping[str, str], start_timeout: float) -> None:
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.env = dict(env)
        self.start_timeout = start_timeout
        self.supervisor = Supervisor(self.logs)
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
            postgres = EmbeddedPostgres(self.data_dir / "pg")
            self.supervisor.postgres = postgres
            self.server_url = postgres.url
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
        """A port of the run; a free one picked (base 0) is never one already given to
        another process of the run (the system may hand out a closed port again)."""
        taken = {self.broker_port, *(int(u.rsplit(":", 1)[1]) for u in self._urls())}
        for _ in range(100):
            port = claim_port(self.port_base + offset if self.port_base else 0, what)
            if self.port_base or port not in taken:
                return port
        raise StartupFailed(f"no free port for {what} apart from the run's others")

    def _urls(self) -> list[str]:
        return [*self.api_urls.values(), *self.worker_urls.values()]

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
        proc = self.supervisor.spawn("tansu", argv, self.env)
        broker = Child("tansu", proc, self.logs / "tansu.log", argv=tuple(argv), env=self.env)
        self.supervisor.broker = broker
        deadline = time.monotonic() + 15
        while not port_open(HOST, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise StartupFailed(
                    f"the Tansu broker did not start on port {port}:\n{tail(broker.log)}"
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
                await dbmod.migrate(conn, service)
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
            self.supervisor.add(f"{service}-api", [*uvicorn, "--port", api_port, app], env, ready)
            worker_env = {
                **env,
                "WORKER_HEALTH_PORT": self.worker_urls[service].rpartition(":")[2],
            }
            worker = [sys.executable, "-m", f"services.{service}.worker"]
            self.supervisor.add(f"{service}-worker", worker, worker_env, self.worker_urls[service])

    def _wait_ready(self) -> None:
        pending = list(self.supervisor.children)
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

    def summary(self, elapsed: float) -> str:
        rows = [f"  {'service':<10} {'API':<24} {'docs':<30} worker health"]
        for service in SERVICES:
            api, worker = self.api_urls[service], self.worker_urls[service]
            rows.append(f"  {service:<10} {api:<24} {api + '/docs':<30} {worker}")
        keys = [f"  {'who':<38} {'organisation':<14} {'roles':<15} key"]
        for key, token in self.tokens:
            roles = ",".join(r.value for r in key.roles)
            keys.append(f"  {key.who:<38} {key.organisation:<14} {roles:<15} {token}")
        broker = f"{self.bootstrap} ({'Tansu, memory only' if self.supervisor.broker else 'given'})"
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
            stack.supervisor.watch()
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
        stack.supervisor.stop()
        say("stopped")
    # The embedded PostgreSQL stops in an atexit hook when this process exits.
    return code


if __name__ == "__main__":
    sys.exit(main())
