"""The HTTP edge every service shares, exercised through the registry on real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.registry.app import create_app
from shared import db as dbmod
from shared.auth import Role, revoke
from shared.testing import fresh_database, issue_key
from tests.clock import ManualClock
from tests.conftest import settings_for

KHARKIV = {
    "organisation_id": "kharkiv",
    "name": "Kharkiv",
    "kind": "municipality",
    "country": "UA",
    "region": "Kharkiv Oblast",
    "aliases": ["Charkiw", "Kharkov"],
}


@dataclass
class Api:
    client: httpx.AsyncClient
    app: FastAPI
    url: str
    admin: str
    member: str

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def count_events(self) -> int:
        conn = await asyncpg.connect(self.url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM events"))
        finally:
            await conn.close()


@pytest.fixture
async def api(pg_server: str, kafka_bootstrap: str) -> AsyncIterator[Api]:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        app = create_app(settings_for(url, kafka_bootstrap))

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("secret internals")

        async with app.router.lifespan_context(app):
            admin = await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
            member = await issue_key(url, organisation="lille", roles=[Role.MEMBER])
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield Api(client, app, url, admin, member)


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status and body["title"] and body["type"] and body["detail"]
    return body


async def test_health_and_openapi_are_public_and_readiness_checks_the_database(
    api: Api,
) -> None:
    assert (await api.client.get("/healthz")).json()["status"] == "alive"
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True}
    assert "/v1/organisations" in (await api.client.get("/openapi.json")).json()["paths"]


async def test_an_api_stays_ready_without_the_broker_and_not_without_its_database(
    pg_server: str,
) -> None:
    """An API never talks to the broker (its worker relays what it writes): a broker outage
    must not take it out of service; its database must."""
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        app = create_app(settings_for(url, "127.0.0.1:1"))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                without_broker = await client.get("/readyz")
                await app.state.ctx.db.close()  # the database gone from under it
                without_database = await client.get("/readyz")
    assert without_broker.status_code == 200
    assert without_broker.json()["checks"] == {"database": True}
    assert without_database.status_code == 503
    assert without_database.json()["checks"] == {"database": False}


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Basic abc", "Bearer nonsense", "Bearer twa_0000_wrong"]
)
async def test_a_request_without_a_valid_key_is_401(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = await api.client.post("/v1/organisations", json=KHARKIV, headers=headers)
    assert_problem(response, 401)
    assert await api.count_events() == 0


async def test_a_revoked_key_is_refused(api: Api) -> None:
    conn = await asyncpg.connect(api.url)
    try:
        await revoke(conn, key_id=api.admin.split("_")[1])
    finally:
        await conn.close()
    response = await api.client.post("/v1/organisations", json=KHARKIV, headers=api.auth(api.admin))
    assert_problem(response, 401)


async def test_a_key_lacking_the_role_is_403_and_stores_nothing(api: Api) -> None:
    response = await api.client.post(
        "/v1/organisations", json=KHARKIV, headers=api.auth(api.member)
    )
    assert "registry_admin" in str(assert_problem(response, 403)["detail"])
    assert await api.count_events() == 0


async def test_registers_and_reads_back_with_the_correlation_id_in_the_event(api: Api) -> None:
    response = await api.client.post(
        "/v1/organisations",
        json=KHARKIV,
        headers={**api.auth(api.admin), "X-Correlation-ID": "convoy-42"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-correlation-id"] == "convoy-42"
    got = await api.client.get("/v1/organisations/kharkiv", headers=api.auth(api.member))
    assert got.json()["aliases"] == ["Charkiw", "Kharkov"]
    conn = await asyncpg.connect(api.url)
    try:
        meta = await conn.fetchval("SELECT metadata->>'correlation_id' FROM events")
    finally:
        await conn.close()
    assert meta == "convoy-42"
    fresh = await api.client.get("/healthz")
    assert len(fresh.headers["x-correlation-id"]) == 36, "one is created when none is sent"


async def test_registering_the_same_id_twice_is_a_409_problem(api: Api) -> None:
    first = await api.client.post("/v1/organisations", json=KHARKIV, headers=api.auth(api.admin))
    assert first.status_code == 201
    again = await api.client.post("/v1/organisations", json=KHARKIV, headers=api.auth(api.admin))
    assert "already registered" in str(assert_problem(again, 409)["detail"])
    assert await api.count_events() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"country": "XX"},
        {"country": "ua"},
        {"name": ""},
        {"name": "K" * 201},
        {"kind": "castle"},
        {"surprise": True},
        {"aliases": "Charkiw"},
    ],
)
async def test_bad_input_is_a_422_problem_naming_the_field_and_stores_nothing(
    api: Api,
    change: dict[str, object],
) -> None:
    response = await api.client.post(
        "/v1/organisations", json={**KHARKIV, **change}, headers=api.auth(api.admin)
    )
    body = assert_problem(response, 422)
    field = next(iter(change))
    assert field in str(body.get("invalid_params", "")) + str(body["detail"])
    assert await api.count_events() == 0


async def test_a_body_that_is_not_json_is_a_422_problem_naming_the_body(api: Api) -> None:
    response = await api.client.post(
        "/v1/organisations",
        content=b"\xff\xfe{",
        headers={**api.auth(api.admin), "Content-Type": "application/json"},
    )
    body = assert_problem(response, 422)
    assert [p["name"] for p in body["invalid_params"]] == ["body"]
    assert await api.count_events() == 0


async def test_an_unexpected_error_is_a_500_problem_without_internals(api: Api) -> None:
    response = await api.client.get("/boom", headers={"X-Correlation-ID": "trace-me"})
    body = assert_problem(response, 500)
    assert "secret" not in response.text
    assert body["correlation_id"] == "trace-me"


async def test_a_retried_write_with_the_same_idempotency_key_returns_the_first_answer(
    api: Api,
) -> None:
    headers = {**api.auth(api.admin), "Idempotency-Key": "reg-kharkiv-1"}
    first = await api.client.post("/v1/organisations", json=KHARKIV, headers=headers)
    second = await api.client.post("/v1/organisations", json=KHARKIV, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert await api.count_events() == 1
    other = await api.client.post(
        "/v1/organisations", json={**KHARKIV, "name": "Charkiw"}, headers=headers
    )
    assert_problem(other, 422)
    assert await api.count_events() == 1


async def test_concurrent_retries_with_one_idempotency_key_append_once(api: Api) -> None:
    headers = {**api.auth(api.admin), "Idempotency-Key": "burst"}
    body = {**KHARKIV, "organisation_id": None}
    responses = await asyncio.gather(
        *(api.client.post("/v1/organisations", json=body, headers=headers) for _ in range(10))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["organisation_id"] for r in responses}) == 1
    assert await api.count_events() == 1


async def test_the_same_idempotency_key_from_another_organisation_is_independent(
    api: Api,
) -> None:
    other_admin = await issue_key(api.url, organisation="cemr", roles=[Role.REGISTRY_ADMIN])
    for token, slug in ((api.admin, "kharkiv"), (other_admin, "lille")):
        response = await api.client.post(
            "/v1/organisations",
            json={**KHARKIV, "organisation_id": slug, "name": slug.title(), "aliases": []},
            headers={**api.auth(token), "Idempotency-Key": "same"},
        )
        assert response.status_code == 201
    assert await api.count_events() == 2


async def test_metrics_count_requests_and_appends(api: Api) -> None:
    await api.client.post("/v1/organisations", json=KHARKIV, headers=api.auth(api.admin))
    text = (await api.client.get("/metrics")).text
    assert (
        'twinaid_http_requests_total{method="POST",route="/v1/organisations",status="201"} 1.0'
        in text
    )


async def test_metrics_count_each_request_and_made_up_methods_as_other(api: Api) -> None:
    """Each request counts once in its series (the series are kept, not looked up again), and
    a method a client makes up does not make a series of its own."""
    for _ in range(3):
        await api.client.post("/v1/organisations", json={}, headers=api.auth(api.admin))
    for method in ("BREW", "PROPFIND", "BREW"):
        await api.client.request(method, "/v1/organisations", headers=api.auth(api.admin))
    text = (await api.client.get("/metrics")).text
    assert (
        'twinaid_http_requests_total{method="POST",route="/v1/organisations",status="422"} 3.0'
        in text
    )
    assert (
        'twinaid_http_requests_total{method="OTHER",route="/v1/organisations",status="405"} 3.0'
        in text
    )
    assert "BREW" not in text and "PROPFIND" not in text
    assert 'twinaid_http_request_seconds_count{route="/v1/organisations"} 6.0' in text


async def test_an_oversized_body_is_a_413_problem_and_stores_nothing(api: Api) -> None:
    huge = {**KHARKIV, "region": "x" * 1_100_000}
    response = await api.client.post("/v1/organisations", json=huge, headers=api.auth(api.admin))
    assert_problem(response, 413)
    assert await api.count_events() == 0


async def test_a_nul_character_in_the_query_is_a_422_problem(api: Api) -> None:
    response = await api.client.get("/v1/organisations?q=Khar%00kiv", headers=api.auth(api.member))
    assert "NUL" in str(assert_problem(response, 422)["detail"])


async def test_a_key_over_its_rate_limit_gets_429_with_retry_after(pg_server: str) -> None:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        app = create_app(settings_for(url, rate_limit_per_second=0.5, rate_limit_burst=3))
        # no time passes for the limiter: what it answers does not depend on the machine's speed
        app.state.ctx.rate_limiter.clock = ManualClock()
        async with app.router.lifespan_context(app):
            member = await issue_key(url, organisation="lille", roles=[Role.MEMBER])
            other = await issue_key(url, organisation="leeds", roles=[Role.MEMBER])
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                statuses = [
                    (
                        await client.get(
                            "/v1/organisations", headers={"Authorization": f"Bearer {member}"}
                        )
                    ).status_code
                    for _ in range(4)
                ]
                limited = await client.get(
                    "/v1/organisations", headers={"Authorization": f"Bearer {member}"}
                )
                fresh = await client.get(
                    "/v1/organisations", headers={"Authorization": f"Bearer {other}"}
                )
    assert statuses == [200, 200, 200, 429]
    assert_problem(limited, 429)
    assert limited.headers["retry-after"] == "2"
    assert fresh.status_code == 200, "the limit is per key"
