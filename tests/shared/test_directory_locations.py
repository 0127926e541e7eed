"""Where organisations are reaches the consumers: the registry's coordinates, from its own
handlers through its signed relay and the real broker, into the directories of pledges and
shipments (registrations and corrections, a clearing included); an authentic correction whose
coordinates are not a latitude and longitude is quarantined by both; and `twinaid audit
compare` rebuilds both directories from the registry's log exactly as they are."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from services.audit import copies, sources
from services.pledges import subscriptions as pledges_subscriptions
from services.registry import commands as registry_commands
from services.registry import domain as registry_domain
from services.registry import handlers as registry_handlers
from services.registry.app import create_app as registry_app
from services.shipments import subscriptions as shipments_subscriptions
from shared import db as dbmod
from shared import directory as directory_model
from shared import kafka
from shared.auth import Role
from shared.consumer import ConsumerRunner, Handler
from shared.db import Database
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.keys import KeyRing
from shared.metrics import Metrics
from shared.outbox import Relay
from shared.settings import Settings
from shared.signing import Signer
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for
from tests.shared.test_consumer import NOW, wait_for
from tests.shared.test_consumer_trust import REGISTRY_KEY, REGISTRY_KEY_FILE, SERVICES

PINS = {
    "registry": [REGISTRY_KEY.public_key],
    "pledges": [Signer.generate().public_key],
    "shipments": [Signer.generate().public_key],
}
META = Metadata(actor="admin", organisation="twinaid", correlation_id="corr-located")
CONSUMERS = ("pledges", "shipments")
HANDLERS: dict[str, dict[str, dict[str, Handler]]] = {
    "pledges": pledges_subscriptions.HANDLERS,
    "shipments": shipments_subscriptions.HANDLERS,
}


@dataclass
class Rig:
    registry: Settings
    registry_db: Database
    relay: Relay
    urls: dict[str, str]  # consumer -> its database
    runners: dict[str, ConsumerRunner]
    bootstrap: str


@pytest.fixture
async def rig(pg_server: str, kafka_bootstrap: str) -> AsyncIterator[Rig]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    async with (
        fresh_database(pg_server, dbmod.schema_text("services.registry")) as reg_url,
        fresh_database(
            pg_server, directory_model.SCHEMA, dbmod.schema_text("services.pledges")
        ) as pl_url,
        fresh_database(
            pg_server, directory_model.SCHEMA, dbmod.schema_text("services.shipments")
        ) as sh_url,
    ):
        urls = {"pledges": pl_url, "shipments": sh_url}
        reg = settings_for(
            reg_url,
            kafka_bootstrap,
            kafka_topic_prefix=prefix,
            checkpoint_interval=0,
            signing_key_file=str(REGISTRY_KEY_FILE),
        )
        topics = [reg.topic(s) for s in ("registry", "pledges", "shipments")]
        await kafka.ensure_topics(reg, [*topics, *(t + ".dlq" for t in topics)])
        app = registry_app(reg)
        async with app.router.lifespan_context(app), contextlib.AsyncExitStack() as stack:
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
            stack.push_async_callback(http.aclose)
            reg_db = Database(reg_url, max_size=3)
            await reg_db.open()
            stack.push_async_callback(reg_db.close)
            runners: dict[str, ConsumerRunner] = {}
            for service in CONSUMERS:
                token = await issue_key(reg_url, organisation=service, roles=[Role.SERVICE])
                db = Database(urls[service], max_size=3)
                await db.open()
                stack.push_async_callback(db.close)
                runners[service] = ConsumerRunner(
                    service=service,
                    settings=settings_for(
                        urls[service],
                        kafka_bootstrap,
                        kafka_topic_prefix=prefix,
                        upstream_feeds={"registry": "http://registry"},
                        feed_api_key=token,
                        trusted_keys=PINS,
                    ),
                    db=db,
                    metrics=Metrics(service),
                    handlers=HANDLERS[service],
                    http=http,
                    contracts={u: SERVICES / u / "schemas" for u in ("registry", "pledges")},
                )
                await runners[service].epoch.mark()
            relay = Relay(
                service="registry",
                settings=reg,
                db=reg_db,
                metrics=Metrics("r"),
                signer=REGISTRY_KEY,
            )
            yield Rig(reg, reg_db, relay, urls, runners, kafka_bootstrap)


async def register(rig: Rig, slug: str, name: str, coordinates: dict[str, float] | None) -> None:
    async with rig.registry_db.transaction() as conn:
        await registry_handlers.run(
            conn,
            registry_commands.RegisterOrganisation(
                registry_domain.RegisterOrganisation(
                    organisation_id=slug,
                    name=name,
                    kind=registry_domain.OrganisationKind.MUNICIPALITY,
                    country="UA",
                    coordinates=coordinates,
                )
            ),
            metadata=META,
            now=NOW,
        )


async def correct(rig: Rig, slug: str, **changes: Any) -> None:
    async with rig.registry_db.transaction() as conn:
        await registry_handlers.run(
            conn,
            registry_commands.CorrectOrganisation(
                slug, registry_domain.CorrectOrganisation(changes=changes, reason="surveyed")
            ),
            metadata=META,
            now=NOW,
        )


async def forged_in_the_log(rig: Rig, slug: str, changes: dict[str, Any]) -> None:
    """An authentic (signed, chained) correction the registry's domain would never decide:
    written straight into its log."""
    async with rig.registry_db.transaction() as conn:
        store = PostgresEventStore(conn)
        version = len(await store.read_stream(f"organisation-{slug}"))
        await store.append(
            stream_type="organisation",
            stream_id=f"organisation-{slug}",
            expected_version=version,
            events=[
                NewEvent(
                    "registry.organisation-corrected",
                    {
                        "organisation_id": slug,
                        "changes": changes,
                        "previous": {"coordinates": None},
                        "reason": "forged",
                    },
                    occurred_at=NOW,
                )
            ],
            metadata=META,
            now=NOW,
        )


async def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def places(url: str) -> dict[str, tuple[float | None, float | None]]:
    rows = await fetch(url, "SELECT organisation_id, lat, lon FROM directory")
    return {r["organisation_id"]: (r["lat"], r["lon"]) for r in rows}


async def compare(rig: Rig, service: str, pg_server: str) -> copies.Copies:
    """`twinaid audit compare --source kafka` for `service`."""

    def events_of(upstream: str) -> Any:
        return sources.from_kafka(
            rig.bootstrap,
            rig.registry.topic(upstream),
            keys=KeyRing.pinned(PINS),
            named=lambda _: None,
            idle_ms=1000,
        )

    return await copies.compare(
        service,
        live_url=rig.urls[service],
        scratch_server=pg_server,
        events_of=events_of,
        pins=PINS,
    )


LILLE = {"lat": 50.6292, "lon": 3.0573}
KHARKIV = {"lat": 49.9935, "lon": 36.2304}
LEEDS = {"lat": 53.8008, "lon": -1.5491}
BUCHA = {"lat": 50.5436, "lon": 30.2131}


async def test_coordinates_reach_both_directories_through_the_broker_and_compare_agrees(
    rig: Rig, pg_server: str
) -> None:
    await register(rig, "lille", "Lille", LILLE)
    await correct(rig, "lille", kind="region")  # coordinates not among the changes: kept
    await register(rig, "kharkiv", "Kharkiv", None)
    await correct(rig, "kharkiv", coordinates=KHARKIV)  # given later
    await register(rig, "leeds", "Leeds", LEEDS)
    await correct(rig, "leeds", coordinates=None)  # no longer known
    await register(rig, "bucha", "Bucha", BUCHA)
    await forged_in_the_log(rig, "bucha", {"coordinates": {"lat": "north", "lon": 30.2}})
    await forged_in_the_log(rig, "bucha", {"coordinates": {"lat": 95.0, "lon": 30.2}})
    async with rig.registry_db.connection() as conn:
        total = int(await conn.fetchval("SELECT count(*) FROM events"))
    assert total == 9

    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(part.run(stop))
        for part in (rig.relay, *(rig.runners[s] for s in CONSUMERS))
    ]
    try:

        async def everything_seen() -> bool:
            for service in CONSUMERS:
                seen = await fetch(
                    rig.urls[service], "SELECT 1 FROM inbox WHERE upstream = 'registry'"
                )
                if len(seen) < total:
                    return False
            return True

        await wait_for(everything_seen, timeout=60)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    expected = {
        "lille": (LILLE["lat"], LILLE["lon"]),
        "kharkiv": (KHARKIV["lat"], KHARKIV["lon"]),
        "leeds": (None, None),
        "bucha": (BUCHA["lat"], BUCHA["lon"]),  # the forged corrections were not applied
    }
    for service in CONSUMERS:
        assert await places(rig.urls[service]) == expected, service
        parked = await fetch(
            rig.urls[service], "SELECT position, authentic, reason FROM quarantine ORDER BY id"
        )
        assert [(r["position"], r["authentic"]) for r in parked] == [(8, True), (9, True)]
        assert all("not a latitude and longitude in range" in r["reason"] for r in parked)
        kinds = await fetch(rig.urls[service], "SELECT kind FROM directory WHERE lat IS NOT NULL")
        assert sorted(r["kind"] for r in kinds) == ["municipality", "municipality", "region"]
        conn = await asyncpg.connect(rig.urls[service])
        try:
            located = await directory_model.locations(conn, ["lille", "leeds", "nowhere"])
        finally:
            await conn.close()
        assert located == {"lille": LILLE}

    for service in CONSUMERS:
        found = await compare(rig, service, pg_server)
        assert found.rows["directory"] == 4, service
        assert found.differences == [], (service, found.differences)


async def test_compare_sees_coordinates_changed_behind_the_consumer_s_back(
    rig: Rig, pg_server: str
) -> None:
    """The rebuilt copy carries the coordinates too: a directory row moved by hand is named."""
    await register(rig, "kharkiv", "Kharkiv", KHARKIV)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(part.run(stop)) for part in (rig.relay, rig.runners["shipments"])]
    try:

        async def arrived() -> bool:
            return "kharkiv" in await places(rig.urls["shipments"])

        await wait_for(arrived, timeout=60)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    conn = await asyncpg.connect(rig.urls["shipments"])
    try:
        await conn.execute("UPDATE directory SET lat = 48.0 WHERE organisation_id = 'kharkiv'")
    finally:
        await conn.close()
    found = await compare(rig, "shipments", pg_server)
    assert [(d["table"], d["column"], d["live"], d["rebuilt"]) for d in found.differences] == [
        ("directory", "lat", 48.0, KHARKIV["lat"])
    ]
