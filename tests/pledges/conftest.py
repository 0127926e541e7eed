"""Pledges fixtures: the API in process on a fresh database of real PostgreSQL, keys per role,
and the organisations and partnerships the registry would have announced (applied through the
same handlers the consumer runs)."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.pledges import subscriptions
from services.pledges.app import create_app
from shared import db as dbmod
from shared import directory
from shared.auth import Role
from shared.consumer import Incoming
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for

ORGANISATIONS = {
    "kharkiv": ("Kharkiv", "municipality", "UA"),
    "lille": ("Lille", "municipality", "FR"),
    "chu-lille": ("CHU de Lille", "hospital", "FR"),
    "fondation-de-lille": ("Fondation de Lille", "foundation", "FR"),
    "leeds": ("Leeds", "municipality", "GB"),
    "leeds-community-foundation": ("Leeds Community Foundation", "foundation", "GB"),
    "leeds-charity-lunch": ("Leeds Charity Lunch", "ngo", "GB"),
    "fastiv": ("Fastiv", "municipality", "UA"),
    "druskininkai": ("Druskininkai", "municipality", "LT"),
    "bucha": ("Bucha", "municipality", "UA"),
}
# (id, organisations, kind, programme, status)
PARTNERSHIPS = [
    ("lille-kharkiv-twinning", ("lille", "kharkiv"), "twinning", None, "signed"),
    ("leeds-kharkiv-twinning", ("leeds", "kharkiv"), "twinning", None, "under_discussion"),
    (
        "fastiv-druskininkai-bridges-of-trust",
        ("fastiv", "druskininkai"),
        "programme_partnership",
        "Bridges of Trust",
        "under_discussion",
    ),
]
_positions = itertools.count(1)


def incoming(
    upstream: str,
    event_type: str,
    data: dict[str, Any],
    *,
    stream_id: str = "stream",
    position: int | None = None,
    correlation_id: str | None = None,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> Incoming:
    return Incoming(
        upstream=upstream,
        event_id=event_id or uuid.uuid4(),
        position=position if position is not None else next(_positions),
        event_type=event_type,
        stream_id=stream_id,
        stream_version=1,
        occurred_at=occurred_at or datetime.now(UTC),
        data=data,
        correlation_id=correlation_id,
        organisation=None,
    )


def loading(delivery: Incoming) -> list[Incoming]:
    """What shipments announced before `delivery`: each of its lines loaded on its convoy, as
    much as the line says was loaded (pledges counts a delivery only for such a line)."""
    return [
        incoming(
            "shipments",
            "shipments.manifest-line-loaded",
            {
                "convoy_id": delivery.data["convoy_id"],
                "manifest_line_id": line["manifest_line_id"],
                "pledge_id": line["pledge_id"],
                "line_id": line["line_id"],
                "unit": line["unit"],
                "quantity": line["loaded"],
            },
            stream_id=delivery.stream_id,
        )
        for line in delivery.data["lines"]
    ]


def registry_events() -> list[Incoming]:
    """What the registry announces about the organisations and partnerships above."""
    out = [
        incoming(
            "registry",
            "registry.organisation-registered",
            {"organisation_id": oid, "name": name, "kind": kind, "country": country},
        )
        for oid, (name, kind, country) in ORGANISATIONS.items()
    ]
    for pid, orgs, kind, programme, status in PARTNERSHIPS:
        base = {"partnership_id": pid, "organisations": list(orgs), "kind": kind}
        out.append(
            incoming(
                "registry",
                "registry.partnership-proposed",
                {**base, "programme": programme, "proposed_by": orgs[0]},
            )
        )
        if status != "proposed":
            out.append(
                incoming(
                    "registry",
                    "registry.partnership-status-changed",
                    {**base, "from_status": "proposed", "to_status": status},
                )
            )
    return out


async def seed_registry(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for event in registry_events():
            async with conn.transaction():
                await subscriptions.HANDLERS["registry"][event.event_type](conn, event)
    finally:
        await conn.close()


@dataclass
class PledgesApi:
    """An HTTP client on a pledges app with its own database, and keys made on demand."""

    client: httpx.AsyncClient
    app: FastAPI
    url: str
    _keys: dict[tuple[str, Role], str] = field(default_factory=dict)

    async def as_(self, organisation: str, role: Role = Role.MEMBER) -> dict[str, str]:
        if (organisation, role) not in self._keys:
            self._keys[organisation, role] = await issue_key(
                self.url, organisation=organisation, roles=[role]
            )
        return {"Authorization": f"Bearer {self._keys[organisation, role]}"}

    async def post(
        self, path: str, body: dict[str, Any], *, by: str, role: Role = Role.MEMBER, **headers: str
    ) -> httpx.Response:
        return await self.client.post(
            path, json=body, headers={**await self.as_(by, role), **headers}
        )

    async def ok(self, path: str, body: dict[str, Any], *, by: str, **kw: Any) -> dict[str, Any]:
        response = await self.post(path, body, by=by, **kw)
        assert response.status_code in (200, 201), response.text
        out: dict[str, Any] = response.json()
        return out

    async def get(
        self, path: str, *, reader: str = "bucha", role: Role = Role.MEMBER, **params: Any
    ) -> dict[str, Any]:
        """GET as a member of `reader` (by default an organisation concerned by nothing)."""
        response = await self.client.get(path, params=params, headers=await self.as_(reader, role))
        assert response.status_code == 200, response.text
        out: dict[str, Any] = response.json()
        return out

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.url)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
            return rows
        finally:
            await conn.close()

    async def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        rows = await self.fetch(
            "SELECT event_type, data, metadata FROM events"
            " WHERE $1::text IS NULL OR event_type = $1 ORDER BY id",
            event_type,
        )
        return [
            {"type": r["event_type"], **json.loads(r["data"]), "_meta": json.loads(r["metadata"])}
            for r in rows
        ]

    async def count_events(self) -> int:
        return len(await self.fetch("SELECT 1 FROM events"))


@pytest.fixture
async def api(pg_server: str) -> AsyncIterator[PledgesApi]:
    async with fresh_database(
        pg_server, directory.SCHEMA, dbmod.schema_text("services.pledges")
    ) as url:
        app = create_app(settings_for(url))
        async with app.router.lifespan_context(app):
            await seed_registry(url)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield PledgesApi(client, app, url)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["type"] and body["detail"]
    return body


GENERATORS_NEED = {
    "need_id": "kharkiv-generators",
    "kind": "item",
    "category": "generators",
    "description": "Medium-sized generators for essential infrastructure",
    "quantity": "100",
    "unit": "pieces",
    "priority": "critical",
    "serves": ["heating", "water", "hospitals"],
}


def generators_pledge(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pledge_id": "lille-generators",
        "recipient_id": "kharkiv",
        "partnership_id": "lille-kharkiv-twinning",
        "lines": [
            {
                "line_id": "generators",
                "kind": "in_kind",
                "need_id": "kharkiv-generators",
                "item": "Medium-sized generator",
                "category": "generators",
                "quantity": "100",
                "unit": "pieces",
                "weight_kg": "12000",
            }
        ],
    }
    body.update(overrides)
    return body
