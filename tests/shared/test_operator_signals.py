"""What operators see of a process: JSON log lines with correlation ids (uvicorn's included),
/metrics with the standard process and platform series, behind a token or on a port of its own,
and a worker's liveness apart from its readiness.

Real processes (uvicorn started as the dev stack starts it, a worker as `python -m`), real
PostgreSQL (reached through a TCP relay the test can cut) and a real broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from pydantic import SecretStr

from services.registry.app import create_app
from shared import db as dbmod
from shared import kafka
from shared.infra import free_port
from shared.testing import fresh_database
from shared.worker import STUCK_AFTER_FAILURES, Worker
from tests.conftest import settings_for
from tests.e2e.processes import Proc

REGISTRY = dbmod.schema_text("services.registry")
FIELDS = {"time", "level", "service", "logger", "message", "correlation_id"}
STANDARD_SERIES = (
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "python_info",
    "python_gc_objects_collected_total",
)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert asyncio.get_running_loop().time() < deadline, "the condition never held"
        await asyncio.sleep(0.1)


async def answers(url: str, status: int = 200) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(url)).status_code == status
    except httpx.HTTPError:
        return False


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of a process's output, each of which must be one JSON object."""
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines, "the process logged nothing"
    parsed = []
    for line in lines:
        entry = json.loads(line)  # a plain-text line fails here
        assert isinstance(entry, dict) and FIELDS <= entry.keys(), line
        parsed.append(entry)
    return parsed


def stopped(proc: Proc) -> None:
    assert proc.popen is not None
    proc.popen.send_signal(signal.SIGTERM)
    proc.popen.wait(20)


def env(**values: str) -> dict[str, str]:
    return {**os.environ, "LOG_LEVEL": "INFO", "KAFKA_IDEMPOTENCE": "false", **values}


async def test_api_process_logs_json_lines_with_the_requests_correlation_ids(
    pg_server: str, tmp_path: Path
) -> None:
    async with fresh_database(pg_server, REGISTRY) as url:
        port = free_port()
        # the command line of the dev stack (shared/devstack.py) and docker-compose.yml
        argv = [sys.executable, "-m", "uvicorn", "--factory", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "services.registry.app:create_app"]
        api = Proc("registry-api", argv, env(DATABASE_URL=url), tmp_path / "api.log").start()
        base = f"http://127.0.0.1:{port}"
        try:
            await eventually(lambda: answers(f"{base}/healthz"))
            async with httpx.AsyncClient(base_url=base) as http:
                alive = await http.get("/healthz", headers={"X-Correlation-ID": "ops-trace-1"})
                missing = await http.get("/v1/nothing", headers={"X-Correlation-ID": "ops-2"})
                minted = await http.get("/healthz")
        finally:
            stopped(api)
    assert (alive.status_code, missing.status_code) == (200, 404)
    entries = json_lines(tmp_path / "api.log")
    access = [e for e in entries if e["logger"] == "twinaid.access"]
    by_id = {e["correlation_id"]: e for e in access}
    assert by_id["ops-trace-1"]["method"] == "GET"
    assert by_id["ops-trace-1"]["path"] == "/healthz"
    assert by_id["ops-trace-1"]["status"] == 200
    assert by_id["ops-trace-1"]["client"].startswith("127.0.0.1:")
    assert by_id["ops-trace-1"]["duration_ms"] >= 0
    assert by_id["ops-trace-1"]["service"] == "registry"
    assert (by_id["ops-2"]["path"], by_id["ops-2"]["status"]) == ("/v1/nothing", 404)
    # a request without an id gets one: the same in its answer and in its access line
    assert by_id[minted.headers["x-correlation-id"]]["path"] == "/healthz"
    # uvicorn's own messages are JSON lines too, and its plain access log is off
    uvicorn = [e["message"] for e in entries if e["logger"].startswith("uvicorn")]
    assert any(m.startswith("Started server process") for m in uvicorn)
    assert any("Application startup complete" in m for m in uvicorn)
    assert not [e for e in entries if e["logger"] == "uvicorn.access"]


