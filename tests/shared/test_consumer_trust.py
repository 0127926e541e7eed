"""Consumers apply only authentic upstream events (issue 17): each attack of the issue against
the real broker and PostgreSQL ends with nothing forged applied, the authentic event applied and
the forgery in quarantine with its reason.

The registry's relay signs with the registry's key; the pledges consumer trusts the registry's
and shipments' keys only (each its own), and an attacker holds a key of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from services.audit import copies, sources
from services.pledges import subscriptions
from services.pledges.app import create_app as pledges_app
from services.registry.app import create_app as registry_app
from shared import authenticity, chain, kafka
from shared import db as dbmod
from shared import directory as directory_model
from shared.auth import Role
from shared.chain import GENESIS
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent, RecordedEvent
from shared.incoming import parse_record
from shared.keys import KEY_CHANGED, KeyRing
from shared.metrics import Metrics
from shared.outbox import Relay
from shared.routes import event_json
from shared.signing import Signer
from shared.testing import fresh_database, issue_key, seal_everything
from tests.conftest import published_headers, settings_for
from tests.pledges.conftest import (
    GENERATORS_NEED,
    PledgesApi,
    generators_pledge,
    seed_registry,
)
from tests.pledges.test_broker import delivery_event
from tests.shared.kafka_helpers import produce
from tests.shared.test_consumer import NOW, Rig, directory, register, wait_for

REGISTRY_KEY = Signer.generate()
# the registry's worker and API share its key: the relay signs what it publishes, the API the
# last event of each page of its feed
REGISTRY_KEY_FILE = Path(tempfile.mkdtemp(prefix="twinaid-trust-")) / "registry.ed25519"
REGISTRY_KEY.save(REGISTRY_KEY_FILE)
SHIPMENTS_KEY = Signer.generate()
ATTACKER = Signer.generate()
SERVICES = Path(__file__).resolve().parents[2] / "services"
PINS = {"registry": [REGISTRY_KEY.public_key], "shipments": [SHIPMENTS_KEY.public_key]}


@pytest.fixture
async def rig(pg_server: str, kafka_bootstrap: str) -> AsyncIterator[Rig]:
    async with trust_rig(pg_server, kafka_bootstrap) as r:
        yield r


@contextlib.asynccontextmanager
async def trust_rig(pg_server: str, kafka_bootstrap: str) -> AsyncIterator[Rig]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    pins = PINS
    async with (
        fresh_database(pg_server, dbmod.schema_text("services.registry")) as reg_url,
        fresh_database(
            pg_server, directory_model.SCHEMA, dbmod.schema_text("services.pledges")
        ) as pl_url,
    ):
        token = await issue_key(reg_url, organisation="pledges", roles=[Role.SERVICE])
        reg = settings_for(
            reg_url,
            kafka_bootstrap,
            kafka_topic_prefix=prefix,
            checkpoint_interval=0,
            signing_key_file=str(REGISTRY_KEY_FILE),
        )
        pl = settings_for(
            pl_url,
            kafka_bootstrap,
            kafka_topic_prefix=prefix,
            upstream_feeds={"registry": "http://registry"},
            feed_api_key=token,
            trusted_keys=pins,
        )
        topics = [reg.topic(s) for s in ("registry", "shipments")]
        await kafka.ensure_topics(reg, [*topics, *(t + ".dlq" for t in topics)])
        app = registry_app(reg)
        async with app.router.lifespan_context(app):
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
            reg_db, pl_db = Database(reg_url, max_size=3), Database(pl_url, max_size=3)
            await reg_db.open()
            await pl_db.open()
            runner = ConsumerRunner(
                service="pledges",
                settings=pl,
                db=pl_db,
                metrics=Metrics("pledges"),
                handlers=subscriptions.HANDLERS,
                http=http,
                contracts={u: SERVICES / u / "schemas" for u in ("registry", "shipments")},
            )
            relay = Relay(
                service="registry",
                settings=reg,
                db=reg_db,
                metrics=Metrics("r"),
                signer=REGISTRY_KEY,
            )
            await runner.epoch.mark()
            try:
                yield Rig(reg, pl, reg_db, pl_db, runner, relay, kafka_bootstrap)
            finally:
                await http.aclose()
                await reg_db.close()
                await pl_db.close()


def organisation(slug: str, name: str, position: int, **data: Any) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_type="organisation",
        stream_id=f"organisation-{slug}",
        stream_version=1,
        event_type="registry.organisation-registered",
        schema_version=1,
        occurred_at=NOW,
        recorded_at=NOW,
        data={
            "organisation_id": slug,
            "name": name,
            "kind": "municipality",
            "country": "UA",
            **data,
        },
        metadata=Metadata(actor="admin", organisation="twinaid", correlation_id="corr-1"),
        position=position,
    )


async def send(
    rig: Rig,
    service: str,
    event: RecordedEvent,
    *,
    previous: bytes = GENESIS,
    signer: Signer,
    **changes: bytes | None,
) -> bytes:
    """Publish `event` on `service`'s topic as a relay holding `signer` would, with header
    `changes` (None drops a header); returns its chain hash."""
    headers, hashed = published_headers(service, event, previous=previous, signer=signer)
    headers = [(k, v) for k, v in headers if k not in changes]
    headers += [(k, v) for k, v in changes.items() if v is not None]
    await produce(
        rig.bootstrap,
        rig.registry.topic(service),
        value=json.dumps(event.data).encode(),
        key=event.stream_id.encode(),
        headers=headers,
    )
    return hashed


async def head_hash(rig: Rig) -> tuple[int, bytes]:
    async with rig.registry_db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT position, hash FROM event_chain ORDER BY position DESC LIMIT 1"
        )
    assert row is not None
    return int(row["position"]), bytes(row["hash"])


async def quarantined(rig: Rig) -> list[dict[str, Any]]:
    async with rig.pledges_db.connection() as conn:
        rows = await conn.fetch(
            "SELECT upstream, topic, position, event_id, reason, authentic, partition,"
            ' "offset" FROM quarantine ORDER BY id'
        )
    return [dict(r) for r in rows]


async def inbox(rig: Rig, upstream: str = "registry") -> dict[int, str]:
    async with rig.pledges_db.connection() as conn:
        rows = await conn.fetch(
            "SELECT position, event_id FROM inbox WHERE upstream = $1", upstream
        )
    return {int(r["position"]): str(r["event_id"]) for r in rows}


async def registry_ids(rig: Rig) -> dict[int, str]:
    async with rig.registry_db.connection() as conn:
        rows = await conn.fetch("SELECT position, event_id FROM event_chain")
    return {int(r["position"]): str(r["event_id"]) for r in rows}


@contextlib.asynccontextmanager
async def running(rig: Rig) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p.run(stop)) for p in (rig.relay, rig.runner)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def audited(rig: Rig, service: str) -> tuple[dict[int, str], set[tuple[Any, ...]]]:
    """What `twinaid audit replay --source kafka` reads of the topic: the authentic events
    ({position: event id}) and the messages it names as not authentic."""
    named: list[sources.Rejected] = []
    events = sources.from_kafka(
        rig.bootstrap,
        rig.registry.topic(service),
        keys=KeyRing.pinned(PINS),
        named=named.append,
        idle_ms=1000,
    )
    read = {e.position or 0: str(e.event_id) async for e in events}
    return read, {(n.topic, n.partition, n.offset, n.position, n.reason) for n in named}


async def compared(rig: Rig, pg_server: str) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """What `twinaid audit compare --source kafka` says of pledges' copies of upstream facts:
    rows rebuilt per table from the upstreams' authentic events, and every difference."""

    def events_of(upstream: str) -> Any:
        return sources.from_kafka(
            rig.bootstrap,
            rig.registry.topic(upstream),
            keys=KeyRing.pinned(PINS),
            named=lambda _: None,
            idle_ms=1000,
        )

    found = await copies.compare(
        "pledges",
        live_url=rig.pledges.database_url,
        scratch_server=pg_server,
        events_of=events_of,
        pins=PINS,
    )
    return found.rows, found.differences


