"""`twinaid audit trace` of a need or a pledge tells the whole story: the need, the pledge and
its commitment in pledges, then the road of the convoy that carried its line in shipments
(planned, loaded, dispatched, checkpoint, border, custody hand-off, incident, arrival,
delivery), in time order, with who recorded each step. Both services run in process on real
PostgreSQL; shipments learns the pledge line from pledges' own feed, as its worker does."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import httpx
import pytest

from services.audit import sources, trace
from services.pledges.app import create_app as pledges_app
from services.shipments import subscriptions
from services.shipments.app import create_app as shipments_app
from shared import auth, directory
from shared import db as dbmod
from shared.auth import Role
from shared.consumer import ConsumerRunner, Incoming
from shared.db import Database
from shared.metrics import Metrics
from shared.testing import fresh_database, issue_key, seal_everything
from tests.conftest import settings_for
from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, generators_pledge, seed_registry
from tests.shipments.conftest import SCHEMAS, ShipmentsApi, entry

NEED = GENERATORS_NEED["need_id"]
PLEDGE = "lille-generators"
OTHER = "lille-blankets"  # another pledge of Lille to Kharkiv, answering no need
FEEDS = {"pledges": "http://pledges", "shipments": "http://shipments"}


@dataclass
class Story:
    pledges: PledgesApi
    shipments: ShipmentsApi
    client: httpx.AsyncClient  # reaches both services, by host
    auditor: str


async def seal(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await seal_everything(conn)
    finally:
        await conn.close()


async def pledges_side(api: PledgesApi) -> None:
    need = {**GENERATORS_NEED, "occurred_at": "2022-05-20T10:00:00+03:00"}
    await api.ok("/v1/needs", need, by="kharkiv", **{"X-Correlation-ID": NEED})
    ours = generators_pledge(pledge_id=PLEDGE, commit=True, occurred_at="2022-05-25T10:00:00Z")
    await api.ok("/v1/pledges", ours, by="lille")
    other = generators_pledge(pledge_id=OTHER, commit=True, occurred_at="2022-05-26T10:00:00Z")
    other["lines"][0] |= {"line_id": "blankets", "item": "Wool blankets", "need_id": None}
    other["lines"][0] |= {"category": "shelter", "weight_kg": "200"}
    await api.ok("/v1/pledges", other, by="lille", **{"X-Correlation-ID": "blankets"})


async def shipments_learn_the_lines(story: Story) -> None:
    """What the shipments worker does when it catches up from pledges' feed."""
    await seal(story.pledges.url)
    async for e in sources.from_feed(story.client, FEEDS["pledges"], key=story.auditor):
        if e.event_type == subscriptions.PLEDGE_LINE_UPDATED:
            assert e.position is not None
            await story.shipments.runner.apply(
                Incoming(
                    upstream="pledges",
                    event_id=e.event_id,
                    position=e.position,
                    event_type=e.event_type,
                    stream_id=e.stream_id,
                    stream_version=e.stream_version,
                    occurred_at=e.occurred_at,
                    data=e.data,
                    correlation_id=e.metadata.correlation_id,
                    organisation=e.metadata.organisation,
                )
            )


async def the_road(api: ShipmentsApi) -> None:
    """c1 carries our generators and the other pledge's blankets; c2 only blankets."""
    await api.plan("c1")
    for manifest_line, pledge, line in (("m1", PLEDGE, "generators"), ("m2", OTHER, "blankets")):
        loaded = await api.load(manifest_line_id=manifest_line, pledge_id=pledge, line_id=line)
        assert loaded.status_code == 201, loaded.text
    driver = {"organisation_id": "transports-nord", "person": {"name": "Karim Benali"}}
    road = await api.entries(
        "c1",
        entry("dispatch", "2022-06-07T06:10:00+02:00", "d", custody=driver),
        entry("checkpoint", "2022-06-08T12:00:00+02:00", "k", place="Kraków"),
        entry(
            "border_crossing",
            "2022-06-09T08:00:00+03:00",
            "b",
            crossing_point="Korczowa - Krakovets",
            outcome="cleared",
        ),
        entry(
            "custody_handoff",
            "2022-06-09T12:00:00+03:00",
            "h",
            from_party=driver,
            to_party={"organisation_id": "ukrposhta", "person": {"name": "Ihor Petrenko"}},
        ),
        entry(
            "incident",
            "2022-06-09T18:00:00+03:00",
            "i",
            incident="delay",
            description="queue at a fuel station",
            delay_minutes=90,
        ),
        entry("arrival", "2022-06-10T10:00:00+03:00", "a", place="Kharkiv"),
    )
    assert road.status_code == 200, road.text
    confirmed = await api.client.post(
        "/v1/convoys/c1/delivery",
        json={
            "receiver": {"name": "Natalia Koval", "role": "warehouse manager"},
            "lines": [
                {"manifest_line_id": "m1", "received": "10", "damaged": "0", "short": "0"},
                {"manifest_line_id": "m2", "received": "10", "damaged": "0", "short": "0"},
            ],
            "occurred_at": "2022-06-10T12:00:00+03:00",
        },
        headers=await api.as_("kharkiv", Role.MEMBER),
    )
    assert confirmed.status_code == 201, confirmed.text
    await api.plan("c2", reference="blankets only")
    assert (
        await api.load("c2", manifest_line_id="m1", pledge_id=OTHER, line_id="blankets")
    ).is_success
    assert (
        await api.entries("c2", entry("dispatch", "2022-06-07T07:00:00+02:00", "d2"))
    ).is_success
    await seal(api.url)


