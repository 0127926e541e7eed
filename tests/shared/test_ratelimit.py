"""The per-key rate limit (shared/ratelimit.py) on a real database: two limiters on their own
pools stand for two replicas of an API. Their clock is driven by hand (tests/clock.py), so
every count here is exact, however fast or slow the machine runs the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from shared import db as dbmod
from shared.errors import TooManyRequests
from shared.ratelimit import RateLimiter
from shared.testing import fresh_database
from tests.clock import ManualClock


@dataclass
class Replicas:
    url: str
    clock: ManualClock
    pools: list[dbmod.Database]

    def limiters(self, *, rate: float, burst: int) -> list[RateLimiter]:
        return [RateLimiter(db, rate=rate, burst=burst, clock=self.clock) for db in self.pools]

    async def bucket(self, key: str) -> asyncpg.Record | None:
        conn = await asyncpg.connect(self.url)
        try:
            return await conn.fetchrow("SELECT tokens, at FROM rate_limits WHERE key_id = $1", key)
        finally:
            await conn.close()


@pytest.fixture
async def replicas(pg_server: str) -> AsyncIterator[Replicas]:
    async with fresh_database(pg_server) as url:
        pools = [dbmod.Database(url, max_size=10) for _ in range(2)]
        for pool in pools:
            await pool.open()
        try:
            yield Replicas(url, ManualClock(), pools)
        finally:
            for pool in pools:
                await pool.close()


async def admitted(limiter: RateLimiter, key: str) -> bool:
    try:
        await limiter.take(key)
    except TooManyRequests:
        return False
    return True


async def test_two_replicas_alternating_admit_one_bucket_not_two(replicas: Replicas) -> None:
    a, b = replicas.limiters(rate=1, burst=5)
    answers = [await admitted((a, b)[i % 2], "k1") for i in range(20)]
    assert answers == [True] * 5 + [False] * 15
    replicas.clock.advance(3)  # three tokens more, whichever replica asks
    answers = [await admitted((b, a)[i % 2], "k1") for i in range(10)]
    assert answers == [True] * 3 + [False] * 7


async def test_concurrent_takes_on_both_replicas_never_admit_more_than_the_bucket(
    replicas: Replicas,
) -> None:
    a, b = replicas.limiters(rate=1, burst=5)
    answers = await asyncio.gather(*(admitted((a, b)[i % 2], "k1") for i in range(60)))
    assert answers.count(True) == 5
    bucket = await replicas.bucket("k1")
    assert bucket is not None and 0 <= bucket["tokens"] < 1


async def test_a_key_s_bucket_does_not_touch_another_key(replicas: Replicas) -> None:
    a, b = replicas.limiters(rate=1, burst=3)
    assert [await admitted(a, "k1") for _ in range(4)] == [True, True, True, False]
    assert [await admitted(b, "k2") for _ in range(4)] == [True, True, True, False]


async def test_retry_after_is_the_wait_for_a_whole_token(replicas: Replicas) -> None:
    a, b = replicas.limiters(rate=0.25, burst=2)
    assert [await admitted(a, "k1") for _ in range(2)] == [True, True]
    with pytest.raises(TooManyRequests) as empty:
        await b.take("k1")
    replicas.clock.advance(2)  # half a token back: 2 s to go
    with pytest.raises(TooManyRequests) as half:
        await a.take("k1")
    assert empty.value.headers == {"Retry-After": "4"}
    assert half.value.headers == {"Retry-After": "2"}
    replicas.clock.advance(2)
    assert await admitted(b, "k1")


async def test_an_idle_key_refills_up_to_its_burst_and_no_further(replicas: Replicas) -> None:
    (a,) = replicas.limiters(rate=10, burst=4)[:1]
    assert [await admitted(a, "k1") for _ in range(5)] == [True] * 4 + [False]
    replicas.clock.advance(3600)
    assert [await admitted(a, "k1") for _ in range(5)] == [True] * 4 + [False]


async def test_a_clock_behind_the_bucket_neither_takes_nor_gives_tokens(
    replicas: Replicas,
) -> None:
    """A statement that read the time before another one spent from the bucket (it waited for
    the row) sees the bucket in its future: it refills nothing, takes nothing away, and leaves
    the bucket's time where it was, so the next request is not credited the difference."""
    a, b = replicas.limiters(rate=1, burst=2)
    assert await admitted(a, "k1")
    replicas.clock.advance(-30)
    assert await admitted(b, "k1"), "the token left is still there"
    replicas.clock.advance(30.5)
    assert not await admitted(a, "k1"), "half a token since the bucket's time, not 30.5"
    bucket = await replicas.bucket("k1")
    assert bucket is not None and bucket["tokens"] == 0


async def test_every_refused_request_writes_nothing(replicas: Replicas) -> None:
    (a,) = replicas.limiters(rate=1, burst=1)[:1]
    assert await admitted(a, "k1")
    before = await replicas.bucket("k1")
    replicas.clock.advance(0.5)
    assert not await admitted(a, "k1")
    assert await replicas.bucket("k1") == before


async def test_a_rate_of_zero_admits_everything_without_a_database() -> None:
    limiter = RateLimiter(None, rate=0, burst=1)
    for _ in range(100):
        await limiter.take("k1")
