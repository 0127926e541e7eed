"""One clock skew for every service: a fact dated up to now + CLOCK_SKEW_SECONDS (default 300 s)
is recorded, by the request edge (shared/instants.py) and by each domain's own check
(shared/domain_checks.py not_in_future, shipments' planning.not_in_future) alike; beyond it,
a 422 naming the date's field and nothing stored. Changing the setting moves the limit in all
three services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.pledges.app import create_app as pledges_app
from services.registry.app import create_app as registry_app
from services.shipments import subscriptions
from services.shipments.app import create_app as shipments_app
from services.shipments.domain import planning
from shared import db as dbmod
from shared import directory, domain_checks, instants
from shared.auth import Role
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.errors import ValidationFailed
from shared.metrics import Metrics
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for
from tests.pledges.conftest import GENERATORS_NEED, seed_registry
from tests.registry.conftest import KHARKIV, LEEDS, LILLE
from tests.shipments.conftest import SCHEMAS, ShipmentsApi, entry, plan_body

DEFAULT = 300.0


@pytest.fixture(autouse=True)
def default_skew_after() -> Iterator[None]:
    """Each app configures the process-wide skew from its settings: put the default back."""
    yield
    instants.configure(clock_skew_seconds=DEFAULT)


def ahead(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def refused_naming_occurred_at(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    names = [p["name"] for p in response.json()["invalid_params"]]
    assert len(names) == 1 and names[0].endswith("occurred_at"), names
    assert "future" in response.json()["detail"]


@asynccontextmanager
async def client_on(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def count(url: str, query: str = "SELECT count(*) FROM events") -> int:
    database = Database(url, max_size=1)
    await database.open()
    try:
        async with database.connection() as conn:
            return int(await conn.fetchval(query))
    finally:
        await database.close()


# -- pledges: a need posted ----------------------------------------------------------------


async def _pledges(pg_server: str, skew: float, cases: list[tuple[float, bool]]) -> None:
    schemas = (directory.SCHEMA, dbmod.schema_text("services.pledges"))
    async with fresh_database(pg_server, *schemas) as url:
        app = pledges_app(settings_for(url, clock_skew_seconds=skew))
        async with client_on(app) as client:
            await seed_registry(url)
            key = await issue_key(url, organisation="kharkiv", roles=[Role.MEMBER])
            headers = {"Authorization": f"Bearer {key}"}
            for i, (seconds, accepted) in enumerate(cases):
                before = await count(url)
                body = {**GENERATORS_NEED, "need_id": f"need-{i}", "occurred_at": ahead(seconds)}
                response = await client.post("/v1/needs", json=body, headers=headers)
                if accepted:
                    assert response.status_code == 201, (seconds, response.text)
                else:
                    refused_naming_occurred_at(response)
                    assert await count(url) == before


async def test_pledges_records_a_need_dated_within_the_skew_and_refuses_one_beyond(
    pg_server: str,
) -> None:
    await _pledges(pg_server, DEFAULT, [(20, True), (290, True), (310, False), (3600, False)])


async def test_pledges_follows_a_configured_skew(pg_server: str) -> None:
    await _pledges(pg_server, 10, [(5, True), (20, False), (290, False)])


# -- registry: a partnership proposed, then moved ------------------------------------------


async def _registry(pg_server: str, skew: float, ok: tuple[float, float], beyond: float) -> None:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        app = registry_app(settings_for(url, clock_skew_seconds=skew))
        async with client_on(app) as client:
            admin = await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
            headers = {"Authorization": f"Bearer {admin}"}
            for organisation in (LILLE, KHARKIV, LEEDS):
                response = await client.post(
                    "/v1/organisations", json=organisation, headers=headers
                )
                assert response.status_code == 201, response.text
            proposal = {
                "partnership_id": "lille-kharkiv",
                "organisations": ["lille", "kharkiv"],
                "kind": "twinning",
                "occurred_at": ahead(ok[0]),
            }
            response = await client.post("/v1/partnerships", json=proposal, headers=headers)
            assert response.status_code == 201, response.text
            moved = {"to": "under_discussion", "occurred_at": ahead(ok[1])}
            response = await client.post(
                "/v1/partnerships/lille-kharkiv/transitions", json=moved, headers=headers
            )
            assert response.status_code == 200, response.text
            before = await count(url)
            late = {
                "partnership_id": "leeds-kharkiv",
                "organisations": ["leeds", "kharkiv"],
                "kind": "twinning",
                "occurred_at": ahead(beyond),
            }
            refused_naming_occurred_at(
                await client.post("/v1/partnerships", json=late, headers=headers)
            )
            moved = {"to": "suspended", "occurred_at": ahead(beyond)}
            refused_naming_occurred_at(
                await client.post(
                    "/v1/partnerships/lille-kharkiv/transitions", json=moved, headers=headers
                )
            )
            assert await count(url) == before


async def test_registry_records_a_partnership_dated_within_the_skew_and_refuses_beyond(
    pg_server: str,
) -> None:
    await _registry(pg_server, DEFAULT, (20, 290), 310)


async def test_registry_follows_a_configured_skew(pg_server: str) -> None:
    await _registry(pg_server, 10, (2, 5), 20)


# -- shipments: a convoy planned, and road entries -------------------------------------------


async def _shipments(pg_server: str, skew: float, ok: tuple[float, float], beyond: float) -> None:
    async with fresh_database(pg_server, *SCHEMAS) as url:
        settings = settings_for(url, clock_skew_seconds=skew)
        app = shipments_app(settings)
        async with app.router.lifespan_context(app):
            db = Database(url, max_size=2)
            await db.open()
            runner = ConsumerRunner(
                service="shipments",
                settings=settings,
                db=db,
                metrics=Metrics("shipments-test"),
                handlers=subscriptions.HANDLERS,
            )
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            try:
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    api = ShipmentsApi(client, app, url, runner)
                    await api.register()
                    await _convoys(api, ok, beyond)
            finally:
                await db.close()


async def _convoys(api: ShipmentsApi, ok: tuple[float, float], beyond: float) -> None:
    logistics = await api.as_("lille", Role.LOGISTICS)
    departure = ahead(86400)
    for convoy_id, seconds in (("soon", ok[0]), ("later", ok[1])):
        body = plan_body(convoy_id, planned_departure=departure, occurred_at=ahead(seconds))
        response = await api.client.post("/v1/convoys", json=body, headers=logistics)
        assert response.status_code == 201, (seconds, response.text)
    before = await api.count()
    body = plan_body("beyond", planned_departure=departure, occurred_at=ahead(beyond))
    refused_naming_occurred_at(await api.client.post("/v1/convoys", json=body, headers=logistics))
    assert await api.count() == before
    # road entries on a convoy on its way since 2022
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    loaded = await api.load(manifest_line_id="m1", quantity="10")
    assert loaded.status_code == 201, loaded.text
    dispatched = await api.entries("c1", entry("dispatch", "2022-06-07T06:10:00+02:00", "d"))
    assert dispatched.status_code == 200, dispatched.text
    for i, seconds in enumerate(ok):
        response = await api.entries(
            "c1", entry("checkpoint", ahead(seconds), f"cp-{i}", place="Lviv")
        )
        assert response.status_code == 200, (seconds, response.text)
    before = await api.count()
    response = await api.entries("c1", entry("checkpoint", ahead(beyond), "cp-x", place="Kyiv"))
    refused_naming_occurred_at(response)
    assert await api.count() == before


async def test_shipments_records_a_plan_and_entries_within_the_skew_and_refuses_beyond(
    pg_server: str,
) -> None:
    await _shipments(pg_server, DEFAULT, (20, 290), 310)


async def test_shipments_follows_a_configured_skew(pg_server: str) -> None:
    await _shipments(pg_server, 10, (2, 5), 20)


# -- the domains' own check, below the edge ----------------------------------------------------


@pytest.mark.parametrize("skew", [DEFAULT, 10.0, 0.0])
def test_every_domain_check_allows_the_configured_skew_and_no_more(skew: float) -> None:
    instants.configure(clock_skew_seconds=skew)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    checks = [
        domain_checks.not_in_future,
        planning.not_in_future,
    ]
    for check in checks:
        check(now + timedelta(seconds=skew), now)
        with pytest.raises(ValidationFailed) as refused:
            check(now + timedelta(seconds=skew, microseconds=1), now, "occurred_at")
        assert refused.value.extra["invalid_params"][0]["name"] == "occurred_at"
    domain_checks.occurred(now + timedelta(seconds=skew), now)
    with pytest.raises(ValidationFailed):
        domain_checks.occurred(now + timedelta(seconds=skew + 1), now)


# -- a change after one dated ahead ----------------------------------------------------------


def test_a_change_dated_now_follows_one_dated_ahead_but_not_one_dated_before_now() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ahead_of_now = now + timedelta(seconds=290)
    # dated now (or left undated): the clocks disagree, not the order
    domain_checks.not_before_last_change(now, ahead_of_now, now=now)
    domain_checks.not_before_last_change(now + timedelta(seconds=10), ahead_of_now, now=now)
    # dated before now, and before the previous change: refused
    with pytest.raises(ValidationFailed):
        domain_checks.not_before_last_change(now - timedelta(seconds=1), ahead_of_now, now=now)
    # a previous change in the past: the order holds as before
    with pytest.raises(ValidationFailed):
        domain_checks.not_before_last_change(now - timedelta(1), now - timedelta(hours=1), now=now)


async def test_an_undated_revision_follows_a_need_posted_with_a_clock_ahead(pg_server: str) -> None:
    schemas = (directory.SCHEMA, dbmod.schema_text("services.pledges"))
    async with fresh_database(pg_server, *schemas) as url:
        app = pledges_app(settings_for(url))
        async with client_on(app) as client:
            await seed_registry(url)
            key = await issue_key(url, organisation="kharkiv", roles=[Role.MEMBER])
            headers = {"Authorization": f"Bearer {key}"}
            body = {**GENERATORS_NEED, "need_id": "n-ahead", "occurred_at": ahead(290)}
            response = await client.post("/v1/needs", json=body, headers=headers)
            assert response.status_code == 201, response.text
            revised = await client.post(
                "/v1/needs/n-ahead/revisions",
                json={"quantity": "60", "reason": "more hospitals"},
                headers=headers,
            )
            assert revised.status_code == 200, revised.text
            before = await count(url)
            dated_back = await client.post(
                "/v1/needs/n-ahead/revisions",
                json={"quantity": "70", "reason": "x", "occurred_at": ahead(-3600)},
                headers=headers,
            )
            assert dated_back.status_code == 422, dated_back.text
            assert await count(url) == before
