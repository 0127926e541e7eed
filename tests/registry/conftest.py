"""Registry API fixtures: a fresh database per test on real PostgreSQL, keys per role."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.registry import commands, domain, handlers
from services.registry.app import create_app
from shared import db as dbmod
from shared.auth import Role
from shared.events import Metadata
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for

LILLE = {
    "organisation_id": "lille",
    "name": "Lille",
    "kind": "municipality",
    "country": "FR",
    "region": "Hauts-de-France",
    "coordinates": {"lat": 50.6292, "lon": 3.0573},
}
CHU_LILLE = {
    "organisation_id": "chu-lille",
    "name": "CHU de Lille",
    "kind": "hospital",
    "country": "FR",
    "region": "Hauts-de-France",
    "parent_id": "lille",
}
KHARKIV = {
    "organisation_id": "kharkiv",
    "name": "Kharkiv",
    "kind": "municipality",
    "country": "UA",
    "region": "Kharkiv Oblast",
    "aliases": ["Charkiw", "Kharkov", "Kharkow"],
    "coordinates": {"lat": 49.9935, "lon": 36.2304},
}
LEEDS = {
    "organisation_id": "leeds",
    "name": "Leeds",
    "kind": "municipality",
    "country": "GB",
    "region": "West Yorkshire",
}
BRNO = {"organisation_id": "brno", "name": "Brno", "kind": "municipality", "country": "CZ"}
LUBLIN = {"organisation_id": "lublin", "name": "Lublin", "kind": "municipality", "country": "PL"}
DUSSELDORF = {
    "organisation_id": "dusseldorf",
    "name": "Düsseldorf",
    "kind": "municipality",
    "country": "DE",
    "region": "North Rhine-Westphalia",
}
FASTIV = {
    "organisation_id": "fastiv",
    "name": "Fastiv",
    "kind": "municipality",
    "country": "UA",
    "region": "Kyiv Oblast",
}
DRUSKININKAI = {
    "organisation_id": "druskininkai",
    "name": "Druskininkai",
    "kind": "municipality",
    "country": "LT",
}

# what a registry administrator shows when it records both organisations' agreement
ADMIN_EVIDENCE = {"reference": "council resolutions of both organisations", "note": "on file"}
CONSENTED = ("agreed", "signed")


@dataclass
class RegistryApi:
    """An HTTP client on a registry app with its own database, and keys made on demand."""

    client: httpx.AsyncClient
    app: FastAPI
    url: str
    admin: str
    _keys: dict[tuple[str, Role], str] = field(default_factory=dict)

    async def key(self, organisation: str, role: Role) -> str:
        if (organisation, role) not in self._keys:
            self._keys[organisation, role] = await issue_key(
                self.url, organisation=organisation, roles=[role]
            )
        return self._keys[organisation, role]

    async def as_(self, organisation: str, role: Role) -> dict[str, str]:
        return self.bearer(await self.key(organisation, role))

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def as_admin(self) -> dict[str, str]:
        return self.bearer(self.admin)

    async def register(self, *organisations: dict[str, Any]) -> None:
        for organisation in organisations:
            response = await self.client.post(
                "/v1/organisations", json=organisation, headers=self.as_admin
            )
            assert response.status_code == 201, response.text

    async def propose(self, **body: Any) -> str:
        response = await self.client.post("/v1/partnerships", json=body, headers=self.as_admin)
        assert response.status_code == 201, response.text
        partnership_id: str = response.json()["partnership_id"]
        return partnership_id

    async def move(self, partnership_id: str, to: str, occurred_at: str | None = None) -> None:
        """As a registry administrator: to agreed or signed with evidence of both agreements."""
        body: dict[str, Any] = {"to": to}
        if occurred_at is not None:
            body["occurred_at"] = occurred_at
        if to in CONSENTED:
            body["evidence"] = ADMIN_EVIDENCE
        response = await self.client.post(
            f"/v1/partnerships/{partnership_id}/transitions", json=body, headers=self.as_admin
        )
        assert response.status_code == 200, response.text

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        """The data of every recorded event of this type, in the order recorded."""
        conn = await asyncpg.connect(self.url)
        try:
            rows = await conn.fetch(
                "SELECT data FROM events WHERE event_type = $1 ORDER BY id", event_type
            )
        finally:
            await conn.close()
        return [json.loads(r["data"]) for r in rows]

    async def count(self, table: str = "events") -> int:
        conn = await asyncpg.connect(self.url)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()


@pytest.fixture
async def api(pg_server: str) -> AsyncIterator[RegistryApi]:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        app = create_app(settings_for(url))
        async with app.router.lifespan_context(app):
            admin = await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield RegistryApi(client, app, url, admin)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["type"] and body["detail"]
    return body


BATCHED_AT = datetime(2026, 11, 24, tzinfo=UTC)
BATCHED_BY = Metadata(actor="admin", organisation="twinaid")


def prepared(slug: str, name: str, **extra: Any) -> handlers.Batched:
    """A registration in Ukraine as a group commit hands it to handlers.register_together."""
    registration = domain.RegisterOrganisation(
        organisation_id=slug,
        name=name,
        kind=domain.OrganisationKind.MUNICIPALITY,
        country="UA",
        **extra,
    )
    return handlers.Batched(commands.RegisterOrganisation(registration), BATCHED_BY, BATCHED_AT)
