"""A service's worker process: its relay, its consumers, a tiny health and metrics endpoint.

On WORKER_HEALTH_PORT (once the database is migrated and the broker answered):
- `GET /healthz` liveness: 200 while the process and its event loop answer, 503 once stopping;
  `GET /` answers the same (the dev stack and tests wait for a worker on its bare URL);
- `GET /readyz` readiness: 503 naming its reasons unless the database answers a `SELECT 1`
  within 2 s, the sealer is not blocked by an event the chain cannot seal (position, event id,
  reason), and the consumer loop is not stuck restarting after failures nor retrying the same
  batch for over a minute (shared/consumer.py STALLED_AFTER);
- `GET /metrics` the Prometheus metrics (with METRICS_TOKEN: to a bearer of it only);
- 404 elsewhere. A blocked sealer or an unreachable database never stops the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Required, TypedDict, Unpack

import asyncpg
import httpx

from shared import db as dbmod
from shared import kafka, logs, privacy_subjects, runtime, webhook_dispatch, webhooks
from shared.auth import USE_RECORDED_EVERY
from shared.consumer import BrokerReset, ConsumerRunner, Handler
from shared.events import Metadata
from shared.metrics import Answer, Metrics, metrics_answer, not_found
from shared.metrics import serve as serve_http
from shared.outbox import Relay, signer_for
from shared.settings import Settings

log = logging.getLogger("twinaid.worker")
DATABASE_CHECK_TIMEOUT_S = 2.0
# the consumer loop is stuck when it failed this many times in a row without consuming
STUCK_AFTER_FAILURES = 3
# how often a worker reports its keys' last uses to the registry (KeyUseReporter), and at
# most how many a request (the registry's limit)
KEY_USES_REPORTED_EVERY = USE_RECORDED_EVERY
MAX_USES_REPORTED = 1000


class WatchedConsumers(ConsumerRunner):
    """The consumer loop, its restarts watched for the worker's readiness: a failure counts
    until the loop consumes again (a round of fetching from the broker)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures_in_a_row = 0
        self.last_failure: str | None = None

    async def _consume(self, stop: asyncio.Event) -> None:
        try:
            await super()._consume(stop)
        except BrokerReset:
            raise  # a restart by design (the broker came back empty), no failure
        except Exception as exc:
            self.failures_in_a_row += 1
            self.last_failure = repr(exc)[:300]
            raise

    async def check_broker(self, *, running: bool) -> None:
        if running:  # called after each round of fetching: the loop consumes
            self.failures_in_a_row = 0
        await super().check_broker(running=running)

    def stuck(self) -> str | None:
        """Why the loop is not consuming, when it keeps failing before it does, or has been
        retrying the same batch too long (ConsumerRunner.stalled)."""
        if self.failures_in_a_row >= STUCK_AFTER_FAILURES:
            return (
                f"the consumer loop failed {self.failures_in_a_row} times in a row,"
                f" last: {self.last_failure}"
            )
        return self.stalled()


