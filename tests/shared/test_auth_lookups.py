"""The Authenticator's key lookups on real PostgreSQL: requests of one key that miss the cache
together share one query (under load a cache entry expires with dozens of requests in flight,
and each would otherwise take a pooled connection for the same row); the shared answer is
still checked against each request's own secret."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared import auth
from shared.auth import Authenticator, Role
from shared.errors import Unauthenticated
from shared.testing import fresh_database


@pytest.fixture
async def pool(pg_server: str) -> AsyncIterator[asyncpg.Pool]:
    async with fresh_database(pg_server) as url:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=20)
        try:
            yield pool
        finally:
            await pool.close()


async def issued(pool: asyncpg.Pool, organisation: str = "kharkiv") -> auth.IssuedKey:
    async with pool.acquire() as conn:
        return await auth.issue(conn, organisation=organisation, roles=[Role.MEMBER])


async def test_requests_that_miss_the_cache_together_share_one_query(pool: asyncpg.Pool) -> None:
    key = await issued(pool)
    authenticator = Authenticator(pool, ttl=2.0)
    principals = await asyncio.gather(
        *(authenticator.authenticate(f"Bearer {key.token}") for _ in range(32))
    )
    assert {p.organisation for p in principals} == {"kharkiv"}
    assert authenticator.queries == 1
    await authenticator.authenticate(f"Bearer {key.token}")  # from the cache
    assert authenticator.queries == 1


async def test_a_shared_lookup_still_checks_each_requests_secret(pool: asyncpg.Pool) -> None:
    key = await issued(pool)
    forged = key.token[:-4] + ("aaaa" if not key.token.endswith("aaaa") else "bbbb")
    authenticator = Authenticator(pool, ttl=0)
    right, wrong = await asyncio.gather(
        authenticator.authenticate(f"Bearer {key.token}"),
        authenticator.authenticate(f"Bearer {forged}"),
        return_exceptions=True,
    )
    assert isinstance(right, auth.Principal) and right.organisation == "kharkiv"
    assert isinstance(wrong, Unauthenticated)
    assert authenticator.queries == 1


async def test_a_waiter_that_gives_up_does_not_cancel_the_lookup_for_the_others(
    pool: asyncpg.Pool,
) -> None:
    key = await issued(pool)
    authenticator = Authenticator(pool, ttl=0)
    quitter = asyncio.create_task(authenticator.authenticate(f"Bearer {key.token}"))
    stayer = asyncio.create_task(authenticator.authenticate(f"Bearer {key.token}"))
    await asyncio.sleep(0)  # both wait on the one lookup
    quitter.cancel()
    assert (await stayer).organisation == "kharkiv"
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert authenticator.queries == 1


async def test_without_a_cache_every_later_request_looks_again_and_sees_a_revocation(
    pool: asyncpg.Pool,
) -> None:
    key = await issued(pool)
    authenticator = Authenticator(pool, ttl=0)
    await authenticator.authenticate(f"Bearer {key.token}")
    async with pool.acquire() as conn:
        assert await auth.revoke(conn, key_id=key.key_id)
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate(f"Bearer {key.token}")
    assert authenticator.queries == 2


async def test_a_lookup_begun_before_the_key_was_forgotten_is_not_kept(pool: asyncpg.Pool) -> None:
    """The registry forgets a key it rotated or revoked; a lookup already under way may bring
    the row as it was: it answers its own request and is not cached for the next ones, which
    query again; a request coming after the forget does not wait for the old query."""
    key = await issued(pool)
    authenticator = Authenticator(pool, ttl=60.0)

    async def blocked(*, late: bool) -> None:
        blocker = await pool.acquire()
        transaction = blocker.transaction()
        await transaction.start()
        try:
            # the lookup's SELECT waits behind this lock, as a slow query would
            await blocker.execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
            early = asyncio.create_task(authenticator.authenticate(f"Bearer {key.token}"))
            await asyncio.sleep(0.2)
            assert not early.done()
            authenticator.forget(key.key_id)
            after = (
                asyncio.create_task(authenticator.authenticate(f"Bearer {key.token}"))
                if late
                else None
            )
            await asyncio.sleep(0.1)
        finally:
            await transaction.rollback()
            await pool.release(blocker)
        assert (await early).organisation == "kharkiv"
        if after is not None:
            assert (await after).organisation == "kharkiv"

    await blocked(late=False)
    assert authenticator.queries == 1
    await authenticator.authenticate(f"Bearer {key.token}")
    assert authenticator.queries == 2  # the early answer was not kept: queried again
    authenticator.forget(key.key_id)
    await blocked(late=True)
    assert authenticator.queries == 4  # the request after the forget queried on its own
    await authenticator.authenticate(f"Bearer {key.token}")
    assert authenticator.queries == 4  # and its answer is the one kept
