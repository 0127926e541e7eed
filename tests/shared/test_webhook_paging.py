"""GET /v1/webhooks is paged (issue 19, point 7): an organisation's subscriptions, oldest
first, a bounded page by default, a keyset cursor (`cursor`, `next_cursor`); walking the pages
gives every live subscription once, in order, and only the organisation's own; a cursor the
list did not give is a 422 problem."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from services.shipments.app import create_app
from shared import pagination
from shared.auth import Role
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for
from tests.shipments.conftest import SCHEMAS

pytestmark = pytest.mark.once  # keyset SQL any supported PostgreSQL runs alike

DEFAULT_PAGE = 100


class Api:
    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        self.keys: dict[str, dict[str, str]] = {}

    async def as_(self, organisation: str) -> dict[str, str]:
        if organisation not in self.keys:
            key = await issue_key(self.url, organisation=organisation, roles=[Role.LOGISTICS])
            self.keys[organisation] = {"Authorization": f"Bearer {key}"}
        return self.keys[organisation]

    async def subscribe(self, organisation: str, n: int) -> str:
        answer = await self.client.post(
            "/v1/webhooks",
            json={"url": f"http://127.0.0.1:9/{organisation}/{n}", "description": f"#{n}"},
            headers=await self.as_(organisation),
        )
        assert answer.status_code == 201, answer.text
        sid: str = answer.json()["subscription_id"]
        return sid

    async def walk(self, organisation: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        pages = 0
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            answer = await self.client.get(
                "/v1/webhooks", params=query, headers=await self.as_(organisation)
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            pages += 1
            assert pages <= 1000, "the pages go on: a cursor that does not move on"
            assert len(body["items"]) <= params.get("limit", DEFAULT_PAGE)
            items += body["items"]
            cursor = body["next_cursor"]
            if cursor is None:
                return items, pages
            assert body["items"]


@pytest.fixture
async def api(pg_server: str) -> AsyncIterator[Api]:
    async with fresh_database(pg_server, *SCHEMAS) as url:
        settings = settings_for(
            url,
            webhook_allowed_hosts=["127.0.0.1"],
            rate_limit_per_second=100_000.0,
            rate_limit_burst=100_000,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield Api(client, url)


def b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def test_webhooks_come_in_pages_oldest_first(api: Api) -> None:
    total = DEFAULT_PAGE + 5
    made = [await api.subscribe("lille", n) for n in range(total)]
    leeds = [await api.subscribe("leeds", n) for n in range(3)]
    # two subscriptions made at the same instant: the id decides
    conn = await asyncpg.connect(api.url)
    try:
        await conn.execute(
            "UPDATE webhook_subscriptions SET created_at = (SELECT created_at FROM"
            " webhook_subscriptions WHERE subscription_id = $1) WHERE subscription_id = $2",
            made[10],
            made[11],
        )
    finally:
        await conn.close()
    made[10:12] = sorted(made[10:12])
    gone = made.pop(20)
    deleted = await api.client.delete(f"/v1/webhooks/{gone}", headers=await api.as_("lille"))
    assert deleted.status_code == 204

    first = (await api.client.get("/v1/webhooks", headers=await api.as_("lille"))).json()
    assert len(first["items"]) == DEFAULT_PAGE and first["next_cursor"]  # bounded by default
    for limit in (1, 3, DEFAULT_PAGE, pagination.MAX_LIMIT):
        items, pages = await api.walk("lille", limit=limit)
        assert [w["subscription_id"] for w in items] == made, limit
        assert pages == -(-len(made) // limit)
        assert all("secret" not in w for w in items)
    items, pages = await api.walk("lille")
    assert [w["subscription_id"] for w in items] == made and pages == 2
    items, _ = await api.walk("leeds", limit=2)
    assert [w["subscription_id"] for w in items] == leeds
    # a cursor of lille's list shows leeds only leeds's subscriptions (made after lille's)
    lille_cursor = first["next_cursor"]
    answer = await api.client.get(
        "/v1/webhooks", params={"cursor": lille_cursor}, headers=await api.as_("leeds")
    )
    assert answer.status_code == 200
    assert [w["subscription_id"] for w in answer.json()["items"]] == leeds


async def test_a_cursor_the_list_did_not_give_is_a_problem(api: Api) -> None:
    await api.subscribe("lille", 1)
    headers = await api.as_("lille")
    for cursor in (
        "garbage!",
        "x" * 500,
        b64(["wh_0000000000000000"]),
        b64(["not an instant", "wh_0000000000000000"]),
        b64(["2030-01-01T00:00:00", "wh_0000000000000000"]),  # no offset
        b64(["2030-01-01T00:00:00+00:00", 7]),
        b64({"created_at": "2030-01-01T00:00:00+00:00"}),
    ):
        answer = await api.client.get("/v1/webhooks", params={"cursor": cursor}, headers=headers)
        assert answer.status_code == 422, (cursor, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["invalid_params"][0]["name"] == "query.cursor"
    for limit in (0, pagination.MAX_LIMIT + 1):
        answer = await api.client.get("/v1/webhooks", params={"limit": limit}, headers=headers)
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