async def test_worker_process_logs_json_and_answers_probes(
    pg_server: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    async with fresh_database(pg_server, REGISTRY) as url:
        port = free_port()
        values = env(
            DATABASE_URL=url,
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            KAFKA_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:8]}.",
            WORKER_HEALTH_PORT=str(port),
            METRICS_TOKEN="scrape-me",
        )
        argv = [sys.executable, "-m", "services.registry.worker"]
        worker = Proc("registry-worker", argv, values, tmp_path / "worker.log").start()
        base = f"http://127.0.0.1:{port}"
        try:
            # the bare URL answers as /healthz: what the dev stack waits for
            await eventually(lambda: answers(base))
            async with httpx.AsyncClient(base_url=base, timeout=5) as http:
                bare, alive = await http.get("/"), await http.get("/healthz")
                ready = await eventually(lambda: _ready(http))
                unauthorised = await http.get("/metrics")
                scraped = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
                elsewhere = await http.get("/anything")
        finally:
            stopped(worker)
    assert bare.json()["status"] == alive.json()["status"] == "alive"
    assert alive.json()["service"] == "registry"
    assert ready["checks"] == {"database": True, "sealer": True, "consumers": True}
    assert ready["reasons"] == [] and ready["sealer"] == {"blocked": False}
    assert unauthorised.status_code == 401
    assert unauthorised.headers["content-type"] == "application/problem+json"
    assert unauthorised.json()["status"] == 401
    assert scraped.status_code == 200
    for series in STANDARD_SERIES:
        assert f"\n{series}" in scraped.text, series
    assert elsewhere.status_code == 404
    entries = json_lines(tmp_path / "worker.log")
    running = [e for e in entries if e["message"] == "worker of registry running"]
    assert running and running[0]["service"] == "registry-worker"
    assert running[0]["logger"] == "twinaid.worker" and running[0]["level"] == "INFO"


async def _ready(http: httpx.AsyncClient) -> dict[str, Any] | None:
    return await _readyz(http, 200)


async def _unready(http: httpx.AsyncClient) -> dict[str, Any] | None:
    return await _readyz(http, 503)


async def _readyz(http: httpx.AsyncClient, status: int) -> dict[str, Any] | None:
    """/readyz's answer when it has `status`; None otherwise or while nothing listens yet."""
    try:
        answer = await http.get("/readyz")
    except httpx.ConnectError:
        return None
    return answer.json() if answer.status_code == status else None


async def test_api_metrics_need_the_token_when_one_is_set(db_url: str) -> None:
    settings = settings_for(db_url, metrics_token=SecretStr("s3cret"))
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        without = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer s3cre"})
        basic = await http.get("/metrics", headers={"Authorization": "Basic s3cret"})
        right = await http.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    for refused in (without, wrong, basic):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "s3cret" not in refused.text
    assert right.status_code == 200
    for series in STANDARD_SERIES:
        assert f"\n{series}" in right.text, series
    assert 'python_info{implementation="CPython"' in right.text


async def test_api_serves_metrics_on_its_own_port(pg_server: str) -> None:
    async with fresh_database(pg_server, REGISTRY) as url:
        port = free_port()
        settings = settings_for(url, metrics_port=port, metrics_token=SecretStr("s3cret"))
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as public,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as own,
        ):
            on_public = await public.get("/metrics", headers={"Authorization": "Bearer s3cret"})
            await public.get("/healthz")  # counted, and seen on the metrics port
            without = await own.get("/metrics")
            scraped = await own.get("/metrics", headers={"Authorization": "Bearer s3cret"})
            elsewhere = await own.get("/healthz")
    assert on_public.status_code == 404
    assert on_public.headers["content-type"] == "application/problem+json"
    assert without.status_code == 401
    assert scraped.status_code == 200
    for series in STANDARD_SERIES:
        assert f"\n{series}" in scraped.text, series
    assert 'twinaid_http_requests_total{method="GET",route="/healthz",status="200"}' in (
        scraped.text
    )
    assert elsewhere.status_code == 404