class KeyUseReporter:
    """Tells the registry when this service's keys were last used (issue 21 point 4): the
    registry lists the latest use in any service, while each API process records a key's use
    only in its own database (shared/auth.py). Every `every` seconds, the keys whose
    `last_used_at` changed since the last report go to the registry's POST /v1/api-key-uses
    (at UPSTREAM_FEEDS' registry, with FEED_API_KEY, a `service` key), at most
    MAX_USES_REPORTED a request. Nothing changed: no request. A failed report is logged and
    sent again next time; a restarted worker reports every key once more (the registry keeps
    the latest, so that changes nothing). Not an event: a use changes nothing in the domain."""

    # a use recorded up to this long before the last one reported may still come (written by
    # an API process off the request's path): looked at again, sent only if it changed
    LATE = timedelta(minutes=5)

    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        db: dbmod.Database,
        http: httpx.AsyncClient,
        every: float = KEY_USES_REPORTED_EVERY,
    ) -> None:
        self.service = service
        self.registry = settings.upstream_feeds.get("registry")
        self.token = settings.feed_api_key
        self.db = db
        self.http = http
        self.every = every
        self.reported: dict[str, datetime] = {}  # key id -> the last use the registry has
        self.requests = 0

    @property
    def configured(self) -> bool:
        return self.service != "registry" and bool(self.registry) and bool(self.token)

    async def report(self) -> int:
        """Send what changed since the last report; returns how many keys were sent. Raises
        httpx.HTTPError when the registry refused or could not be reached."""
        since = max(self.reported.values(), default=None)
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT key_id, last_used_at FROM api_keys WHERE last_used_at IS NOT NULL"
                " AND ($1::timestamptz IS NULL OR last_used_at > $1)",
                since - self.LATE if since is not None else None,
            )
        # oldest first: should a later chunk fail, what was reported is older than what was
        # not, so the next round (after the latest reported) still finds the rest
        changed = sorted(
            (
                (r["key_id"], r["last_used_at"])
                for r in rows
                if self.reported.get(r["key_id"]) != r["last_used_at"]
            ),
            key=lambda use: (use[1], use[0]),
        )
        for start in range(0, len(changed), MAX_USES_REPORTED):
            batch = changed[start : start + MAX_USES_REPORTED]
            self.requests += 1
            response = await self.http.post(
                f"{self.registry}/v1/api-key-uses",
                json={
                    "service": self.service,
                    "uses": [
                        {"key_id": k, "last_used_at": at.astimezone(UTC).isoformat()}
                        for k, at in batch
                    ],
                },
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=10,
            )
            response.raise_for_status()
            self.reported.update(batch)
        return len(changed)

    async def run(self, stop: asyncio.Event) -> None:
        if self.service == "registry":
            return  # its own API processes write its rows
        if not self.configured:
            log.info(
                "keys' last uses are not reported to the registry (no registry in"
                " UPSTREAM_FEEDS, or no FEED_API_KEY)"
            )
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)
            if stop.is_set():
                return
            try:
                await self.report()
            except (httpx.HTTPError, asyncpg.PostgresError, *dbmod.CONNECTION_LOST) as exc:
                log.warning("could not report keys' last uses to the registry: %r", exc)


