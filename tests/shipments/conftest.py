"""Shipments API fixtures on real PostgreSQL: a fresh database per test, organisations and
pledge lines fed through the consumer runner as registry and pledges would send them."""

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

from services.shipments import domain, handlers, projections, subscriptions
from services.shipments.app import create_app
from shared import db as dbmod
from shared import directory, privacy
from shared.auth import Role
from shared.consumer import ConsumerRunner, Incoming
from shared.db import Database
from shared.events import Metadata
from shared.metrics import Metrics
from shared.repository import PostgresUnitOfWork
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for

ORGANISATIONS = {
    "lille": ("Lille", "municipality", "FR"),
    "chu-lille": ("CHU de Lille", "hospital", "FR"),
    "kharkiv": ("Kharkiv", "municipality", "UA"),
    "leeds": ("Leeds", "municipality", "GB"),
    "leeds-charity-lunch": ("Leeds Charity Lunch", "ngo", "GB"),
    "leeds-community-foundation": ("Leeds Community Foundation", "foundation", "GB"),
    "bucha": ("Bucha", "municipality", "UA"),
    "transports-nord": ("Transports du Nord", "company", "FR"),
    "ukrposhta": ("Ukrposhta", "company", "UA"),
}
SCHEMAS = (directory.SCHEMA, dbmod.schema_text("services.shipments"))
DEPARTURE = "2022-06-07T06:00:00+02:00"
TRUCKS = [
    {"registration": "GH-482-LK", "type": "semi-trailer truck", "capacity_kg": "12000"},
    {"registration": "FD-117-PR", "type": "rigid truck", "capacity_kg": "7500"},
]
DRIVERS = [
    {"name": "Karim Benali", "phone": "+33 6 12 34 56 78", "vehicle": "GH-482-LK"},
    {"name": "Olena Marchenko", "licence_number": "UA-DL-558812", "vehicle": "FD-117-PR"},
]


def plan_body(convoy_id: str = "c1", **fields: Any) -> dict[str, Any]:
    """The body of POST /v1/convoys for the usual Lille - Kharkiv convoy."""
    return {
        "convoy_id": convoy_id,
        "reference": "Lille - Kharkiv medicines",
        "origin_id": "lille",
        "destination_id": "kharkiv",
        "carrier_id": "transports-nord",
        "planned_departure": DEPARTURE,
        "vehicles": TRUCKS,
        "drivers": DRIVERS,
        "occurred_at": "2022-06-01T09:00:00+02:00",
        **fields,
    }