def as_named(rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(r["topic"], r["partition"], r["offset"], r["position"], r["reason"]) for r in rows}


async def settled(rig: Rig, names: dict[str, str], quarantine: int) -> None:
    async def done() -> bool:
        return await directory(rig) == names and rig.runner.quarantined >= quarantine

    await wait_for(done, timeout=60)


async def test_forged_and_overwriting_registrations_and_a_spoofed_source_are_quarantined(
    rig: Rig,
    pg_server: str,
) -> None:
    await register(rig, "kharkiv", "Kharkiv")
    await register(rig, "bucha", "Bucha")
    async with running(rig):
        await settled(rig, {"kharkiv": "Kharkiv", "bucha": "Bucha"}, 0)
        position, hashed = await head_hash(rig)
        # a registration the registry never made, well linked, signed by the attacker's key
        atlantis = organisation("atlantis", "Atlantis", position + 1)
        await send(rig, "registry", atlantis, previous=hashed, signer=ATTACKER)
        # Bucha overwritten, with a zero chain hash and no signature
        hacked = organisation("bucha", "Hacked", position + 1, country="RU")
        await send(
            rig,
            "registry",
            hacked,
            previous=hashed,
            signer=REGISTRY_KEY,
            ce_chainhash=b"0" * 64,
            ce_signature=None,
        )
        # shipments' key, its source header, on the registry's topic
        shipped = organisation("shipped", "Shipped", position + 1)
        await send(
            rig,
            "registry",
            shipped,
            previous=hashed,
            signer=SHIPMENTS_KEY,
            ce_source=b"/twinaid/shipments",
        )
        await register(rig, "irpin", "Irpin")
        await settled(rig, {"kharkiv": "Kharkiv", "bucha": "Bucha", "irpin": "Irpin"}, 3)
    assert await inbox(rig) == await registry_ids(rig), "every real event applied, only they"
    forged = await quarantined(rig)
    assert [f["position"] for f in forged] == [position + 1] * 3
    assert all(f["topic"] == rig.registry.topic("registry") and not f["authentic"] for f in forged)
    assert all(f["partition"] is not None and f["offset"] is not None for f in forged)
    assert await audited(rig, "registry") == (await registry_ids(rig), as_named(forged))
    reasons = {f["event_id"]: f["reason"] for f in forged}
    assert reasons == {
        str(atlantis.event_id): f"key {ATTACKER.public_key} is neither pinned nor announced"
        " for registry",
        str(hacked.event_id): "the chain hash does not match the event and its previous hash",
        str(shipped.event_id): f"key {SHIPMENTS_KEY.public_key} is neither pinned nor"
        " announced for registry",
    }
    rows, differences = await compared(rig, pg_server)
    assert (rows["directory"], differences) == (3, []), "compare: the copies are the registry's"


