"""A row the chain cannot seal, written by an older version (before the database refused such
rows): the worker stays up and says what is wrong, the API goes on serving, and once the row is
dealt with the sealer carries on by itself.

Real registry API and worker (relay and health endpoint) on real PostgreSQL and a real broker.
The bad row is inserted straight into the events table with the CHECK constraint dropped, as an
older schema had none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from services.registry.app import create_app
from shared import db as dbmod
from shared.auth import Role
from shared.event_store import PostgresEventStore
from shared.infra import free_port
from shared.settings import Settings
from shared.testing import fresh_database, issue_key
from shared.worker import Worker
from tests.conftest import settings_for
from tests.shared.kafka_helpers import read_topic

REGISTRY = dbmod.schema_text("services.registry")

# occurred_at, data, metadata of rows an older version could write, and what the report says
BAD_ROWS = {
    # asyncpg wrote 0001-01-01T00:00:00+00:00 as -infinity and reads it as a naive datetime
    "minus-infinity": ("-infinity", "{}", "{}", "not an instant"),
    # a year before 1 AD: asyncpg cannot even read the row
    "before-year-1": ("0001-01-01 00:00:00+00 BC", "{}", "{}", "OverflowError"),
    # RFC 8785's spelling of the float 1e20, read back as an integer with no canonical form
    "huge-number": ("2022-03-01 09:00:00+00", '{"n":100000000000000000000}', "{}", "safe integer"),
    "metadata-not-an-object": ("2022-03-01 09:00:00+00", "{}", "[]", "AttributeError"),
}


def kharkiv(slug: str) -> dict[str, Any]:
    return {
        "organisation_id": slug,
        "name": slug.title(),
        "kind": "municipality",
        "country": "UA",
    }


@dataclass
class Stack:
    url: str
    settings: Settings
    api: httpx.AsyncClient
    admin: dict[str, str]
    health: httpx.AsyncClient
    worker: Worker

    async def register(self, slug: str) -> None:
        answer = await self.api.post("/v1/organisations", json=kharkiv(slug), headers=self.admin)
        assert answer.status_code == 201, answer.text

    async def worker_says(self, path: str = "/") -> tuple[int, dict[str, Any]]:
        answer = await self.health.get(path)
        return answer.status_code, answer.json()

    async def metrics(self) -> str:
        return (await self.health.get("/metrics")).text


@pytest.fixture
async def stack(pg_server: str, kafka_bootstrap: str) -> AsyncIterator[Stack]:
    async with fresh_database(pg_server, REGISTRY) as url:
        settings = settings_for(
            url,
            kafka_bootstrap,
            kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
            worker_health_port=free_port(),
            checkpoint_interval=0,
            rate_limit_per_second=0,
        )
        app = create_app(settings)
        worker = Worker(service="registry", settings=settings, schema=[REGISTRY], handlers={})
        async with app.router.lifespan_context(app):
            token = await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
            transport = httpx.ASGITransport(app=app)
            health_url = f"http://127.0.0.1:{settings.worker_health_port}"
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://t") as api,
                httpx.AsyncClient(base_url=health_url, timeout=5) as health,
            ):
                yield Stack(
                    url, settings, api, {"Authorization": f"Bearer {token}"}, health, worker
                )


async def write_old_row(url: str, *, occurred_at: str, data: str, metadata: str) -> str:
    """What an older version could write: the same columns, no CHECK constraint."""
    event_id = str(uuid.uuid4())
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ALTER TABLE events DROP CONSTRAINT events_sealable_v1")
        await conn.execute(
            "INSERT INTO events (event_id, stream_type, stream_id, stream_version, event_type,"
            " schema_version, occurred_at, recorded_at, data, metadata)"
            " VALUES ($1, 'organisation', 'organisation-old', 1, 'registry.organisation-noted', 1,"
            " $2::text::timestamptz, now(), $3::text::json, $4::text::json)",
            uuid.UUID(event_id),
            occurred_at,
            data,
            metadata,
        )
        # the new version starts on that database: its schema applies (the constraint comes
        # back NOT VALID, the old row stays) and the start goes on
        await conn.execute("DELETE FROM twinaid_schema_applied")
        await dbmod.apply_schema(conn, dbmod.schema_text("shared"), REGISTRY)
        assert await conn.fetchval(
            "SELECT NOT convalidated FROM pg_constraint WHERE conname = 'events_sealable_v1'"
        )
    finally:
        await conn.close()
    return event_id


async def eventually(check: Callable[[], Any], timeout: float = 30) -> Any:
    """Poll `check` (a coroutine function) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("bad", BAD_ROWS.values(), ids=BAD_ROWS.keys())
