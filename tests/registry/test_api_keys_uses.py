"""The last use an organisation sees of its key is the latest in any service (issue 21 point 4):
a partner key used only at pledges shows when, once the pledges worker reported it to the
registry (POST /v1/api-key-uses, with its service key, only what changed); the registry keeps
the latest of each service (a late report never moves it back, one from the future counts as
now) and logs no event for it; only service keys may report."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from shared import db as dbmod
from shared import directory
from shared.auth import Authenticator, Role
from shared.auth import issue as issue_copy
from shared.db import Database
from shared.deps import ServiceContext
from shared.testing import fresh_database
from shared.worker import KeyUseReporter
from tests.conftest import settings_for
from tests.registry.conftest import RegistryApi, assert_problem
from tests.registry.test_api_keys import bearer, issued, keys_of, lille_admin

pytestmark = pytest.mark.once  # plain SQL, no version-specific behaviour

USES = "/v1/api-key-uses"


@pytest.fixture
async def pledges_db(pg_server: str) -> AsyncIterator[str]:
    async with fresh_database(
        pg_server, directory.SCHEMA, dbmod.schema_text("services.pledges")
    ) as url:
        yield url


async def listed(api: RegistryApi, admin: dict[str, str], key_id: str) -> dict[str, Any]:
    response = await api.client.get(keys_of("lille"), headers=admin)
    assert response.status_code == 200, response.text
    return next(k for k in response.json()["items"] if k["key_id"] == key_id)


async def used_at_pledges(url: str, token: str, at: datetime) -> None:
    """The key used at pledges `at`, as its API process records it (shared/auth.py)."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        auth = Authenticator(pool, ttl=0, clock=lambda: at)
        await auth.authenticate(f"Bearer {token}")
        await auth.drain()
        assert auth.uses_recorded == 1
    finally:
        await pool.close()


async def test_a_key_used_only_at_pledges_shows_its_last_use_once_the_worker_reported_it(
    api: RegistryApi, pledges_db: str
) -> None:
    admin = await lille_admin(api)
    key = await issued(api, "lille", admin, "member", label="Lille pledge sync")
    # pledges holds the key (its consumer applied the event): the copy as the event makes it
    conn = await asyncpg.connect(pledges_db)
    try:
        await issue_copy(conn, organisation="lille", roles=[Role.MEMBER], token=key["token"])
    finally:
        await conn.close()
    used = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    await used_at_pledges(pledges_db, key["token"], used)
    seen = await listed(api, admin, key["key_id"])
    assert seen["last_used_at"] is None and seen["last_used_in"] == {}

    events = await api.count()
    service = await api.key("twinaid", Role.SERVICE)
    settings = settings_for(
        pledges_db, upstream_feeds={"registry": "http://t"}, feed_api_key=service
    )
    db = Database(pledges_db, max_size=2)
    await db.open()
    try:
        reporter = KeyUseReporter(service="pledges", settings=settings, db=db, http=api.client)
        assert reporter.configured
        assert await reporter.report() == 1 and reporter.requests == 1
        seen = await listed(api, admin, key["key_id"])
        assert datetime.fromisoformat(seen["last_used_at"]) == used
        assert {s: datetime.fromisoformat(t) for s, t in seen["last_used_in"].items()} == {
            "pledges": used
        }
        one = await api.client.get(keys_of("lille", key["key_id"]), headers=admin)
        assert datetime.fromisoformat(one.json()["last_used_at"]) == used
        # nothing changed: no request at all
        assert await reporter.report() == 0 and reporter.requests == 1

        # a later use at pledges goes in the next round (the loop, run faster here)
        later = used + timedelta(minutes=2)
        await used_at_pledges(pledges_db, key["token"], later)
        reporter.every = 0.02
        stop = asyncio.Event()
        running = asyncio.create_task(reporter.run(stop))
        try:
            async with asyncio.timeout(10):
                while reporter.reported.get(key["key_id"]) != later:
                    await asyncio.sleep(0.02)
        finally:
            stop.set()
            await running
        seen = await listed(api, admin, key["key_id"])
        assert datetime.fromisoformat(seen["last_used_at"]) == later
    finally:
        await db.close()

    # a late report of an earlier use never moves it back; a use from the future counts as now
    stale = {"key_id": key["key_id"], "last_used_at": used.isoformat()}
    response = await api.client.post(
        USES, json={"service": "pledges", "uses": [stale]}, headers=bearer(service)
    )
    assert response.status_code == 200 and response.json() == {"recorded": 1}
    seen = await listed(api, admin, key["key_id"])
    assert datetime.fromisoformat(seen["last_used_at"]) == later
    before = datetime.now(UTC)
    # (a year ahead: an instant beyond what the API takes, ten years, is a 422, below)
    ahead = {"key_id": key["key_id"], "last_used_at": (before + timedelta(days=365)).isoformat()}
    response = await api.client.post(
        USES, json={"service": "shipments", "uses": [ahead]}, headers=bearer(service)
    )
    assert response.json() == {"recorded": 1}
    seen = await listed(api, admin, key["key_id"])
    assert before <= datetime.fromisoformat(seen["last_used_in"]["shipments"]) <= datetime.now(UTC)
    assert datetime.fromisoformat(seen["last_used_in"]["pledges"]) == later
    # a key the registry does not hold is left out
    unknown = {"key_id": "00ff", "last_used_at": used.isoformat()}
    response = await api.client.post(
        USES, json={"service": "pledges", "uses": [unknown]}, headers=bearer(service)
    )
    assert response.json() == {"recorded": 0}
    # usage is not a domain event: the log did not grow
    assert await api.count() == events
    assert await api.count("api_key_uses") == 2


