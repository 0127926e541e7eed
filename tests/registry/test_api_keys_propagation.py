"""A key an organisation manages at the registry works in all three services (issue 21 point 4):
the registry's key events go through its signed relay and the real broker to the consumers of
pledges and shipments, which keep their own api_keys. Lille's org_admin issues a key, uses it on
pledges and shipments once they applied the event, rotates it (the old secret refused
everywhere), lets one expire (401 key-expired there too) and revokes it; the list shows labels
and last use; the registry's chain verifies intact and nothing is quarantined."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.audit import copies, sources
from services.pledges import subscriptions as pledges_subscriptions
from services.pledges.app import create_app as pledges_app
from services.registry.app import create_app as registry_app
from services.shipments import subscriptions as shipments_subscriptions
from services.shipments.app import create_app as shipments_app
from shared import db as dbmod
from shared import directory, kafka
from shared.auth import Role, parse_token
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.deps import ServiceContext
from shared.metrics import Metrics
from shared.outbox import Relay
from shared.testing import fresh_database, issue_key, seal_everything
from tests.conftest import SESSION_SIGNER, settings_for
from tests.registry.conftest import KHARKIV, LILLE

CONSUMERS = ("pledges", "shipments")
# a route of each consumer any key of an organisation may read
READ = {"pledges": "/v1/pledges", "shipments": "/v1/convoys"}
PROPAGATION_S = 30.0
# plain SQL the registry tests run on both PostgreSQL versions; this is about the relay and broker
pytestmark = pytest.mark.once


@dataclass
class Stack:
    clients: dict[str, httpx.AsyncClient]  # registry, pledges, shipments
    apps: dict[str, FastAPI]
    urls: dict[str, str]
    admin: dict[str, str]  # a registry administrator's header
    propagations: list[float]

    async def status(self, service: str, token: str) -> int:
        path = READ.get(service, "/v1/organisations")
        response = await self.clients[service].get(
            path, headers={"Authorization": f"Bearer {token}"}
        )
        return response.status_code

    async def everywhere(self, token: str, status: int) -> None:
        """Wait until pledges and shipments answer `token` with `status` (the registry's own
        answer is checked at once by the tests); the time it took is kept."""
        started = time.monotonic()
        for service in CONSUMERS:
            await until(lambda s=service: self.status(s, token), status)  # type: ignore[misc]
        self.propagations.append(time.monotonic() - started)

    async def fetch(self, service: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.urls[service])
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()


async def until(probe: Callable[[], Awaitable[int]], wanted: int) -> None:
    deadline = time.monotonic() + PROPAGATION_S
    while (got := await probe()) != wanted:
        assert time.monotonic() < deadline, f"still {got}, not {wanted}, after {PROPAGATION_S} s"
        await asyncio.sleep(0.05)


@pytest.fixture
async def stack(pg_server: str, kafka_bootstrap: str) -> AsyncIterator[Stack]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    consumer_schema = (directory.SCHEMA,)
    async with (
        fresh_database(pg_server, dbmod.schema_text("services.registry")) as reg_url,
        fresh_database(
            pg_server, *consumer_schema, dbmod.schema_text("services.pledges")
        ) as pl_url,
        fresh_database(
            pg_server, *consumer_schema, dbmod.schema_text("services.shipments")
        ) as sh_url,
        contextlib.AsyncExitStack() as stack,
    ):
        urls = {"registry": reg_url, "pledges": pl_url, "shipments": sh_url}
        settings = {
            s: settings_for(u, kafka_bootstrap, kafka_topic_prefix=prefix, checkpoint_interval=0)
            for s, u in urls.items()
        }
        topics = [settings["registry"].topic(s) for s in urls]
        await kafka.ensure_topics(settings["registry"], [*topics, *(t + ".dlq" for t in topics)])
        apps = {
            "registry": registry_app(settings["registry"]),
            "pledges": pledges_app(settings["pledges"]),
            "shipments": shipments_app(settings["shipments"]),
        }
        clients: dict[str, httpx.AsyncClient] = {}
        for service, app in apps.items():
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients[service] = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                    base_url=f"http://{service}",
                )
            )
        databases = {s: Database(u, max_size=3) for s, u in urls.items()}
        for db in databases.values():
            await db.open()
            stack.push_async_callback(db.close)
        parts: list[Relay | ConsumerRunner] = [
            Relay(
                service="registry",
                settings=settings["registry"],
                db=databases["registry"],
                metrics=Metrics("registry"),
                signer=SESSION_SIGNER,
            )
        ]
        handlers = {"pledges": pledges_subscriptions, "shipments": shipments_subscriptions}
        for service in CONSUMERS:
            runner = ConsumerRunner(
                service=service,
                settings=settings[service],
                db=databases[service],
                metrics=Metrics(service),
                handlers={"registry": handlers[service].HANDLERS["registry"]},
                http=clients["registry"],
            )
            await runner.epoch.mark()
            parts.append(runner)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(p.run(stop)) for p in parts]
        admin = await issue_key(reg_url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
        try:
            yield Stack(clients, apps, urls, {"Authorization": f"Bearer {admin}"}, [])
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def compared(stack: Stack, service: str, auditor: str) -> list[dict[str, Any]]:
    """`twinaid audit compare` of `service`'s copies of registry facts, from the registry's
    verified feed."""
    pins = {"registry": [SESSION_SIGNER.public_key]}

    async def nothing() -> AsyncIterator[Any]:
        return
        yield  # an upstream this test runs no service of: an empty log

    def events_of(upstream: str) -> Any:
        if upstream != "registry":
            return nothing()
        return sources.from_feed(stack.clients["registry"], "http://registry", key=auditor)

    found = await copies.compare(
        service,
        live_url=stack.urls[service],
        scratch_server=stack.urls["registry"],
        events_of=events_of,
        pins=pins,
    )
    return [d for d in found.differences if d["table"] == "api_keys"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_key_lille_manages_works_in_every_service_until_rotated_expired_or_revoked(
    stack: Stack,
) -> None:
    registry = stack.clients["registry"]
    for organisation in (LILLE, KHARKIV):
        response = await registry.post("/v1/organisations", json=organisation, headers=stack.admin)
        assert response.status_code == 201, response.text
    made = await registry.post(
        "/v1/organisations/lille/api-keys",
        json={"roles": ["org_admin"], "label": "Lille IT desk"},
        headers=stack.admin,
    )
    assert made.status_code == 201, made.text
    admin = bearer(made.json()["token"])

    # issued by Lille's own administrator, used on pledges and shipments once they know it
    issued = await registry.post(
        "/v1/organisations/lille/api-keys",
        json={"roles": ["member", "logistics"], "label": "Lille pledge sync"},
        headers=admin,
    )
    assert issued.status_code == 201, issued.text
    key_id, token = issued.json()["key_id"], issued.json()["token"]
    assert await stack.status("registry", token) == 200  # at once
    await stack.everywhere(token, 200)
    for service in CONSUMERS:
        [row] = await stack.fetch(
            service,
            "SELECT organisation, roles, label, expires_at FROM api_keys WHERE key_id = $1",
            key_id,
        )
        assert (row["organisation"], sorted(row["roles"]), row["label"]) == (
            "lille",
            ["logistics", "member"],
            "Lille pledge sync",
        )
        assert row["expires_at"] == datetime.fromisoformat(issued.json()["expires_at"])

    # the uses are recorded where they happened (pledges' own row, written off the path)
    pledges_auth = stack.apps["pledges"].state.ctx.auth
    await pledges_auth.drain()
    [used] = await stack.fetch(
        "pledges", "SELECT last_used_at FROM api_keys WHERE key_id = $1", key_id
    )
    assert used["last_used_at"] is not None

    # rotated: the new secret works everywhere, the old one nowhere
    rotated = await registry.post(
        f"/v1/organisations/lille/api-keys/{key_id}/rotate", headers=admin
    )
    assert rotated.status_code == 200, rotated.text
    new_token = rotated.json()["token"]
    assert await stack.status("registry", token) == 401
    await stack.everywhere(new_token, 200)
    for service in CONSUMERS:
        assert await stack.status(service, token) == 401, service

    # Lille's admin cannot reach Kharkiv's keys, in any service's copy either
    kharkiv = await registry.post(
        "/v1/organisations/kharkiv/api-keys",
        json={"roles": ["member"], "label": "Kharkiv needs desk"},
        headers=stack.admin,
    )
    kharkiv_id = kharkiv.json()["key_id"]
    refused = await registry.post(
        f"/v1/organisations/kharkiv/api-keys/{kharkiv_id}/revoke", headers=admin
    )
    assert refused.status_code == 403
    assert (
        await registry.post(f"/v1/organisations/lille/api-keys/{kharkiv_id}/revoke", headers=admin)
    ).status_code == 404
    await stack.everywhere(kharkiv.json()["token"], 200)

    # an expiring key: refused with 401 key-expired in pledges and shipments too, once it expired
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    expiring = await registry.post(
        "/v1/organisations/lille/api-keys",
        json={"roles": ["member"], "label": "an hour", "expires_at": soon},
        headers=admin,
    )
    short = expiring.json()["token"]
    await stack.everywhere(short, 200)
    later = datetime.now(UTC) + timedelta(hours=2)
    for service in ("registry", *CONSUMERS):
        ctx: ServiceContext = stack.apps[service].state.ctx
        assert ctx.auth is not None
        ctx.auth.clock = lambda: later
        answer = await stack.clients[service].get(
            READ.get(service, "/v1/organisations"), headers=bearer(short)
        )
        assert answer.status_code == 401, service
        assert answer.json()["type"].endswith("/key-expired"), answer.text
        ctx.auth.clock = lambda: datetime.now(UTC)

    # revoked: refused everywhere, with the reason
    revoked = await registry.post(
        f"/v1/organisations/lille/api-keys/{key_id}/revoke",
        json={"reason": "the ERP is retired"},
        headers=admin,
    )
    assert revoked.status_code == 200, revoked.text
    assert await stack.status("registry", new_token) == 401
    await stack.everywhere(new_token, 401)
    detail = (await stack.clients["pledges"].get("/v1/pledges", headers=bearer(new_token))).json()
    assert "was revoked" in detail["detail"]

    # the list: labels, last use, no secret
    await stack.apps["registry"].state.ctx.auth.drain()
    listed = await registry.get(
        "/v1/organisations/lille/api-keys", params={"include_revoked": "true"}, headers=admin
    )
    keys = {k["label"]: k for k in listed.json()["items"]}
    assert set(keys) == {"Lille IT desk", "Lille pledge sync", "an hour"}
    assert keys["Lille pledge sync"]["status"] == "revoked"
    assert keys["Lille pledge sync"]["last_used_at"] is not None
    assert keys["Lille IT desk"]["last_used_at"] is not None
    assert "token" not in listed.text

    # the registry's log holds each change, chain intact; nothing was quarantined downstream
    [count] = await stack.fetch(
        "registry",
        "SELECT count(*) AS n FROM events WHERE event_type LIKE 'registry.api-key-%'",
    )
    assert count["n"] == 6  # 4 issued, 1 rotated, 1 revoked
    conn = await asyncpg.connect(stack.urls["registry"])
    try:
        await seal_everything(conn)
    finally:
        await conn.close()
    auditor = await issue_key(stack.urls["registry"], organisation="audit", roles=[Role.AUDITOR])
    verdict = (await registry.get("/v1/audit/verify", headers=bearer(auditor))).json()
    assert verdict["intact"], verdict
    for service in CONSUMERS:
        assert await stack.fetch(service, "SELECT reason FROM quarantine") == []
        assert await stack.fetch(service, "SELECT reason FROM dead_letters") == []
    assert parse_token(new_token)[0] == key_id

    # audit compare rebuilds each consumer's copy of the logged keys from the registry's log:
    # clean now; a revoked key re-enabled behind pledges' back is named (an operator's key,
    # issued straight into the database and in no log, is not a difference)
    assert await compared(stack, "pledges", auditor) == []
    assert await compared(stack, "shipments", auditor) == []
    conn = await asyncpg.connect(stack.urls["pledges"])
    try:
        await conn.execute("UPDATE api_keys SET revoked_at = NULL WHERE key_id = $1", key_id)
    finally:
        await conn.close()
    [found] = await compared(stack, "pledges", auditor)
    assert (found["table"], found["key"], found["column"], found["live"]) == (
        "api_keys",
        {"key_id": key_id},
        "revoked_at",
        None,
    )
    print(
        f"\npropagation to pledges and shipments (s): {[round(p, 2) for p in stack.propagations]}"
    )
