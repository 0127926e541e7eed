"""CORS (shared/web.py, CORS_ORIGINS): a browser's preflight lets through every operation the
services document, DELETE included, and a script may read the headers the API answers with
(Link, Idempotent-Replayed, ETag, X-Correlation-ID, Retry-After, ...)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator

import httpx
import pytest

from services.pledges.app import create_app
from shared import db as dbmod
from shared import directory
from shared.auth import Role
from shared.testing import fresh_database
from tests.conftest import settings_for
from tests.pledges.conftest import PledgesApi, seed_registry
from tests.pledges.test_reports import loaded

BOARD = "http://127.0.0.1:8100"
NOWHERE = "postgresql://x@127.0.0.1:1/x"


def exposed(response: httpx.Response) -> set[str]:
    names = response.headers.get("access-control-expose-headers", "")
    return {n.strip().lower() for n in names.split(",") if n.strip()}


@pytest.fixture
async def cors_api(pg_server: str) -> AsyncIterator[PledgesApi]:
    async with fresh_database(
        pg_server, directory.SCHEMA, dbmod.schema_text("services.pledges")
    ) as url:
        app = create_app(settings_for(url, cors_origins=[BOARD]))
        async with app.router.lifespan_context(app):
            await seed_registry(url)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://t", headers={"Origin": BOARD}
            ) as client:
                yield PledgesApi(client, app, url)


@pytest.mark.parametrize("service", ["registry", "pledges", "shipments"])
async def test_a_preflight_lets_every_documented_operation_through(service: str) -> None:
    """No database: the preflight is answered before anything else runs."""
    app = importlib.import_module(f"services.{service}.app").create_app(
        settings_for(NOWHERE, cors_origins=[BOARD])
    )
    operations = {
        (path, method.upper())
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in {"get", "head", "post", "put", "patch", "delete"}
    }
    assert ("/v1/webhooks/{subscription_id}", "DELETE") in operations
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path, method in [*sorted(operations), ("/v1/webhooks", "HEAD")]:
            answer = await client.options(
                path.replace("{", "").replace("}", ""),
                headers={
                    "Origin": BOARD,
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": "authorization,content-type,"
                    "idempotency-key,if-match,x-correlation-id",
                },
            )
            assert answer.status_code == 200, (path, method, answer.text)
            assert answer.headers["access-control-allow-origin"] == BOARD
            allowed = answer.headers["access-control-allow-methods"].split(", ")
            assert method in allowed, (path, method, allowed)
        refused = await client.options(
            "/v1/webhooks",
            headers={"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "GET"},
        )
        assert refused.status_code == 400


async def test_a_browser_reads_the_headers_the_api_answers_with(cors_api: PledgesApi) -> None:
    api = await loaded(cors_api)
    page = await api.client.get(
        "/v1/reports/pledges",
        params={"format": "csv", "limit": 1},
        headers=await api.as_("kharkiv", Role.MEMBER),
    )
    assert page.status_code == 200, page.text
    assert page.headers["access-control-allow-origin"] == BOARD
    assert 'rel="next"' in page.headers["link"]
    assert {"link", "content-disposition", "x-correlation-id"} <= exposed(page)
    headers = {**await api.as_("kharkiv", Role.MEMBER), "Idempotency-Key": "cors-1"}
    body = {"url": "https://partner.example/hook"}
    first = await api.client.post("/v1/webhooks", json=body, headers=headers)
    again = await api.client.post("/v1/webhooks", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert {"idempotent-replayed", "etag", "retry-after", "www-authenticate"} <= exposed(again)
    sid = first.json()["subscription_id"]
    gone = await api.client.delete(f"/v1/webhooks/{sid}", headers=headers)
    assert gone.status_code == 204
    assert gone.headers["access-control-allow-origin"] == BOARD