async def test_forgeries_at_the_next_positions_do_not_displace_the_real_events(
    rig: Rig,
    pg_server: str,
) -> None:
    await register(rig, "kharkiv", "Kharkiv")
    async with running(rig):
        await settled(rig, {"kharkiv": "Kharkiv"}, 0)
        position, hashed = await head_hash(rig)
        for n in (1, 2):  # an unknown type at the next two positions, chained, before the real
            forged = replace(organisation("x", "X", position + n), event_type="registry.noise")
            hashed = await send(rig, "registry", forged, previous=hashed, signer=ATTACKER)
        await register(rig, "lviv", "Lviv")
        await register(rig, "odesa", "Odesa")
        await settled(rig, {"kharkiv": "Kharkiv", "lviv": "Lviv", "odesa": "Odesa"}, 2)
    assert await inbox(rig) == await registry_ids(rig)
    forged = await quarantined(rig)
    assert [f["position"] for f in forged] == [position + 1, position + 2]
    assert await audited(rig, "registry") == (await registry_ids(rig), as_named(forged))
    rows, differences = await compared(rig, pg_server)
    assert (rows["directory"], differences) == (3, [])


async def test_a_far_future_position_leaves_no_gap_and_an_oversize_one_is_not_read(
    rig: Rig,
    pg_server: str,
) -> None:
    await register(rig, "kharkiv", "Kharkiv")
    async with running(rig):
        await settled(rig, {"kharkiv": "Kharkiv"}, 0)
        far = organisation("far", "Far", 1_000_000_000)
        await send(rig, "registry", far, signer=ATTACKER, ce_chainhash=b"0" * 64)
        huge = organisation("huge", "x" * 400_000, 2)
        await send(rig, "registry", huge, signer=ATTACKER)
        await register(rig, "irpin", "Irpin")
        await settled(rig, {"kharkiv": "Kharkiv", "irpin": "Irpin"}, 2)
        contiguous, gap = await rig.runner.advance("registry")
    assert (contiguous, gap) == (2, False), "no gap waits for the forged position"
    lag = rig.runner.metrics.registry.get_sample_value(
        "twinaid_consumer_lag_events", {"service": "pledges", "upstream": "registry"}
    )
    assert lag == 0
    forged = await quarantined(rig)
    read, named = await audited(rig, "registry")
    assert read == await registry_ids(rig)
    # the auditor does not bound sizes: it names the oversize message by its signature
    assert {n[:4] for n in named} == {n[:4] for n in as_named(forged)}
    reasons = {f["position"]: f["reason"] for f in forged}
    assert reasons == {
        1_000_000_000: "the chain hash does not match the event and its previous hash",
        2: "oversize: 400080 bytes, more than the 262144 an event may have",
    }
    assert await inbox(rig) == await registry_ids(rig)
    rows, differences = await compared(rig, pg_server)
    assert (rows["directory"], differences) == (2, [])