async def test_the_latest_use_wins_whichever_service_saw_it(
    api: RegistryApi,
) -> None:
    admin = await lille_admin(api)
    key = await issued(api, "lille", admin, "member")
    pledges_use = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    service = await api.key("twinaid", Role.SERVICE)
    response = await api.client.post(
        USES,
        json={
            "service": "pledges",
            "uses": [{"key_id": key["key_id"], "last_used_at": pledges_use.isoformat()}],
        },
        headers=bearer(service),
    )
    assert response.status_code == 200, response.text
    # then used at the registry itself: later, so it is the last use
    assert (await api.client.get("/v1/organisations", headers=bearer(key["token"]))).is_success
    ctx: ServiceContext = api.app.state.ctx
    assert ctx.auth is not None
    await ctx.auth.drain()
    seen = await listed(api, admin, key["key_id"])
    assert set(seen["last_used_in"]) == {"registry", "pledges"}
    assert seen["last_used_at"] == seen["last_used_in"]["registry"]
    assert datetime.fromisoformat(seen["last_used_at"]) > pledges_use


@pytest.mark.parametrize("role", [Role.MEMBER, Role.ORG_ADMIN, Role.REGISTRY_ADMIN, Role.AUDITOR])
async def test_only_service_keys_report_uses(api: RegistryApi, role: Role) -> None:
    body = {"service": "pledges", "uses": []}
    response = await api.client.post(USES, json=body, headers=await api.as_("lille", role))
    assert_problem(response, 403)
    assert_problem(await api.client.post(USES, json=body), 401)
    service = await api.as_("twinaid", Role.SERVICE)
    for bad in (
        {"service": "pledges", "uses": [{"key_id": "not hex", "last_used_at": "2026-01-01"}]},
        {"service": "Pledges!", "uses": []},
        {"service": "pledges", "uses": [{"key_id": "ab", "last_used_at": "2026-01-01T00:00"}]},
        # only the services holding copies of the keys: any other name would grow the table
        {"service": "x1", "uses": []},
        {"service": "registry", "uses": []},
        # instants the database cannot hold, or no instant at all
        {
            "service": "pledges",
            "uses": [{"key_id": "ab", "last_used_at": "0001-01-01T00:00+14:00"}],
        },
        {
            "service": "pledges",
            "uses": [{"key_id": "ab", "last_used_at": "9999-12-31T23:59-14:00"}],
        },
        {"service": "pledges", "uses": [{"key_id": "ab", "last_used_at": 1767225600}]},
    ):
        assert_problem(await api.client.post(USES, json=bad, headers=service), 422)


async def test_a_worker_without_a_registry_feed_or_key_reports_nothing(pledges_db: str) -> None:
    db = Database(pledges_db, max_size=1)
    for service, settings in (
        ("pledges", settings_for(pledges_db)),
        ("pledges", settings_for(pledges_db, upstream_feeds={"registry": "http://t"})),
        (
            "registry",
            settings_for(pledges_db, upstream_feeds={"registry": "http://t"}, feed_api_key="k"),
        ),
    ):
        reporter = KeyUseReporter(service=service, settings=settings, db=db, http=None)  # type: ignore[arg-type]
        assert not reporter.configured
        await reporter.run(asyncio.Event())  # returns at once
