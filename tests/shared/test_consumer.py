"""The consumer runner: inbox, dead letters and catching up from the feed, for real."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from services.pledges import subscriptions
from services.registry import commands as registry_commands
from services.registry import domain as registry_domain
from services.registry import handlers as registry_handlers
from services.registry.app import create_app as registry_app
from shared import db as dbmod
from shared import directory as directory_model
from shared import kafka
from shared.auth import Role
from shared.chain import GENESIS
from shared.consumer import ConsumerRunner, Incoming, parse_feed_event
from shared.db import Database
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.infra import free_port, start_tansu
from shared.metrics import Metrics
from shared.outbox import Relay
from shared.routes import event_json
from shared.settings import Settings
from shared.testing import fresh_database, issue_key, seal_everything
from tests.conftest import published_headers, settings_for
from tests.shared.kafka_helpers import produce, read_topic

NOW = datetime(2026, 11, 24, tzinfo=UTC)


@dataclass
class Rig:
    registry: Settings
    pledges: Settings
    registry_db: Database
    pledges_db: Database
    runner: ConsumerRunner
    relay: Relay
    bootstrap: str


@pytest.fixture
async def rig(pg_server: str, kafka_bootstrap: str) -> AsyncIterator[Rig]:
    async with rigged(pg_server, kafka_bootstrap) as r:
        yield r


@contextlib.asynccontextmanager
async def rigged(pg_server: str, kafka_bootstrap: str) -> AsyncIterator[Rig]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    async with (
        fresh_database(pg_server, dbmod.schema_text("services.registry")) as reg_url,
        fresh_database(
            pg_server, directory_model.SCHEMA, dbmod.schema_text("services.pledges")
        ) as pl_url,
    ):
        token = await issue_key(reg_url, organisation="pledges", roles=[Role.SERVICE])
        reg = settings_for(reg_url, kafka_bootstrap, kafka_topic_prefix=prefix)
        pl = settings_for(
            pl_url,
            kafka_bootstrap,
            kafka_topic_prefix=prefix,
            upstream_feeds={"registry": "http://registry"},
            feed_api_key=token,
        )
        await kafka.ensure_topics(
            reg,
            [reg.topic(s) for s in ("registry", "shipments")]
            + [reg.topic(s) + ".dlq" for s in ("registry", "shipments")],
        )
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
            )
            relay = Relay(service="registry", settings=reg, db=reg_db, metrics=Metrics("r"))
            # the broker is one the consumer knew already: no catching up from the feed at start
            await runner.epoch.mark()
            try:
                yield Rig(reg, pl, reg_db, pl_db, runner, relay, kafka_bootstrap)
            finally:
                await http.aclose()
                await reg_db.close()
                await pl_db.close()


async def register(rig: Rig, slug: str, name: str) -> None:
    async with rig.registry_db.transaction() as conn:
        await registry_handlers.run(
            conn,
            registry_commands.RegisterOrganisation(
                registry_domain.RegisterOrganisation(
                    organisation_id=slug,
                    name=name,
                    kind=registry_domain.OrganisationKind.MUNICIPALITY,
                    country="UA",
                )
            ),
            metadata=Metadata(actor="admin", organisation="twinaid", correlation_id="corr-1"),
            now=NOW,
        )


async def directory(rig: Rig) -> dict[str, str]:
    async with rig.pledges_db.connection() as conn:
        rows = await conn.fetch("SELECT organisation_id, name FROM directory")
    return {r["organisation_id"]: r["name"] for r in rows}


async def wait_for(condition: object, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def running(rig: Rig, *parts: object) -> tuple[asyncio.Event, list[asyncio.Task[None]]]:
    stop = asyncio.Event()
    return stop, [asyncio.create_task(p.run(stop)) for p in parts]  # type: ignore[attr-defined]


async def test_applies_upstream_events_into_the_local_directory_once(rig: Rig) -> None:
    for slug, name in [("kharkiv", "Kharkiv"), ("lille", "Lille"), ("leeds", "Leeds")]:
        await register(rig, slug, name)
    stop, tasks = await running(rig, rig.relay, rig.runner)
    try:

        async def three() -> bool:
            return len(await directory(rig)) == 3

        await wait_for(three)
        # the broker delivers a copy of an event again: it is not applied twice
        first = (await read_topic(rig.bootstrap, rig.registry.topic("registry"), expect=3))[0]
        await produce(
            rig.bootstrap,
            rig.registry.topic("registry"),
            value=first.value,
            key=first.key,
            headers=list(first.headers),
        )

        async def duplicate_dropped() -> bool:
            return rig.runner.duplicates >= 1

        await wait_for(duplicate_dropped)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert await directory(rig) == {"kharkiv": "Kharkiv", "lille": "Lille", "leeds": "Leeds"}
    async with rig.pledges_db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM inbox") == 3
        assert await conn.fetchval("SELECT position FROM consumer_progress") == 3
    assert rig.runner.applied == 3


async def test_a_poison_message_goes_to_the_dead_letters_and_the_consumer_goes_on(
    rig: Rig,
) -> None:
    topic = rig.registry.topic("registry")
    await produce(
        rig.bootstrap,
        topic,
        value=b"\xff not json",
        key=b"x",
        headers=[("ce_source", b"/twinaid/registry")],
    )
    await produce(rig.bootstrap, topic, value=b"{}", key=b"y")  # no CloudEvents headers at all
    await register(rig, "bucha", "Bucha")
    stop, tasks = await running(rig, rig.relay, rig.runner)
    try:

        async def bucha_arrived() -> bool:
            return "bucha" in await directory(rig)

        await wait_for(bucha_arrived)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    async with rig.pledges_db.connection() as conn:
        dead = await conn.fetch("SELECT topic, key, reason FROM dead_letters ORDER BY id")
    assert sorted(bytes(d["key"]) for d in dead) == [b"x", b"y"]
    assert all("cannot parse" in d["reason"] for d in dead)
    dlq = await read_topic(rig.bootstrap, topic + ".dlq", expect=2)
    assert sorted(r.key for r in dlq) == [b"x", b"y"]
    assert all(dict(r.headers)["twinaid_dlq_reason"] for r in dlq)


async def test_an_event_whose_handler_keeps_failing_is_parked_after_bounded_retries(
    rig: Rig,
) -> None:
    async with rig.registry_db.transaction() as conn:
        # an organisation-registered event without the name the handler needs
        await PostgresEventStore(conn).append(
            stream_type="organisation",
            stream_id="broken",
            expected_version=0,
            events=[NewEvent("registry.organisation-registered", {"organisation_id": "broken"})],
            metadata=Metadata(),
            now=NOW,
        )
    await register(rig, "fastiv", "Fastiv")
    stop, tasks = await running(rig, rig.relay, rig.runner)
    try:

        async def fastiv_arrived() -> bool:
            return "fastiv" in await directory(rig)

        await wait_for(fastiv_arrived)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    async with rig.pledges_db.connection() as conn:
        reason = await conn.fetchval("SELECT reason FROM dead_letters")
        progress = await conn.fetchval("SELECT position FROM consumer_progress")
    # the directory's model of the event (shared/directory.py) finds the name missing
    assert "failed 3 times" in reason and "name: Field required" in reason
    assert progress == 2, "the parked event counts as handled, so progress goes past it"
    assert await directory(rig) == {"fastiv": "Fastiv"}


async def test_a_gap_the_broker_never_fills_is_caught_up_from_the_upstream_feed(
    rig: Rig,
) -> None:
    for slug in ("irpin", "miami", "kyiv", "paris"):
        await register(rig, slug, slug.title())
    async with rig.registry_db.connection() as conn:
        await seal_everything(conn)
        events = await PostgresEventStore(conn).read_all(after=0, limit=10)
    topic = rig.registry.topic("registry")
    previous = GENESIS
    for event in events:
        headers, hashed = published_headers("registry", event, previous=previous)
        previous = hashed
        if event.position in (2, 3):
            continue  # lost by the broker
        await produce(
            rig.bootstrap,
            topic,
            value=json.dumps(event.data).encode(),
            key=event.stream_id.encode(),
            headers=headers,
        )
    stop, tasks = await running(rig, rig.runner)  # no relay: only the feed has 2 and 3
    try:

        async def all_four() -> bool:
            return len(await directory(rig)) == 4

        await wait_for(all_four)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    async with rig.pledges_db.connection() as conn:
        assert await conn.fetchval("SELECT position FROM consumer_progress") == 4
        assert await conn.fetchval("SELECT count(*) FROM inbox") == 4


async def test_catching_up_on_request_applies_only_what_is_missing(rig: Rig) -> None:
    for slug in ("bergamo", "druskininkai"):
        await register(rig, slug, slug.title())
    async with rig.registry_db.connection() as conn:
        await seal_everything(conn)
    assert await rig.runner.catch_up("registry") == 2
    assert await rig.runner.catch_up("registry") == 0
    assert set(await directory(rig)) == {"bergamo", "druskininkai"}


async def test_events_caused_downstream_keep_the_correlation_id_and_name_their_cause(
    rig: Rig,
) -> None:
    caused: list[Metadata] = []

    async def react(conn: asyncpg.Connection, event: Incoming) -> None:
        caused.append(event.caused(actor="pledges-worker"))

    rig.runner.handlers = {"registry": {"registry.organisation-registered": react}}
    await register(rig, "lublin", "Lublin")
    async with rig.registry_db.connection() as conn:
        await seal_everything(conn)
        [event] = await PostgresEventStore(conn).read_all(after=0, limit=10)
    assert await rig.runner.catch_up("registry") == 1
    assert caused == [
        Metadata(
            actor="pledges-worker",
            organisation="twinaid",
            correlation_id="corr-1",
            causation_id=str(event.event_id),
        )
    ]


async def test_the_event_feed_refuses_a_key_without_the_service_or_auditor_role(rig: Rig) -> None:
    member = await issue_key(rig.registry.database_url, organisation="lille", roles=[Role.MEMBER])
    assert rig.runner.http is not None
    response = await rig.runner.http.get(
        "http://registry/v1/events", headers={"Authorization": f"Bearer {member}"}
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_directory_follows_renames_and_counts_each_applied_event_once(rig: Rig) -> None:
    await register(rig, "kyiv", "Kiev")
    async with rig.registry_db.transaction() as conn:
        await registry_handlers.run(
            conn,
            registry_commands.RenameOrganisation(
                "kyiv", registry_domain.RenameOrganisation("Kyiv")
            ),
            metadata=Metadata(),
            now=NOW,
        )
    async with rig.registry_db.connection() as conn:
        await seal_everything(conn)
    assert await rig.runner.catch_up("registry") == 2
    assert await rig.runner.catch_up("registry") == 0
    async with rig.pledges_db.connection() as conn:
        row = await conn.fetchrow("SELECT name, aliases, applied_events FROM directory")
    assert (row["name"], list(row["aliases"]), row["applied_events"]) == ("Kyiv", ["Kiev"], 2)


async def test_a_batch_is_applied_in_one_go_and_a_copy_inside_it_counts_once(rig: Rig) -> None:
    for slug in ("chortkiv", "talsi"):
        await register(rig, slug, slug.title())
    async with rig.registry_db.connection() as conn:
        await seal_everything(conn)
        events = await PostgresEventStore(conn).read_all(after=0, limit=10)
    feed = [event_json(e) for e in events]
    batch = [(parse_feed_event("registry", raw), None) for raw in [*feed, feed[0]]]
    await rig.runner.apply_batch(batch)
    assert (rig.runner.applied, rig.runner.duplicates) == (2, 1)
    await rig.runner.apply_batch(batch)
    assert (rig.runner.applied, rig.runner.duplicates) == (2, 4)
    async with rig.pledges_db.connection() as conn:
        assert await conn.fetchval("SELECT sum(applied_events) FROM directory") == 2


async def test_the_contiguous_prefix_advances_only_over_positions_all_present(rig: Rig) -> None:
    """advance: from the saved prefix as far as every next position is in the inbox; a gap
    beyond is reported; the saved prefix never moves back."""

    async def applied(*positions: int) -> None:
        async with rig.pledges_db.connection() as conn:
            await conn.executemany(
                "INSERT INTO inbox (consumer, event_id, upstream, position)"
                " VALUES ($1, $2, $3, $4)",
                [(rig.runner.name, uuid.uuid4(), "registry", p) for p in positions],
            )

    assert await rig.runner.advance("registry") == (0, False)
    await applied(1, 2, 3, 5, 6)
    assert await rig.runner.advance("registry") == (3, True)
    assert await rig.runner.advance("registry") == (3, True)
    await applied(4)
    assert await rig.runner.advance("registry") == (6, False)
    async with rig.pledges_db.connection() as conn:
        saved = await conn.fetchval(
            "SELECT position FROM consumer_progress WHERE consumer = $1 AND upstream = 'registry'",
            rig.runner.name,
        )
        assert saved == 6
        await conn.execute(  # a replica that got further meanwhile
            "UPDATE consumer_progress SET position = 9 WHERE consumer = $1", rig.runner.name
        )
    await applied(7)
    assert await rig.runner.advance("registry") == (9, False)
    await applied(8, 9, 11)
    assert await rig.runner.advance("registry") == (9, True)
    await applied(10)
    assert await rig.runner.advance("registry") == (11, False)


@pytest.fixture
def own_broker() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A broker of this test's own, which it restarts (memory only: it comes back empty)."""
    port = free_port()
    procs = [start_tansu(port)]
    try:
        yield port, procs
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