async def test_a_forged_delivery_is_quarantined_and_the_authentic_one_applied(
    rig: Rig,
    pg_server: str,
) -> None:
    line = delivery_event(position=1).data["lines"][0]
    loading = replace(
        delivery_event(position=1),
        event_id=uuid.uuid4(),
        event_type="shipments.manifest-line-loaded",
        data={
            **{k: line[k] for k in ("manifest_line_id", "pledge_id", "line_id", "item", "unit")},
            "convoy_id": "lille-1",
            "donor_id": "lille",
            "recipient_id": "kharkiv",
            "quantity": "50",
            "weight_kg": "900",
            "vehicle": "AA 1234 BB",
            "correlation_id": "kharkiv-generators",
        },
    )
    delivery = delivery_event(position=2)
    lines = [{**line, "loaded": "1000", "received": "1000"}]
    claimed = {**delivery.data, "lines": lines}
    forged = replace(delivery, event_id=uuid.uuid4(), data=claimed, position=1000)
    # Kharkiv's need and Lille's committed pledge of 100 generators, through the pledges API
    await seed_registry(rig.pledges.database_url)
    app = pledges_app(rig.pledges)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            api = PledgesApi(client, app, rig.pledges.database_url)
            await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
            await api.ok("/v1/pledges", generators_pledge(commit=True), by="lille")
    async with running(rig):
        await send(rig, "shipments", forged, signer=SHIPMENTS_KEY, ce_chainhash=b"0" * 64)
        hashed = await send(rig, "shipments", loading, signer=SHIPMENTS_KEY)
        await send(rig, "shipments", delivery, previous=hashed, signer=SHIPMENTS_KEY)

        async def all_seen() -> bool:
            return (
                rig.runner.quarantined >= 1
                and 2 in await inbox(rig, "shipments")
                and await received(rig) != []
            )

        await wait_for(all_seen, timeout=60)
    authentic = {1: str(loading.event_id), 2: str(delivery.event_id)}
    assert await inbox(rig, "shipments") == authentic
    [q] = await quarantined(rig)
    assert await audited(rig, "shipments") == (authentic, as_named([q]))
    assert (q["position"], q["event_id"]) == (1000, str(forged.event_id))
    assert "chain hash does not match" in q["reason"]
    async with rig.pledges_db.connection() as conn:
        loaded = await conn.fetchval("SELECT loaded FROM convoy_lines")
    assert loaded == 50, "what shipments loaded, not what the forgery claimed"
    assert await received(rig) == [(50, 48)], "the authentic delivery counted, the forged not"
    rows, differences = await compared(rig, pg_server)
    # the test put the directory in place itself (not through the registry's log): only the
    # copies of shipments' facts are the subject here
    crossed = [d for d in differences if d["copy_of"] == "shipments"]
    assert (rows["convoy_lines"], rows["deliveries"], crossed) == (1, 1, [])


async def received(rig: Rig) -> list[tuple[int, int]]:
    async with rig.pledges_db.connection() as conn:
        rows = await conn.fetch("SELECT loaded, received FROM deliveries")
    return [(int(r["loaded"]), int(r["received"])) for r in rows]