@pytest.fixture
async def story(pg_server: str) -> AsyncIterator[Story]:
    async with (
        fresh_database(pg_server, directory.SCHEMA, dbmod.schema_text("services.pledges")) as p_url,
        fresh_database(pg_server, *SCHEMAS) as s_url,
    ):
        p_app, s_app = pledges_app(settings_for(p_url)), shipments_app(settings_for(s_url))
        async with p_app.router.lifespan_context(p_app), s_app.router.lifespan_context(s_app):
            await seed_registry(p_url)
            db = Database(s_url, max_size=2)
            await db.open()
            runner = ConsumerRunner(
                service="shipments",
                settings=settings_for(s_url),
                db=db,
                metrics=Metrics("shipments-test"),
                handlers=subscriptions.HANDLERS,
            )
            p_transport = httpx.ASGITransport(app=p_app, raise_app_exceptions=False)
            s_transport = httpx.ASGITransport(app=s_app, raise_app_exceptions=False)
            mounts = {FEEDS["pledges"]: p_transport, FEEDS["shipments"]: s_transport}
            try:
                async with (
                    httpx.AsyncClient(transport=p_transport, base_url=FEEDS["pledges"]) as p,
                    httpx.AsyncClient(transport=s_transport, base_url=FEEDS["shipments"]) as s,
                    httpx.AsyncClient(mounts=mounts) as both,
                ):
                    auditor = await issue_key(p_url, organisation="audit", roles=[Role.AUDITOR])
                    conn = await asyncpg.connect(s_url)
                    try:
                        await auth.issue(
                            conn, organisation="audit", roles=[Role.AUDITOR], token=auditor
                        )
                    finally:
                        await conn.close()
                    shipments = ShipmentsApi(s, s_app, s_url, runner)
                    await shipments.register()
                    yield Story(PledgesApi(p, p_app, p_url), shipments, both, auditor)
            finally:
                await db.close()


SUBJECT = re.compile(r"shipments-[0-9a-f]{32}")
ROAD = [
    ("shipments.convoy-planned", "lille", "lille -> kharkiv by transports-nord"),
    ("shipments.manifest-line-loaded", "lille", f"10 pieces of {PLEDGE}/generators"),
    ("shipments.convoy-dispatched", "transports-nord", "held by transports-nord (<person>)"),
    ("shipments.checkpoint-recorded", "transports-nord", "Kraków"),
    ("shipments.border-crossed", "transports-nord", "Korczowa - Krakovets: cleared"),
    (
        "shipments.custody-handed-off",
        "transports-nord",
        "transports-nord (<person>) -> ukrposhta (<person>)",
    ),
    ("shipments.incident-reported", "transports-nord", "delay: queue at a fuel station"),
    ("shipments.convoy-arrived", "transports-nord", "Kharkiv"),
    (
        "shipments.delivery-confirmed",
        "kharkiv",
        "confirmed by <person> (warehouse manager)",
    ),
]


@pytest.mark.parametrize("target", [NEED, PLEDGE])
async def test_tracing_a_need_or_a_pledge_includes_the_road_of_the_convoy_that_carried_it(
    story: Story, target: str
) -> None:
    await pledges_side(story.pledges)
    await shipments_learn_the_lines(story)
    await the_road(story.shipments)

    steps = [
        s.as_dict()
        for s in await trace.trace(story.client, FEEDS, key=story.auditor, target=target)
    ]

    road = [s for s in steps if s["service"] == "shipments"]
    # the feed holds people sealed (shared/privacy.py): the trace names them by subject
    assert [
        (s["event_type"], s["organisation"], SUBJECT.sub("<person>", s["what"])) for s in road
    ] == ROAD
    assert {s["stream_id"] for s in road} == {"convoy-c1"}  # not c2, not the blankets' load
    assert all(s["actor"] for s in steps)
    instants = [datetime.fromisoformat(s["occurred_at"]) for s in steps]
    assert instants == sorted(instants)
    story_types = [s["event_type"] for s in steps]
    assert story_types.index("pledges.pledge-committed") < story_types.index(ROAD[0][0])
    if target == NEED:
        assert story_types[0] == "pledges.need-posted"


async def test_the_printed_trace_says_what_happened_at_each_step_and_who_recorded_it(
    story: Story,
) -> None:
    await pledges_side(story.pledges)
    await shipments_learn_the_lines(story)
    await the_road(story.shipments)

    printed = trace.table(
        await trace.trace(story.client, FEEDS, key=story.auditor, target=PLEDGE)
    ).splitlines()

    border = next(line for line in printed if "shipments.border-crossed" in line)
    assert "convoy-c1" in border and "transports-nord (" in border
    assert border.endswith(": Korczowa - Krakovets: cleared")
    assert any(line.endswith(": Kharkiv") for line in printed)
