"""A live stream resumed beyond the log's last position (the log was restored from an older
backup, the screen reconnects with the id it last saw): it resumes from that last position,
its first event `reset` saying so, instead of staying silent until the log catches up; an
explicit `after` beyond it is a 422 naming `after`. And the closing event of a stream whose key
is no longer accepted names the right reason: expired, or not valid (rotated)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared import api_keys, auth
from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem
from tests.shipments.test_live_stream import (
    checkpoint,
    screen,
    served,  # noqa: F401 (a fixture)
    two_convoys_on_the_road,
)

CACHE_SECONDS = 2.0
# a refused key is seen once the cached answer expires, at the next check (once a second)
ENDS_WITHIN = CACHE_SECONDS + 1.0 + 2.0


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"auth_cache_ttl": CACHE_SECONDS}


async def head(api: ShipmentsApi) -> int:
    conn = await asyncpg.connect(api.url)
    try:
        return int(await conn.fetchval("SELECT position FROM sealer_state"))
    finally:
        await conn.close()


async def test_a_last_event_id_beyond_the_log_resumes_from_its_end_saying_so(
    api: ShipmentsApi,
    served: str,  # noqa: F811
) -> None:
    await two_convoys_on_the_road(api)
    last = await head(api)
    assert 0 < last < 5000
    headers = {**await api.as_("lille", Role.LOGISTICS), "Last-Event-ID": "5000"}
    async with screen(served, headers) as board:
        reset = await board.next()
        await checkpoint(api, "c1", "Kraków", "cp-1")
        update = await board.next(timeout=4.0)
    assert reset["event"] == "reset"
    assert int(reset["id"]) == last
    assert reset["data"]["position"] == last
    assert reset["data"]["last_event_id"] == 5000
    assert "5000" in reset["data"]["detail"] and str(last) in reset["data"]["detail"]
    assert update["event"] == "convoy-update"
    assert update["data"]["data"]["place"] == "Kraków"
    assert int(update["id"]) > last

    # reconnecting with the reset's id resumes there: nothing missed, no second reset
    async with screen(served, {**headers, "Last-Event-ID": reset["id"]}) as board:
        again = await board.next()
        await board.nothing(within=1.0)
    assert (again["event"], again["id"]) == ("convoy-update", update["id"])


async def test_a_last_event_id_at_the_log_s_end_is_no_reset(
    api: ShipmentsApi,
    served: str,  # noqa: F811
) -> None:
    await two_convoys_on_the_road(api)
    last = await head(api)
    headers = {**await api.as_("lille", Role.LOGISTICS), "Last-Event-ID": str(last)}
    async with screen(served, headers) as board:
        await checkpoint(api, "c2", "Rivne", "cp-1")
        update = await board.next()
    assert update["event"] == "convoy-update"
    assert update["data"]["data"]["place"] == "Rivne"


async def test_after_beyond_the_log_s_end_is_refused_naming_after(
    api: ShipmentsApi,
    served: str,  # noqa: F811
) -> None:
    await two_convoys_on_the_road(api)
    last = await head(api)
    headers = await api.as_("lille", Role.LOGISTICS)
    # through the server: a stream that opens instead (200) would never end
    async with (
        httpx.AsyncClient(base_url=served, timeout=5) as client,
        client.stream(
            "GET", "/v1/tracking/updates", params={"after": last + 1}, headers=headers
        ) as refused,
    ):
        assert refused.status_code == 422
        await refused.aread()
    body = assert_problem(refused, 422)
    assert body["invalid_params"][0]["name"] == "after"
    assert str(last + 1) in body["detail"] and str(last) in body["detail"]
    # at the end itself it is what happens next
    async with screen(served, headers, after=last) as board:
        await checkpoint(api, "c1", "Kraków", "cp-1")
        update = await board.next()
    assert update["data"]["data"]["place"] == "Kraków"
    # a Last-Event-ID takes precedence over `after` (a browser reconnecting keeps its URL)
    async with screen(served, {**headers, "Last-Event-ID": "0"}, after=last + 100) as board:
        first = await board.next()
    assert first["event"] == "convoy-update" and int(first["id"]) >= 1


async def issue(api: ShipmentsApi, expires_at: datetime | None = None) -> dict[str, str]:
    conn = await asyncpg.connect(api.url)
    try:
        key = await auth.issue(
            conn, organisation="kharkiv", roles=[Role.MEMBER], expires_at=expires_at
        )
    finally:
        await conn.close()
    return {"Authorization": f"Bearer {key.token}"}


async def test_an_expired_key_s_stream_closes_with_reason_key_expired(
    api: ShipmentsApi,
    served: str,  # noqa: F811
) -> None:
    await two_convoys_on_the_road(api)
    headers = await issue(api, expires_at=datetime.now(UTC) + timedelta(seconds=2))
    async with screen(served, headers) as board:
        closing = await board.next(timeout=ENDS_WITHIN)
        await board.ended()
    assert closing["event"] == "closed"
    reason = closing["data"]
    assert (reason["status"], reason["reason"]) == (401, "key expired")
    assert reason["type"].endswith("/key-expired")
    assert "expired at" in reason["detail"] and "this stream ends" in reason["detail"]


async def test_a_rotated_key_s_stream_closes_with_reason_key_not_valid(
    api: ShipmentsApi,
    served: str,  # noqa: F811
) -> None:
    await two_convoys_on_the_road(api)
    headers = await issue(api)
    key_id = auth.parse_token(headers["Authorization"].removeprefix("Bearer "))[0]
    async with screen(served, headers) as board:
        await checkpoint(api, "c1", "Kraków", "cp-1")
        assert (await board.next())["data"]["data"]["place"] == "Kraków"
        _, digest = auth.new_secret(key_id)
        conn = await asyncpg.connect(api.url)
        try:
            await api_keys.store_rotated(
                conn, key_id=key_id, digest=digest, expires_at=None, at=datetime.now(UTC)
            )
        finally:
            await conn.close()
        closing = await board.next(timeout=ENDS_WITHIN)
        await board.ended()
    assert closing["event"] == "closed"
    reason = closing["data"]
    assert (reason["status"], reason["reason"]) == (401, "key not valid")
    assert reason["type"].endswith("/unauthenticated")
    assert "not valid" in reason["detail"] and "this stream ends" in reason["detail"]