async def test_an_authentic_event_breaking_the_published_schema_is_parked_not_applied(
    rig: Rig,
    pg_server: str,
) -> None:
    bad = organisation("nowhere", "Nowhere", 1, country="Ukraine")
    good = organisation("lviv", "Lviv", 2)
    clash = organisation("clash", "Clash", 2)
    lvov = organisation("lviv", "Lvov", 3)
    async with running(rig):
        hashed = await send(rig, "registry", bad, signer=REGISTRY_KEY)
        good_hash = await send(rig, "registry", good, previous=hashed, signer=REGISTRY_KEY)
        await settled(rig, {"lviv": "Lviv"}, 1)
        # the registry's key, position 2 again as another event: a clash, not a duplicate
        await send(rig, "registry", clash, previous=hashed, signer=REGISTRY_KEY)
        await settled(rig, {"lviv": "Lviv"}, 2)
        # the registry's key, Lviv registered again under another name: not an overwrite
        await send(rig, "registry", lvov, previous=good_hash, signer=REGISTRY_KEY)
        await settled(rig, {"lviv": "Lviv"}, 3)
    parked, clashed, overwrite = await quarantined(rig)
    assert parked["authentic"] and parked["position"] == 1
    assert "breaks the published schema" in parked["reason"]
    assert "data.country does not match" in parked["reason"]
    assert not clashed["authentic"]
    assert clashed["reason"] == f"position 2 was applied as event {good.event_id}"
    assert overwrite["authentic"] and overwrite["position"] == 3
    assert overwrite["reason"] == (
        "organisation lviv is already registered as 'Lviv' (municipality, UA):"
        " a second registration may not overwrite it"
    )
    assert await inbox(rig) == {
        1: str(bad.event_id),
        2: str(good.event_id),
        3: str(lvov.event_id),
    }
    rows, differences = await compared(rig, pg_server)
    assert (rows.get("directory"), [d["kind"] for d in differences]) == (1, [])


async def test_a_key_change_the_upstream_announces_is_followed_and_kept_across_a_restart(
    rig: Rig,
    pg_server: str,
) -> None:
    new_key = Signer.generate()
    await register(rig, "kharkiv", "Kharkiv")
    change = REGISTRY_KEY.announce_change(new_key, service="registry", at=NOW)
    async with rig.registry_db.transaction() as conn:
        await PostgresEventStore(conn).append(
            stream_type="audit",
            stream_id="signing-key-registry",
            expected_version=0,
            events=[NewEvent(KEY_CHANGED, change)],
            metadata=Metadata(actor="admin"),
            now=NOW,
        )
    async with running(rig):
        await wait_for(lambda: _applied(rig, 2))
    rig.relay.signer = new_key  # the registry signs with its new key from now on
    await register(rig, "lviv", "Lviv")
    async with running(rig):
        await settled(rig, {"kharkiv": "Kharkiv", "lviv": "Lviv"}, 0)
    restarted = ConsumerRunner(
        service="pledges",
        settings=rig.pledges,
        db=rig.pledges_db,
        metrics=Metrics("pledges"),
        handlers=subscriptions.HANDLERS,
    )
    rig.runner = restarted
    await register(rig, "odesa", "Odesa")
    async with running(rig):
        await settled(rig, {"kharkiv": "Kharkiv", "lviv": "Lviv", "odesa": "Odesa"}, 0)
    assert restarted.quarantined == 0, "the restarted consumer trusts the announced key"
    assert await quarantined(rig) == []
    assert await inbox(rig) == await registry_ids(rig)
    rows, differences = await compared(rig, pg_server)
    assert (rows["directory"], differences) == (3, [])


async def _applied(rig: Rig, count: int) -> bool:
    return len(await inbox(rig)) >= count


def forged_feed(page: dict[str, Any]) -> httpx.AsyncClient:
    """An attacker's server in place of the registry's feed, answering `page` to everything."""
    app = FastAPI()

    @app.get("/v1/events")
    async def events() -> dict[str, Any]:
        return page

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app))


