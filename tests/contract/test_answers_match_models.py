"""What each service answers is what its OpenAPI document declares, on the demo data.

Each service runs in process on a fresh database loaded by its own demo loader (the registry's
organisations and partnerships; the pledges' needs, a money need among them, and pledges; the
shipments' convoys on the pledge lines the pledges demo commits). Then every GET operation is
called with a key that may read everything, for every record of the demo it takes (as of now
and of an earlier instant where it takes `as_of`; list pages with a small limit, and the next
page), and each JSON answer is validated with `jsonschema` against the schema the operation
declares for that status in `app.openapi()`, components resolved. A generated client parses
answers with these schemas: a key declared required that is not sent, a string declared where
an object comes, or null where none is allowed breaks it. The few operations not called are
named in NOT_CALLED with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import jsonschema
import pytest
from fastapi import FastAPI

from services.pledges import demo as pledges_demo
from services.pledges.app import create_app as pledges_app
from services.registry import demo as registry_demo
from services.registry.app import create_app as registry_app
from services.shipments import demo as shipments_demo
from services.shipments import subscriptions as shipments_subscriptions
from services.shipments.app import create_app as shipments_app
from services.shipments.demo.data import CONVOYS
from shared import db as dbmod
from shared import directory, privacy
from shared.auth import Role
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.metrics import Metrics
from shared.testing import fresh_database, issue_key, seal_everything
from tests.conftest import settings_for
from tests.pledges.conftest import seed_registry
from tests.shipments import conftest as shipments_fixtures
from tests.shipments.test_demo_data import LEEDS_LINE, LINES

pytestmark = pytest.mark.once

EARLIER = "2023-03-01T00:00:00+00:00"  # some demo records exist by then, some not yet
# GET operations this test does not call, and why
NOT_CALLED = {
    "getWebhook": "the demo subscribes no webhook (listWebhooks is called: an empty list)",
    "listWebhookDeliveries": "the demo subscribes no webhook",
    "exportIati": "XML, not JSON",
    "streamTrackingUpdates": "a text/event-stream that stays open",
}


@dataclass
class Checker:
    """GETs through one app, each answer validated against what the document declares."""

    app: FastAPI
    client: httpx.AsyncClient  # a registry administrator's key: reads every record
    auditor: dict[str, str]  # the headers of an auditor's key: reads the log and the chain
    failures: list[str] = field(default_factory=list)
    answered: dict[str, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.doc = self.app.openapi()
        self.operations = {
            op["operationId"]: (path, op)
            for path, item in self.doc["paths"].items()
            for method, op in item.items()
            if method == "get"
        }

    async def get(
        self,
        operation_id: str,
        query: dict[str, Any] | None = None,
        *,
        audit: bool = False,
        **ids: str,
    ) -> Any:
        """The JSON answer (None when it is not JSON), its mismatches recorded."""
        path, operation = self.operations[operation_id]
        url = path.format(**{k: quote(v, safe="") for k, v in ids.items()})
        response = await self.client.get(url, params=query, headers=self.auditor if audit else {})
        self.answered.setdefault(operation_id, set()).add(response.status_code)
        where = f"{operation_id} GET {url} {query or ''} -> {response.status_code}"
        declared = operation["responses"].get(str(response.status_code))
        if declared is None:
            self.failures.append(f"{where}: status not declared")
            return None
        media = response.headers.get("content-type", "").split(";")[0]
        content = declared.get("content", {})
        if media not in content:
            self.failures.append(f"{where}: {media} not declared ({sorted(content)})")
            return None
        if not media.endswith("json"):
            return None
        body = response.json()
        schema = {**content[media].get("schema", {}), "components": self.doc["components"]}
        for error in sorted(jsonschema.Draft202012Validator(schema).iter_errors(body), key=str)[:5]:
            at = "/".join(str(p) for p in error.absolute_path)
            self.failures.append(f"{where}: at /{at}: {error.message[:300]}")
        return body

    async def pages(
        self, operation_id: str, query: dict[str, Any] | None = None, **ids: str
    ) -> list[Any]:
        """Every item of a list, two at a time: each page is checked."""
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(100):
            paging = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = await self.get(operation_id, {**(query or {}), **paging}, **ids)
            if not isinstance(page, dict) or "items" not in page:
                break  # a problem: recorded by verdict (never answered 200)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        await self.get(operation_id, query, **ids)  # the default page size
        return items

    async def common(self, *, deep: bool = True) -> None:
        """The operations every service has: probes, feed, audit, contract, webhooks."""
        for operation_id in ("getHealth", "getReadiness", "getAsyncApi", "listWebhooks"):
            await self.get(operation_id)
        await self.get("verifyChain", {"deep": "true"} if deep else None, audit=True)
        events = await self.get("listEvents", {"limit": 20}, audit=True)
        assert events["events"], "sealed events in the feed"
        await self.get("listEvents", {"after": events["next_after"]}, audit=True)
        for stream_id in sorted({e["stream_id"] for e in events["events"]})[:5]:
            await self.get("getStreamHistory", audit=True, stream_id=stream_id)
        everything = await self.get("listEvents", {"limit": 1000}, audit=True)
        subjects = sorted(privacy.subjects_in([e["data"] for e in everything["events"]]))
        if subjects:  # the service records people (the registry's contacts, drivers...)
            await self.get("exportSubject", subject_id=subjects[0])
        listing = await self.get("listEventSchemas")
        for entry in listing["schemas"][:3]:
            await self.get("getEventSchema", name=entry["path"].removeprefix("/schemas/"))

    def verdict(self) -> None:
        """Fails with every mismatch seen; and if an operation was left out or never answered
        200 (then this test proves nothing about it)."""
        uncalled = set(self.operations) - set(self.answered) - set(NOT_CALLED)
        never_ok = sorted(o for o, statuses in self.answered.items() if 200 not in statuses)
        problems = [
            *self.failures,
            *(f"{o}: not called (add it here or to NOT_CALLED)" for o in sorted(uncalled)),
            *(f"{o}: never answered 200 ({sorted(self.answered[o])})" for o in never_ok),
        ]
        assert not problems, "\n".join(problems)


async def _auditor(url: str) -> dict[str, str]:
    """An auditor's key, once the events are sealed (as the relay seals them): the feed and
    the audit routes have something to show."""
    conn = await asyncpg.connect(url)
    try:
        await seal_everything(conn)
    finally:
        await conn.close()
    token = await issue_key(url, organisation="cour-des-comptes", roles=[Role.AUDITOR])
    return {"Authorization": f"Bearer {token}"}


def _client(app: FastAPI, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://t",
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture(scope="module")
async def registry(pg_server: str) -> AsyncIterator[Checker]:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        app = registry_app(settings_for(url, rate_limit_per_second=10_000, rate_limit_burst=10_000))
        async with app.router.lifespan_context(app):
            admin = await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
            async with _client(app, admin) as client:
                await registry_demo.load(client)
                # keys of a demo organisation for listApiKeys and getApiKey
                await issue_key(url, organisation="lille", roles=[Role.ORG_ADMIN])
                await issue_key(url, organisation="lille", roles=[Role.MEMBER])
                yield Checker(app, client, await _auditor(url))


@pytest.fixture(scope="module")
async def pledges(pg_server: str) -> AsyncIterator[Checker]:
    async with fresh_database(
        pg_server, directory.SCHEMA, dbmod.schema_text("services.pledges")
    ) as url:
        app = pledges_app(settings_for(url))
        async with app.router.lifespan_context(app):
            await seed_registry(url)
            admin = await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
            async with _client(app, admin) as client:
                await pledges_demo.load(client)
                yield Checker(app, client, await _auditor(url))


@pytest.fixture(scope="module")
async def shipments(pg_server: str) -> AsyncIterator[Checker]:
    async with fresh_database(pg_server, *shipments_fixtures.SCHEMAS) as url:
        settings = settings_for(url)
        app = shipments_app(settings)
        async with app.router.lifespan_context(app):
            db = Database(url, max_size=2)
            await db.open()
            runner = ConsumerRunner(
                service="shipments",
                settings=settings,
                db=db,
                metrics=Metrics("shipments-test"),
                handlers=shipments_subscriptions.HANDLERS,
            )
            try:
                admin = await issue_key(url, organisation="twinaid", roles=[Role.REGISTRY_ADMIN])
                async with _client(app, admin) as client:
                    fed = shipments_fixtures.ShipmentsApi(client, app, url, runner)
                    await fed.register()
                    for line in [*LINES, LEEDS_LINE]:
                        await fed.pledge_line(**line)
                    await shipments_demo.load(client, wait=1, settled_after=0)
                    yield Checker(app, client, await _auditor(url))
            finally:
                await db.close()


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def test_every_registry_answer_matches_its_declared_schema(registry: Checker) -> None:
    organisations = await registry.pages("searchOrganisations")
    assert len(organisations) >= len(registry_demo.ORGANISATIONS)
    for org in organisations:
        oid = org["organisation_id"]
        await registry.get("getOrganisation", organisation_id=oid)
        await registry.get("getOrganisation", {"as_of": EARLIER}, organisation_id=oid)
        await registry.get("getOrganisationNetwork", organisation_id=oid)
        one = await registry.get("getOrganisationNetwork", {"limit": 1}, organisation_id=oid)
        if one and one["next_cursor"]:  # the next page too
            query = {"limit": 1, "cursor": one["next_cursor"]}
            await registry.get("getOrganisationNetwork", query, organisation_id=oid)
    partnerships = await registry.pages("listPartnerships")
    assert len(partnerships) == len(registry_demo.PARTNERSHIPS)
    for partnership in partnerships:
        pid = partnership["partnership_id"]
        await registry.get("getPartnership", partnership_id=pid)
        await registry.get("getPartnership", {"as_of": _now()}, partnership_id=pid)
        await registry.get("getPartnership", {"as_of": EARLIER}, partnership_id=pid)
    keys = await registry.pages("listApiKeys", {"include_revoked": "true"}, organisation_id="lille")
    assert len(keys) == 2
    for key in keys:
        await registry.get("getApiKey", organisation_id="lille", key_id=key["key_id"])
    await registry.common()
    registry.verdict()


async def test_every_pledges_answer_matches_its_declared_schema(pledges: Checker) -> None:
    needs = await pledges.pages("listNeeds")
    assert any("amount" in n["target"] for n in needs), "the demo has a money need"
    for need in needs:
        nid = need["need_id"]
        now = await pledges.get("getNeed", need_id=nid)
        then = await pledges.get("getNeed", {"as_of": _now()}, need_id=nid)
        # the same keys as the current read (and what it was stated as then)
        if set(then) != {*now, "state", "as_of"} or then.get("target") != now["target"]:
            pledges.failures.append(f"getNeed {nid} as_of: {sorted(then)} vs {sorted(now)}")
        await pledges.get("getNeed", {"as_of": EARLIER}, need_id=nid)
        await pledges.get("getNeedHistory", need_id=nid)
        one = await pledges.get("getNeedHistory", {"limit": 1}, need_id=nid)
        if one and one["next_after"]:  # the next page too
            query = {"limit": 1, "after": one["next_after"]}
            await pledges.get("getNeedHistory", query, need_id=nid)
    for status in ("open", "partly_covered", "covered"):
        await pledges.get("listNeeds", {"status": status})
    made = await pledges.pages("listPledges")
    assert made
    for pledge in made:
        pid = pledge["pledge_id"]
        await pledges.get("getPledge", pledge_id=pid)
        await pledges.get("getPledge", {"as_of": _now()}, pledge_id=pid)
        await pledges.get("getPledge", {"as_of": EARLIER}, pledge_id=pid)
        await pledges.get("getPledgeHistory", pledge_id=pid)
        one = await pledges.get("getPledgeHistory", {"limit": 1}, pledge_id=pid)
        if one and one["next_after"]:  # the next page too
            query = {"limit": 1, "after": one["next_after"]}
            await pledges.get("getPledgeHistory", query, pledge_id=pid)
    for report in ("getNeedsReport", "getPledgesReport", "getTotalsReport"):
        await pledges.get(report)
        await pledges.get(report, {"convert_to": "EUR", "rate": ["GBP:1.17", "UAH:0.025"]})
        page = await pledges.get(report, {"limit": 1})
        assert page["next_cursor"], f"{report}: the demo fills more than one page of one"
        await pledges.get(report, {"limit": 1, "cursor": page["next_cursor"]})
    await pledges.get("getReference")
    await pledges.common()
    pledges.verdict()


async def test_every_shipments_answer_matches_its_declared_schema(shipments: Checker) -> None:
    convoys = await shipments.pages("listConvoys")
    assert len(convoys) == len(CONVOYS)
    for convoy in convoys:
        cid = convoy["convoy_id"]
        await shipments.get("getConvoy", convoy_id=cid)
        await shipments.get("getConvoy", {"as_of": _now()}, convoy_id=cid)
        await shipments.get("getConvoy", {"as_of": EARLIER}, convoy_id=cid)
        await shipments.get("exportConvoyEpcis", convoy_id=cid)
        await shipments.get("getConvoyTimeline", convoy_id=cid)
        await shipments.get("getConvoyTimeline", {"limit": 2}, convoy_id=cid)
        await shipments.pages("listManifestLines", convoy_id=cid)
    lines = await shipments.pages("listPledgeLines")
    assert lines
    for line in lines:
        await shipments.get("getPledgeLine", pledge_id=line["pledge_id"], line_id=line["line_id"])
    for operation_id in ("listInTransit", "listDiscrepancies", "listDeliveries"):
        await shipments.pages(operation_id)
    for operation_id in ("getBoardConfig", "getWhoAmI"):
        await shipments.get(operation_id)
    await shipments.common()
    shipments.verdict()
