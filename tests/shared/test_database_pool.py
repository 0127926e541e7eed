"""The pool of a service: a request that cannot get a connection in time is told to retry
(503), it is not left hanging and it does not take a connection it then leaks."""

from __future__ import annotations

import asyncio

import pytest

from shared import db as dbmod
from shared.errors import ServiceUnavailable


async def test_a_request_waits_for_a_free_connection_then_gets_503_and_the_pool_recovers(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbmod, "ACQUIRE_TIMEOUT_S", 0.2)
    database = dbmod.Database(db_url, max_size=1)
    await database.open()
    try:
        async with database.connection() as held:
            assert await held.fetchval("SELECT 1") == 1
            with pytest.raises(ServiceUnavailable, match="busy"):
                async with database.connection():
                    pytest.fail("got a second connection from a pool of one")

        # the timed-out wait took nothing: the one connection serves the next requests
        async def one() -> int:
            async with database.connection() as conn:
                return int(await conn.fetchval("SELECT 2"))

        assert await asyncio.gather(*(one() for _ in range(5))) == [2] * 5
        assert database.pool.get_size() == 1 and database.pool.get_idle_size() == 1
    finally:
        await database.close()
