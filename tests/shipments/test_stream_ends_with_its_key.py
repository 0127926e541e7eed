"""An open live stream lives no longer than its key: revoked, the key's stream ends within the
authenticator's cache lifetime with `event: closed` saying why, and other screens go on."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from shared import auth
from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem
from tests.shipments.test_live_stream import (
    checkpoint,
    screen,
    served,  # noqa: F401 (a fixture)
    two_convoys_on_the_road,
)

CACHE_SECONDS = 2.0
# a revocation is seen once the cached answer expires, at the next check (once a second)
ENDS_WITHIN = CACHE_SECONDS + 1.0 + 1.0


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"auth_cache_ttl": CACHE_SECONDS}


async def revoke(api: ShipmentsApi, headers: dict[str, str]) -> None:
    key_id = auth.parse_token(headers["Authorization"].removeprefix("Bearer "))[0]
    conn = await asyncpg.connect(api.url)
    try:
        assert await auth.revoke(conn, key_id=key_id)
    finally:
        await conn.close()


async def test_a_revoked_key_s_stream_ends_with_a_closing_event_saying_why(
    api: ShipmentsApi,
    served: str,  # noqa: F811
) -> None:
    await two_convoys_on_the_road(api)
    kharkiv = await api.as_("kharkiv", Role.MEMBER)
    async with (
        screen(served, kharkiv) as board,
        screen(served, await api.as_("audit", Role.AUDITOR)) as auditor,
    ):
        await checkpoint(api, "c1", "Kraków", "cp-1")
        assert (await board.next())["data"]["data"]["place"] == "Kraków"
        assert (await auditor.next())["data"]["data"]["place"] == "Kraków"

        await revoke(api, kharkiv)
        closing = await board.next(timeout=ENDS_WITHIN)
        await board.ended()

        await checkpoint(api, "c1", "Lviv", "cp-2")
        assert (await auditor.next(timeout=ENDS_WITHIN))["data"]["data"]["place"] == "Lviv"
    assert closing["event"] == "closed"
    reason = closing["data"]
    assert (reason["status"], reason["reason"]) == (401, "key revoked")
    assert reason["type"].endswith("/unauthenticated")
    assert "revoked" in reason["detail"] and "this stream ends" in reason["detail"]
    assert_problem(await api.client.get("/v1/tracking/updates", headers=kharkiv), 401)


async def test_a_stream_whose_key_stays_valid_is_not_closed(
    api: ShipmentsApi,
    served: str,  # noqa: F811
) -> None:
    await two_convoys_on_the_road(api)
    async with screen(served, await api.as_("kharkiv", Role.MEMBER)) as board:
        await asyncio.sleep(CACHE_SECONDS + 1.5)  # past a cache expiry and the recheck after it
        await checkpoint(api, "c1", "Kraków", "cp-1")
        update = await board.next()
    assert update["event"] == "convoy-update"