async def test_a_row_the_chain_cannot_seal_is_reported_while_everything_stays_up(
    stack: Stack, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture, bad: tuple[str, ...]
) -> None:
    occurred_at, data, metadata, reason = bad
    caplog.set_level(logging.WARNING, logger="twinaid.sealer")
    await stack.register("kharkiv")  # position 1
    bad_id = await write_old_row(stack.url, occurred_at=occurred_at, data=data, metadata=metadata)
    await stack.register("lviv")  # committed after the bad row: waits behind it
    stop = asyncio.Event()
    running = asyncio.create_task(stack.worker.run(stop))
    try:

        async def blocked_twice() -> dict[str, Any] | None:
            if running.done():
                running.result()  # the worker must not exit: re-raise what stopped it
            try:
                _, said = await stack.worker_says("/readyz")
            except httpx.TransportError:
                return None  # not listening yet
            sealer: dict[str, Any] = said["sealer"]
            return sealer if sealer["blocked"] and sealer["attempts"] >= 2 else None

        sealer = await eventually(blocked_twice)
        # readiness names the event, its position and why; liveness stays 200
        status, ready = await stack.worker_says("/readyz")
        assert status == 503 and ready["status"] == "not ready"
        assert sealer["position"] == 2 and sealer["event_id"] == bad_id
        assert reason in sealer["reason"]
        status, alive = await stack.worker_says("/")
        assert status == 200 and alive["status"] == "alive"
        assert alive["sealer"]["event_id"] == bad_id
        metrics = await stack.metrics()
        assert 'twinaid_sealer_blocked_position{service="registry"} 2.0' in metrics
        blocked = [m for m in metrics.splitlines() if m.startswith("twinaid_sealer_blocked{")]
        assert len(blocked) == 1 and f'event_id="{bad_id}"' in blocked[0]
        assert 'position="2"' in blocked[0] and blocked[0].endswith(" 1.0")
        logged = [r.getMessage() for r in caplog.records if r.name == "twinaid.sealer"]
        assert any("cannot seal the event at position 2" in m and bad_id in m for m in logged)

        # what came before it was sealed and published; nothing after it was
        topic = stack.settings.topic("registry")
        published = await read_topic(kafka_bootstrap, topic, expect=1)
        assert [json.loads(r.value)["organisation_id"] for r in published] == ["kharkiv"]

        # the API goes on serving: reads, writes, readiness
        await stack.register("odesa")
        listed = await stack.api.get("/v1/organisations", headers=stack.admin)
        assert listed.status_code == 200
        assert {o["organisation_id"] for o in listed.json()["items"]} >= {"lviv", "odesa"}
        assert (await stack.api.get("/readyz")).status_code == 200
        assert not running.done()

        # an operator deals with the row; the sealer carries on by itself at its next attempt
        await repair(stack.url, bad_id)

        async def ready_again() -> bool:
            status, said = await stack.worker_says("/readyz")
            return status == 200 and said["sealer"] == {"blocked": False}

        await eventually(ready_again)
        published = await read_topic(kafka_bootstrap, topic, expect=4)
        assert len({dict(r.headers)["ce_id"] for r in published}) == 4  # each event once
        assert 'twinaid_sealer_blocked_position{service="registry"} 0.0' in await stack.metrics()
        assert "twinaid_sealer_blocked{" not in await stack.metrics()
        conn = await asyncpg.connect(stack.url)
        try:
            verdict = await PostgresEventStore(conn).verify()
        finally:
            await conn.close()
        assert verdict.intact and verdict.head_position == 4
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


async def repair(url: str, event_id: str) -> None:
    """As a superuser would: the log is append-only, so the trigger is switched off for it."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            await conn.execute(
                "UPDATE events SET occurred_at = recorded_at, data = '{}', metadata = '{}'"
                " WHERE event_id = $1",
                uuid.UUID(event_id),
            )
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    finally:
        await conn.close()