@dataclass
class ShipmentsApi:
    """An HTTP client on a shipments app with its own database, keys made on demand, and the
    consumer that feeds it other services' events."""

    client: httpx.AsyncClient
    app: FastAPI
    url: str
    runner: ConsumerRunner
    _keys: dict[tuple[str, Role], str] = field(default_factory=dict)
    _positions: dict[str, itertools.count[int]] = field(default_factory=dict)

    async def as_(self, organisation: str, role: Role) -> dict[str, str]:
        if (organisation, role) not in self._keys:
            self._keys[organisation, role] = await issue_key(
                self.url, organisation=organisation, roles=[role]
            )
        return {"Authorization": f"Bearer {self._keys[organisation, role]}"}

    async def feed(self, upstream: str, event_type: str, data: dict[str, Any], **meta: Any) -> bool:
        positions = self._positions.setdefault(upstream, itertools.count(1))
        return await self.runner.apply(
            Incoming(
                upstream=upstream,
                event_id=meta.get("event_id", uuid.uuid4()),
                position=meta.get("position", next(positions)),
                event_type=event_type,
                stream_id=meta.get("stream_id", "stream"),
                stream_version=1,
                occurred_at=meta.get("occurred_at", datetime(2022, 5, 1, tzinfo=UTC)),
                data=data,
                correlation_id=meta.get("correlation_id"),
                organisation=meta.get("organisation"),
            )
        )

    async def register(self, *organisations: str) -> None:
        for slug in organisations or tuple(ORGANISATIONS):
            name, kind, country = ORGANISATIONS[slug]
            await self.feed(
                "registry",
                "registry.organisation-registered",
                {"organisation_id": slug, "name": name, "kind": kind, "country": country},
                stream_id=f"organisation-{slug}",
            )

    async def pledge_line(self, **fields: Any) -> dict[str, Any]:
        """Announce an in-kind pledge line as pledges does; returns its data."""
        correlation_id = fields.pop("correlation_id", f"corr-{fields.get('pledge_id', 'p1')}")
        position = fields.pop("position", None)
        occurred_at = fields.pop("occurred_at", None)
        data = {
            "pledge_id": "p1",
            "line_id": "l1",
            "donor_id": "lille",
            "recipient_id": "kharkiv",
            "partnership_id": None,
            "item": "Medium generator 5 kVA",
            "category": "generators",
            "unit": "pieces",
            "quantity": "50",
            "weight_kg": "4000",
            "delivered": "0",
            "remaining": fields.get("quantity", "50"),
            "status": "committed",
            **fields,
        }
        meta: dict[str, Any] = {"correlation_id": correlation_id}
        if position is not None:
            meta["position"] = position
        if occurred_at is not None:
            meta["occurred_at"] = occurred_at
        await self.feed(
            "pledges",
            "pledges.pledge-line-updated",
            data,
            stream_id=f"pledge-{data['pledge_id']}",
            **meta,
        )
        return data

    async def count(self, table: str = "events") -> int:
        conn = await asyncpg.connect(self.url)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        conn = await asyncpg.connect(self.url)
        try:
            rows = await conn.fetch(
                "SELECT data FROM events WHERE event_type = $1 ORDER BY id", event_type
            )
        finally:
            await conn.close()
        return [json.loads(r["data"]) for r in rows]

    async def reveal(self, value: Any) -> Any:
        """`value` with its sealed persons opened, as a view allowed to see them shows them."""
        conn = await asyncpg.connect(self.url)
        try:
            return await privacy.reveal(conn, value)
        finally:
            await conn.close()

    # -- the usual steps, as the origin's logistics team -----------------------------------

    async def plan(self, convoy_id: str = "c1", **fields: Any) -> dict[str, Any]:
        body = plan_body(convoy_id, **fields)
        response = await self.client.post(
            "/v1/convoys", json=body, headers=await self.as_("lille", Role.LOGISTICS)
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def load(self, convoy_id: str = "c1", **fields: Any) -> httpx.Response:
        body = {
            "pledge_id": "p1",
            "line_id": "l1",
            "quantity": "10",
            "vehicle": "GH-482-LK",
            "occurred_at": "2022-06-06T15:00:00+02:00",
            **fields,
        }
        return await self.client.post(
            f"/v1/convoys/{convoy_id}/manifest",
            json=body,
            headers=await self.as_("lille", Role.LOGISTICS),
        )

    async def entries(
        self, convoy_id: str, *entries: dict[str, Any], who: tuple[str, Role] | None = None
    ) -> httpx.Response:
        headers = await self.as_(*(who or ("transports-nord", Role.LOGISTICS)))
        return await self.client.post(
            f"/v1/convoys/{convoy_id}/entries", json={"entries": list(entries)}, headers=headers
        )

    async def convoy(self, convoy_id: str = "c1", who: tuple[str, Role] | None = None) -> Any:
        headers = await self.as_(*(who or ("lille", Role.LOGISTICS)))
        response = await self.client.get(f"/v1/convoys/{convoy_id}", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()


def entry(
    kind: str, occurred_at: str, entry_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    return {
        "entry_id": entry_id or str(uuid.uuid4()),
        "kind": kind,
        "occurred_at": occurred_at,
        **fields,
    }


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Settings a test module changes for its app (override this fixture there)."""
    return {}


@pytest.fixture
async def api(pg_server: str, settings_overrides: dict[str, Any]) -> AsyncIterator[ShipmentsApi]:
    async with fresh_database(pg_server, *SCHEMAS) as url:
        settings = settings_for(url, **settings_overrides)
        app = create_app(settings)
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
                    shipments = ShipmentsApi(client, app, url, runner)
                    await shipments.register()
                    yield shipments
            finally:
                await db.close()


def assert_problem(response: httpx.Response, status: int, slug: str | None = None) -> Any:
    """An RFC 9457 problem with this status (and type)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"] and body["detail"]
    if slug is not None:
        assert body["type"].endswith("/" + slug), body
    return body


def unit_of_work(conn: asyncpg.Connection) -> PostgresUnitOfWork:
    """A unit of work on `conn`, with the service's projections (as `write` builds one)."""
    return PostgresUnitOfWork(conn, projections.ALL, Metadata(), datetime.now(UTC))


async def load_convoy(conn: asyncpg.Connection, convoy_id: str) -> domain.Convoy:
    """The convoy as the write path loads it: its snapshot and the events after it."""
    return await handlers.CONVOYS.load(unit_of_work(conn), convoy_id)