async def test_after_the_broker_restarts_empty_every_event_is_applied_once_without_help(
    pg_server: str, own_broker: tuple[int, list[subprocess.Popen[bytes]]]
) -> None:
    port, procs = own_broker
    async with rigged(pg_server, f"127.0.0.1:{port}") as rig:
        for slug in ("kherson", "mykolaiv", "odesa"):
            await register(rig, slug, slug.title())
        stop, tasks = await running(rig, rig.relay, rig.runner)
        try:

            async def applied(n: int) -> Callable[[], Awaitable[bool]]:
                async def check() -> bool:
                    return len(await directory(rig)) == n

                return check

            await wait_for(await applied(3))
            procs[0].terminate()
            procs[0].wait(10)
            procs.append(start_tansu(port))  # same address, nothing in it
            for slug in ("izmail", "ochakiv"):
                await register(rig, slug, slug.title())
            await wait_for(await applied(5), timeout=60)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        # the relay met a broker new to it twice (at its start, then after the restart); the
        # consumer's was marked by the rig, as a broker it already knew
        assert (rig.relay.broker_resets, rig.runner.broker_resets) == (2, 1)
        async with rig.pledges_db.connection() as conn:
            assert set(await conn.fetchval("SELECT array_agg(applied_events) FROM directory")) == {
                1
            }
            assert await conn.fetchval("SELECT count(*) FROM inbox") == 5
            assert await conn.fetchval("SELECT position FROM consumer_progress") == 5
        # the relay republished its whole log to the new broker, on a topic it created
        records = await read_topic(rig.bootstrap, rig.registry.topic("registry"), expect=5)
        positions = sorted(int(dict(r.headers)["ce_position"]) for r in records)
        assert positions == [1, 2, 3, 4, 5]
