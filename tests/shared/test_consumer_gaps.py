"""When a consumer goes to the upstream's feed for a gap in its positions, for real: only when
the contiguous prefix of what it applied stays put for the grace period."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.shared.test_consumer import Rig, rigged


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