async def test_a_feed_page_is_applied_only_under_the_upstreams_signed_head(
    rig: Rig, pg_server: str
) -> None:
    await register(rig, "kharkiv", "Kharkiv")
    async with running(rig):
        await settled(rig, {"kharkiv": "Kharkiv"}, 0)
    await register(rig, "lviv", "Lviv")  # position 2: sealed, not relayed
    async with rig.registry_db.connection() as conn:
        await seal_everything(conn)  # waits out other sessions' transactions on the server
        previous = bytes(await conn.fetchval("SELECT hash FROM event_chain WHERE position = 1"))
    assert (await head_hash(rig))[0] == 2
    # Atlantis at position 2, well linked to the applied position 1, under heads the registry's
    # key never signed: none, the attacker's, and the registry's head of the real page
    atlantis = organisation("atlantis", "Atlantis", 2)
    atlantis = replace(atlantis, hash=chain.link(previous, atlantis, position=2))
    forged_page = {"events": [event_json(atlantis)], "next_after": 2}
    real_page = (
        await rig.runner.http.get(  # type: ignore[union-attr]
            "http://registry/v1/events",
            params={"after": 1},
            headers={"Authorization": f"Bearer {rig.pledges.feed_api_key}"},
        )
    ).json()
    heads = {
        "no head": None,
        "attacker": ATTACKER.checkpoint(service="registry", position=2, head=atlantis.hash, at=NOW),
        "real head": real_page["signed_head"],
        "other service": SHIPMENTS_KEY.checkpoint(
            service="shipments", position=2, head=atlantis.hash or b"", at=NOW
        ),
    }
    real_feed = rig.runner.http
    for head in heads.values():
        rig.runner.http = forged_feed({**forged_page, "signed_head": head})
        try:
            assert await rig.runner.catch_up("registry") == 0
        finally:
            await rig.runner.http.aclose()
    assert await directory(rig) == {"kharkiv": "Kharkiv"}, "nothing of a forged page applied"
    reasons = [q["reason"] for q in await quarantined(rig)]
    assert reasons == [
        "from the feed: the page carries no signed head",
        f"from the feed: the page's signed head: key {ATTACKER.public_key} is neither pinned"
        " nor announced for registry",
        "from the feed: the page's signed head does not name its last event (position 2)",
        "from the feed: the page's signed head is of 'shipments'",
    ]
    rig.runner.http = real_feed
    assert await rig.runner.catch_up("registry") == 1, "the authentic page is applied"
    assert await directory(rig) == {"kharkiv": "Kharkiv", "lviv": "Lviv"}
    assert await inbox(rig) == await registry_ids(rig)
    async with running(rig):  # the relay publishes position 2: already applied, a duplicate
        await wait_for(lambda: _relayed(rig, 2))
        rows, differences = await compared(rig, pg_server)
    assert (rows["directory"], differences) == (2, [])


async def _relayed(rig: Rig, position: int) -> bool:
    async with rig.registry_db.connection() as conn:
        done = await conn.fetchval("SELECT coalesce(max(position), 0) FROM relay_checkpoint")
    return bool(done >= position)


async def test_a_partitions_lane_goes_on_across_publish_batches(rig: Rig) -> None:
    """Eight registrations, each published in a batch of its own: in every partition each
    record's lane follows the one before, so a consumer reading them checks one signature per
    run of a partition's records, however the relay batched them."""
    slugs = [f"town-{n}" for n in range(8)]
    async with running(rig):
        for n, slug in enumerate(slugs, start=1):
            await register(rig, slug, slug.title())
            await wait_for(lambda n=n: _relayed(rig, n))
    consumer = AIOKafkaConsumer(
        rig.registry.topic("registry"),
        bootstrap_servers=rig.bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        fetched = await consumer.getmany(timeout_ms=3000, max_records=100)
    finally:
        await consumer.stop()
    by_partition = {
        tp.partition: [parse_record(r, upstream="registry") for r in records]
        for tp, records in fetched.items()
    }
    assert sum(len(p) for p in by_partition.values()) == 8
    followed = 0
    for records in by_partition.values():
        for before, after in itertools.pairwise(records):
            assert before.lane_previous is not None and before.chain_hash is not None
            assert after.lane_previous == authenticity.lane(before.lane_previous, before.chain_hash)
            followed += 1
    assert followed == 8 - len(by_partition), "every record after a partition's first follows"
    for records in by_partition.values():
        assert authenticity.verify(KeyRing.pinned(PINS), records) == {}