class Worker:
    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        schema: Sequence[str],
        handlers: Mapping[str, Mapping[str, Handler]],
        contracts: Mapping[str, Path] | None = None,
        webhook_access: webhooks.Access | None = None,
        retention_due: str | None = None,
    ) -> None:
        """`retention_due`: the service's query of the subjects whose retention ran out
        (privacy_subjects.erase_expired). `contracts`: each upstream's folder of published
        JSON Schemas, which its events must follow to be applied. `webhook_access`: the
        service's read policy for its own events, which decides what each webhook subscriber
        receives (shared/webhooks.py)."""
        self.service = service
        self.settings = settings
        self.schema = schema
        self.metrics = Metrics(service)
        self.db = dbmod.Database(settings.database_url, max_size=5)
        self.stopping: asyncio.Event | None = None
        self.relay = Relay(
            service=service,
            settings=settings,
            db=self.db,
            metrics=self.metrics,
            signer=signer_for(settings),
        )
        self.retention_due = retention_due
        self.relay.on_sealed = self.webhooks_wake
        self.http = httpx.AsyncClient()
        self.webhooks = webhook_dispatch.Dispatcher(
            service=service, settings=settings, db=self.db, access=webhook_access
        )
        self.key_uses = KeyUseReporter(
            service=service, settings=settings, db=self.db, http=self.http
        )
        self.consumers = (
            WatchedConsumers(
                service=service,
                settings=settings,
                db=self.db,
                metrics=self.metrics,
                handlers=handlers,
                http=self.http,
                after_commit=self.relay.wake,
                contracts=contracts,
            )
            if handlers
            else None
        )

    async def run(self, stop: asyncio.Event) -> None:
        self.stopping = stop
        await dbmod.ensure_database(self.settings.database_url)
        await self.db.open()
        try:
            async with self.db.connection() as conn:
                await dbmod.migrate(conn, self.service, dbmod.schema_text("shared"), *self.schema)
            await kafka.wait_for_broker(self.settings)
            own = self.settings.topic(self.service)
            dlqs = [f"{t}.dlq" for t in (self.consumers.topics if self.consumers else [])]
            await kafka.ensure_topics(self.settings, [own, *dlqs])
            tasks = [
                asyncio.create_task(self.relay.run(stop), name="relay"),
                asyncio.create_task(self.webhooks.run(stop), name="webhooks"),
            ]
            tasks.append(asyncio.create_task(self._retention(stop), name="retention"))
            tasks.append(asyncio.create_task(self.key_uses.run(stop), name="key-uses"))
            if self.consumers is not None:
                tasks.append(asyncio.create_task(self.consumers.run(stop), name="consumers"))
            health = await serve_http("0.0.0.0", self.settings.worker_health_port, self._route)
            runtime.tune_gc(self.settings.gc_gen0_threshold)
            log.info("worker of %s running", self.service)
            try:
                await asyncio.gather(*tasks)
            finally:
                health.close()
        finally:
            await self.http.aclose()
            await self.db.close()

    def webhooks_wake(self) -> None:
        self.webhooks.wake()

    async def _retention(self, stop: asyncio.Event) -> None:
        """Erase the people whose retention period ran out, and drop the stored answers of
        idempotent writes older than IDEMPOTENCY_KEEP_HOURS (they may show people; a retry
        that late is a new request), now and every `retention_interval` seconds (a failed
        round is logged and tried again next time)."""
        period = timedelta(days=self.settings.personal_data_retention_days)
        keep = timedelta(hours=self.settings.idempotency_keep_hours)
        due = self.retention_due
        while not stop.is_set():
            try:
                async with self.db.connection() as conn:
                    await conn.execute(
                        "DELETE FROM idempotency_keys WHERE created_at < $1",
                        datetime.now(UTC) - keep,
                    )
                while due is not None:
                    async with self.db.transaction() as conn:
                        erased = await privacy_subjects.erase_expired(
                            conn,
                            due_sql=due,
                            retention=period,
                            now=datetime.now(UTC),
                            metadata=Metadata(actor=f"{self.service}-worker:retention"),
                        )
                    if erased:
                        log.info("retention: %d people erased", len(erased))
                        self.relay.wake()
                    if len(erased) < privacy_subjects.RETENTION_BATCH:
                        break
            except (asyncpg.PostgresError, *dbmod.CONNECTION_LOST) as exc:
                if stop.is_set():
                    return  # the pool closes as the worker stops
                log.warning("retention round failed, tried again later: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.retention_interval)

    async def health(self, *, readiness: bool) -> tuple[int, dict[str, Any]]:
        """Liveness (`readiness=False`): 200 until the worker is stopping. Readiness: 503 with
        its reasons unless the database answers, the sealer is not blocked and the consumer
        loop is not stuck restarting. Both name the sealer's state (position, event id and
        reason of the event it cannot seal)."""
        sealing = self.relay.sealing.as_dict()
        stopping = self.stopping is not None and self.stopping.is_set()
        status: dict[str, Any] = {
            "status": "stopping" if stopping else "alive",
            "service": self.service,
            "relay_leader": self.relay.is_leader,
            "sealer": sealing,
        }
        if not readiness:
            return (503 if stopping else 200), status
        reasons = ["the worker is stopping"] if stopping else []
        database = await self._database_answers()
        if database is not None:
            reasons.append(database)
        if sealing["blocked"]:
            reasons.append(f"the sealer is blocked at position {sealing.get('position')}")
        stuck = self.consumers.stuck() if self.consumers is not None else None
        if stuck is not None:
            reasons.append(stuck)
        status["status"] = "not ready" if reasons else "ready"
        status["checks"] = {
            "database": database is None,
            "sealer": not sealing["blocked"],
            "consumers": stuck is None,
        }
        status["reasons"] = reasons
        return (503 if reasons else 200), status

    async def _database_answers(self) -> str | None:
        """None when the database answers `SELECT 1` in time, else why not."""
        try:
            async with asyncio.timeout(DATABASE_CHECK_TIMEOUT_S):
                async with self.db.connection() as conn:
                    await conn.fetchval("SELECT 1")
        except TimeoutError:
            return f"the database did not answer within {DATABASE_CHECK_TIMEOUT_S:g} s"
        except Exception as exc:
            return f"the database is not reachable: {exc!r}"[:300]
        return None

    async def _route(self, path: str, headers: dict[str, str]) -> Answer:
        if path == "/metrics":
            return metrics_answer(self.metrics, self.settings.metrics_token, headers)
        if path in ("/", "/healthz", "/readyz"):
            code, status = await self.health(readiness=path == "/readyz")
            return code, "application/json", json.dumps(status).encode(), {}
        return not_found(path)


class Parts(TypedDict, total=False):
    """What a service's worker is made of besides its name and settings (Worker's arguments)."""

    schema: Required[Sequence[str]]
    handlers: Required[Mapping[str, Mapping[str, Handler]]]
    contracts: Mapping[str, Path] | None
    webhook_access: webhooks.Access | None
    retention_due: str | None


def main(*, service: str, **parts: Unpack[Parts]) -> None:
    settings = Settings()
    logs.configure(f"{service}-worker", settings.log_level)
    worker = Worker(service=service, settings=settings, **parts)

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await worker.run(stop)

    asyncio.run(_run())
