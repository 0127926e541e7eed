"""A service's worker process: its relay, its consumers, a tiny health and metrics endpoint.

`GET /` (or any path) answers 200 while the process runs, `GET /readyz` 503 while the sealer is
blocked by an event the chain cannot seal (both name it: position, event id, reason), and
`GET /metrics` the Prometheus metrics. A blocked sealer never stops the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import db as dbmod
from shared import kafka, logs, runtime
from shared.consumer import ConsumerRunner, Handler
from shared.metrics import Metrics
from shared.outbox import Relay, signer_for
from shared.settings import Settings

log = logging.getLogger("twinaid.worker")


class Worker:
    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        schema: Sequence[str],
        handlers: Mapping[str, Mapping[str, Handler]],
        contracts: Mapping[str, Path] | None = None,
    ) -> None:
        """`contracts`: each upstream's folder of published JSON Schemas, which its events
        must follow to be applied."""
        self.service = service
        self.settings = settings
        self.schema = schema
        self.metrics = Metrics(service)
        self.db = dbmod.Database(settings.database_url, max_size=5)
        self.relay = Relay(
            service=service,
            settings=settings,
            db=self.db,
            metrics=self.metrics,
            signer=signer_for(settings),
        )
        self.http = httpx.AsyncClient()
        self.consumers = (
            ConsumerRunner(
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
        await dbmod.ensure_database(self.settings.database_url)
        await self.db.open()
        try:
            async with self.db.connection() as conn:
                await dbmod.migrate(conn, self.service, dbmod.schema_text("shared"), *self.schema)
            await kafka.wait_for_broker(self.settings)
            own = self.settings.topic(self.service)
            dlqs = [f"{t}.dlq" for t in (self.consumers.topics if self.consumers else [])]
            await kafka.ensure_topics(self.settings, [own, *dlqs])
            tasks = [asyncio.create_task(self.relay.run(stop), name="relay")]
            if self.consumers is not None:
                tasks.append(asyncio.create_task(self.consumers.run(stop), name="consumers"))
            health = await asyncio.start_server(
                self._health, "0.0.0.0", self.settings.worker_health_port
            )
            runtime.tune_gc(self.settings.gc_gen0_threshold)
            log.info("worker of %s running", self.service)
            try:
                await asyncio.gather(*tasks)
            finally:
                health.close()
        finally:
            await self.http.aclose()
            await self.db.close()

    def health(self, *, readiness: bool) -> tuple[int, dict[str, Any]]:
        """Alive (200) as long as the process runs; `/readyz` is 503 while the sealer is
        blocked by an event it cannot seal. Both name that event and why."""
        sealing = self.relay.sealing.as_dict()
        ready = not sealing["blocked"]
        status = {
            "status": ("ready" if ready else "not ready") if readiness else "alive",
            "service": self.service,
            "relay_leader": self.relay.is_leader,
            "sealer": sealing,
        }
        return (200 if ready or not readiness else 503), status

    async def _health(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            request_line = await asyncio.wait_for(reader.readline(), 2)
            code = 200
            if b" /metrics" in request_line:
                body, kind = generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST
            else:
                code, status = self.health(readiness=b" /readyz" in request_line)
                body, kind = json.dumps(status).encode(), "application/json"
            reason = b"OK" if code == 200 else b"Service Unavailable"
            writer.write(
                b"HTTP/1.1 %d %s\r\nContent-Type: " % (code, reason) + kind.encode() + b"\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()
        writer.close()


def main(
    *,
    service: str,
    schema: Sequence[str],
    handlers: Mapping[str, Mapping[str, Handler]],
    contracts: Mapping[str, Path] | None = None,
) -> None:
    settings = Settings()
    logs.configure(f"{service}-worker", settings.log_level)
    worker = Worker(
        service=service,
        settings=settings,
        schema=schema,
        handlers=handlers,
        contracts=contracts,
    )

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await worker.run(stop)

    asyncio.run(_run())
