"""The audit routes every service shares, through the registry: history, feed, verify."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from services.registry.app import create_app
from shared import db as dbmod
from shared.auth import Role
from shared.testing import fresh_database, issue_key, seal_everything
from tests.conftest import settings_for


@pytest.fixture
async def client(pg_server: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        app = create_app(settings_for(url))
        async with app.router.lifespan_context(app):
            keys = {
                "admin": await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN]),
                "auditor": await issue_key(
                    url, organisation="cour-des-comptes", roles=[Role.AUDITOR]
                ),
                "member": await issue_key(url, organisation="lille", roles=[Role.MEMBER]),
            }
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                for slug, cid in (("kharkiv", "corr-k"), ("lille", "corr-l")):
                    response = await c.post(
                        "/v1/organisations",
                        json={
                            "organisation_id": slug,
                            "name": slug.title(),
                            "kind": "municipality",
                            "country": "UA",
                        },
                        headers={
                            "Authorization": f"Bearer {keys['admin']}",
                            "X-Correlation-ID": cid,
                        },
                    )
                    assert response.status_code == 201
                conn = await asyncpg.connect(url)
                try:
                    await seal_everything(conn)
                finally:
                    await conn.close()
                yield c, {k: f"Bearer {v}" for k, v in keys.items()}


async def test_an_auditor_reads_the_whole_history_of_a_record(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    c, auth = client
    response = await c.get(
        "/v1/audit/streams/organisation-kharkiv", headers={"Authorization": auth["auditor"]}
    )
    assert response.status_code == 200
    [event] = response.json()["events"]
    assert event["event_type"] == "registry.organisation-registered"
    assert event["position"] == 1 and len(event["hash"]) == 64
    assert event["metadata"]["correlation_id"] == "corr-k"
    assert event["metadata"]["organisation"] == "twinaid"
    missing = await c.get(
        "/v1/audit/streams/organisation-nowhere", headers={"Authorization": auth["auditor"]}
    )
    assert missing.status_code == 404
    member = await c.get(
        "/v1/audit/streams/organisation-kharkiv", headers={"Authorization": auth["member"]}
    )
    assert member.status_code == 403


async def test_the_feed_filters_by_correlation_and_time_and_verify_reports_the_head(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    c, auth = client
    headers = {"Authorization": auth["auditor"]}
    feed = await c.get("/v1/events", params={"correlation_id": "corr-l"}, headers=headers)
    assert [e["stream_id"] for e in feed.json()["events"]] == ["organisation-lille"]
    assert feed.json()["next_after"] == 2
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()
    later = await c.get("/v1/events", params={"recorded_from": tomorrow + "Z"}, headers=headers)
    assert later.json()["events"] == []
    naive = await c.get("/v1/events", params={"recorded_from": tomorrow}, headers=headers)
    assert naive.status_code == 422
    verdict = (await c.get("/v1/audit/verify", headers=headers)).json()
    assert verdict["intact"] and verdict["head_position"] == 2
    assert verdict["recanonicalised"] == 0, "stored as RFC 8785 text: hashed as rendered"
    deep = (await c.get("/v1/audit/verify?deep=true", headers=headers)).json()
    assert deep == {**verdict, "recanonicalised": 2}
    denied = await c.get("/v1/audit/verify", headers={"Authorization": auth["member"]})
    assert denied.status_code == 403