class Relay:
    """A TCP relay to PostgreSQL that the test can cut (connections dropped, new ones refused)
    and restore on the same port: the database unreachable and back, as the worker sees it."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 5432
        # the embedded server is reached on its Unix socket (`?host=<directory>`)
        socket_dir = dict(parse_qsl(parts.query)).get("host", "")
        self.socket = f"{socket_dir}/.s.PGSQL.{self.port}" if socket_dir.startswith("/") else None
        self.listen = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    def url(self, database_url: str) -> str:
        """`database_url` through the relay: TCP to its port, whatever the server listens on."""
        parts = urlsplit(database_url)
        netloc = f"{parts.username}@127.0.0.1:{self.listen}"
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "host"])
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.listen)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.socket is not None:
            server_r, server_w = await asyncio.open_unix_connection(self.socket)
        else:
            server_r, server_w = await asyncio.open_connection(self.host, self.port)
        self.writers |= {client_w, server_w}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))


@pytest.fixture
async def relayed(pg_server: str) -> AsyncIterator[tuple[Relay, str]]:
    async with fresh_database(pg_server, REGISTRY) as url:
        relay = Relay(url)
        await relay.open()
        try:
            yield relay, relay.url(url)
        finally:
            if relay.server is not None and relay.server.is_serving():
                await relay.cut()


async def test_worker_not_ready_while_the_database_is_unreachable_yet_alive(
    relayed: tuple[Relay, str], kafka_bootstrap: str
) -> None:
    relay, url = relayed
    settings = settings_for(
        url,
        kafka_bootstrap,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        worker_health_port=free_port(),
        checkpoint_interval=0,
    )
    worker = Worker(service="registry", settings=settings, schema=[REGISTRY], handlers={})
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    base = f"http://127.0.0.1:{settings.worker_health_port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            ready = await eventually(lambda: _ready(http))
            assert ready["status"] == "ready" and ready["checks"]["database"] is True

            await relay.cut()
            unready = await eventually(lambda: _unready(http))
            assert unready["status"] == "not ready"
            assert unready["checks"] == {"database": False, "sealer": True, "consumers": True}
            assert any("database" in reason for reason in unready["reasons"])
            alive = await http.get("/healthz")
            assert alive.status_code == 200 and alive.json()["status"] == "alive"
            assert (await http.get("/")).status_code == 200

            await relay.open()
            again = await eventually(lambda: _ready(http))
            assert again["reasons"] == []
            assert not running.done()
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


async def test_worker_not_ready_while_its_consumer_loop_keeps_failing(
    relayed: tuple[Relay, str], kafka_bootstrap: str
) -> None:
    relay, url = relayed
    settings = settings_for(url, kafka_bootstrap, kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.")
    await kafka.ensure_topics(settings, [settings.topic("registry")])
    worker = Worker(
        service="pledges",
        settings=settings,
        schema=[],
        handlers={"registry": {}},
    )
    consumers = worker.consumers
    assert consumers is not None
    await worker.db.open()
    stop = asyncio.Event()
    await relay.cut()  # the loop's every start fails on the database (its key changes)
    loop = asyncio.create_task(consumers.run(stop))
    try:

        async def stuck() -> dict[str, Any] | None:
            code, status = await worker.health(readiness=True)
            return status if code == 503 and not status["checks"]["consumers"] else None

        said = await eventually(stuck)
        assert consumers.failures_in_a_row >= STUCK_AFTER_FAILURES
        assert any("consumer loop failed" in reason for reason in said["reasons"])
        assert (await worker.health(readiness=False))[0] == 200

        await relay.open()  # it starts, fetches from the broker: ready again

        async def ready() -> dict[str, Any] | None:
            code, status = await worker.health(readiness=True)
            return status if code == 200 else None

        back = await eventually(ready)
        assert back["checks"] == {"database": True, "sealer": True, "consumers": True}
        assert not loop.done()
    finally:
        stop.set()
        await asyncio.wait_for(loop, 30)
        await worker.http.aclose()
        await worker.db.close()
