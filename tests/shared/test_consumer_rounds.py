"""What a consumer does around the batches it applies, for real: it goes to the upstream's feed
for a gap in its positions only when the contiguous prefix of what it applied stays put for the
grace period, and wakes its own relay only when a batch appended events to its log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from shared.consumer import Incoming, parse_feed_event
from shared.event_store import PostgresEventStore
from shared.events import NewEvent
from shared.routes import event_json
from shared.testing import seal_everything
from tests.shared.test_consumer import NOW, Rig, register, rigged


@pytest.fixture
async def rig(pg_server: str, kafka_bootstrap: str) -> AsyncIterator[Rig]:
    async with rigged(pg_server, kafka_bootstrap) as r:
        yield r


async def test_a_gap_the_prefix_keeps_moving_past_is_not_caught_up_from_the_feed(rig: Rig) -> None:
    """Draining a backlog, a fetch's records come partition by partition, out of position
    order: a gap lies beyond the prefix for longer than the grace period while the prefix
    moves on. Only a prefix that stays put for the grace period sends the consumer to the
    feed (which would otherwise serve again what the broker is delivering)."""
    asked: list[str] = []

    async def feed_asked(request: httpx.Request) -> None:
        asked.append(request.url.path)

    assert rig.runner.http is not None
    rig.runner.http.event_hooks["request"].append(feed_asked)
    grace = rig.pledges.consumer_gap_grace

    async def applied(*positions: int) -> None:
        async with rig.pledges_db.connection() as conn:
            await conn.executemany(
                "INSERT INTO inbox (consumer, event_id, upstream, position)"
                " VALUES ($1, $2, $3, $4)",
                [(rig.runner.name, uuid.uuid4(), "registry", p) for p in positions],
            )

    await applied(1, 3)
    for step in range(4):  # a gap all along, for twice the grace period
        await rig.runner.check_gaps()
        await asyncio.sleep(grace * 0.6)
        await applied(2 * step + 2, 2 * step + 5)
    await rig.runner.check_gaps()
    assert await rig.runner.advance("registry") == (9, True)
    assert asked == [], "the prefix moved: nothing was asked of the feed"
    await asyncio.sleep(grace * 1.2)
    await rig.runner.check_gaps()
    assert asked == ["/v1/events"], "the prefix stayed at 9: caught up from the feed"


async def test_the_relay_is_woken_only_after_a_batch_that_appended_to_the_log(rig: Rig) -> None:
    """The worker's relay seals and publishes what its consumers' handlers append: a batch
    whose handlers appended nothing (a directory entry) leaves it asleep, one that appended an
    event wakes it once."""
    for slug in ("irpin", "bucha"):
        await register(rig, slug, slug.title())
    async with rig.registry_db.connection() as conn:
        await seal_everything(conn)
        feed = [event_json(e) for e in await PostgresEventStore(conn).read_all(after=0, limit=9)]
    woken: list[int] = []
    rig.runner.after_commit = lambda: woken.append(rig.runner.applied)

    await rig.runner.apply_batch([(parse_feed_event("registry", feed[0]), None)])
    assert (rig.runner.applied, woken) == (1, [])

    async def reacting(conn: asyncpg.Connection, event: Incoming) -> None:
        await PostgresEventStore(conn).append(
            stream_type="test",
            stream_id=f"reaction-{event.event_id}",
            expected_version=0,
            events=[NewEvent("test.reacted", {"to": str(event.event_id)})],
            metadata=event.caused(actor="pledges-consumer"),
            now=NOW,
        )

    rig.runner.handlers = {"registry": {"registry.organisation-registered": reacting}}
    await rig.runner.apply_batch([(parse_feed_event("registry", feed[1]), None)])
    assert (rig.runner.applied, woken) == (2, [2])
