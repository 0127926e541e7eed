"""The live stream of convoy updates, over a real HTTP server: an update reaches an open screen
within two seconds of sealing, filtered by convoy and organisation, resumable with
Last-Event-ID, and never showing a screen what its key may not read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from shared.auth import Role
from shared.infra import free_port
from shared.testing import seal_everything
from tests.shipments.conftest import ShipmentsApi, assert_problem, entry

DISPATCH = "2022-06-07T06:10:00+02:00"


@pytest.fixture
async def served(api: ShipmentsApi) -> AsyncIterator[str]:
    """The same app behind uvicorn (its lifespan already runs in the api fixture)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(api.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class Screen:
    """An open stream: Server-Sent Events parsed as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()
        self.retry: int | None = None

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        # generous by default: a slow machine must not fail a test that is not about speed
        event: dict[str, Any] = {}
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                if not line:
                    if "data" in event:
                        return event
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(": ")
                if field == "retry":
                    self.retry = int(value)
                elif field == "data":
                    event["data"] = json.loads(value)
                else:
                    event[field] = value
        raise AssertionError("the stream ended")

    async def ended(self, timeout: float = 10.0) -> None:
        """The server closed the stream, sending nothing more."""
        async with asyncio.timeout(timeout):
            rest = [line async for line in self.lines]
        assert not any(line.startswith(("data", "event")) for line in rest), rest

    async def nothing(self, within: float = 1.5) -> None:
        with pytest.raises(TimeoutError):
            await self.next(timeout=within)


@asynccontextmanager
async def screen(base: str, headers: dict[str, str], **params: Any) -> AsyncIterator[Screen]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        async with client.stream(
            "GET", "/v1/tracking/updates", params=params, headers=headers
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            yield Screen(response)


async def seal(api: ShipmentsApi) -> None:
    conn = await asyncpg.connect(api.url)
    try:
        await seal_everything(conn)
    finally:
        await conn.close()


async def two_convoys_on_the_road(api: ShipmentsApi) -> None:
    await api.pledge_line(quantity="50")
    await api.pledge_line(pledge_id="p-bucha", recipient_id="bucha", quantity="5")
    await api.plan("c1")
    await api.load("c1", manifest_line_id="m1", quantity="10")
    await api.plan("c2", destination_id="bucha")
    await api.load("c2", manifest_line_id="m1", pledge_id="p-bucha", quantity="5")
    for convoy in ("c1", "c2"):
        response = await api.entries(convoy, entry("dispatch", DISPATCH, "d"))
        assert response.status_code == 200, response.text
    await seal(api)


async def checkpoint(api: ShipmentsApi, convoy: str, place: str, entry_id: str) -> None:
    response = await api.entries(
        convoy,
        entry("checkpoint", "2022-06-08T12:00:00+02:00", entry_id, place=place),
    )
    assert response.status_code == 200, response.text
    await seal(api)


async def test_a_checkpoint_reaches_an_open_screen_as_a_convoy_update(
    api: ShipmentsApi, served: str
) -> None:
    await two_convoys_on_the_road(api)
    async with screen(served, await api.as_("kharkiv", Role.MEMBER)) as board:
        await checkpoint(api, "c1", "Kraków", "cp-1")
        update = await board.next()
    assert board.retry == 2000
    assert update["event"] == "convoy-update"
    data = update["data"]
    assert int(update["id"]) == data["position"]
    assert (data["convoy_id"], data["event_type"]) == ("c1", "shipments.checkpoint-recorded")
    assert data["data"]["place"] == "Kraków"
    assert data["convoy"]["status"] == "in_transit"
    assert data["convoy"]["position"]["place"] == "Kraków"


async def test_a_screen_resumes_after_its_last_event_id_missing_nothing(
    api: ShipmentsApi, served: str
) -> None:
    await two_convoys_on_the_road(api)
    headers = await api.as_("lille", Role.LOGISTICS)
    async with screen(served, headers) as board:
        await checkpoint(api, "c1", "Kraków", "cp-1")
        seen = await board.next()
    # offline while two more things happen
    await checkpoint(api, "c1", "Lviv", "cp-2")
    await checkpoint(api, "c2", "Rivne", "cp-3")
    async with screen(served, {**headers, "Last-Event-ID": seen["id"]}) as board:
        missed = [await board.next(), await board.next()]
        await board.nothing(within=1.0)
    assert [m["data"]["data"]["place"] for m in missed] == ["Lviv", "Rivne"]
    assert int(missed[0]["id"]) > int(seen["id"])
    async with screen(served, headers, after=0, convoy_id="c2") as board:
        history = [await board.next() for _ in range(4)]
    assert [h["data"]["event_type"].split(".")[1] for h in history] == [
        "convoy-planned",
        "manifest-line-loaded",
        "convoy-dispatched",
        "checkpoint-recorded",
    ]


async def test_a_screen_sees_only_the_convoys_its_key_may_read_and_the_filter_it_asked_for(
    api: ShipmentsApi, served: str
) -> None:
    await two_convoys_on_the_road(api)
    async with (
        screen(served, await api.as_("leeds", Role.MEMBER)) as stranger,
        screen(served, await api.as_("bucha", Role.MEMBER)) as bucha,
        screen(served, await api.as_("audit", Role.AUDITOR), organisation="kharkiv") as kharkiv,
        screen(served, await api.as_("lille", Role.MEMBER), convoy_id="c2") as lille_c2,
    ):
        await checkpoint(api, "c1", "Kraków", "cp-1")
        await checkpoint(api, "c2", "Rivne", "cp-2")
        assert (await bucha.next())["data"]["convoy_id"] == "c2"
        assert (await kharkiv.next())["data"]["convoy_id"] == "c1"
        for_lille = await lille_c2.next()
        assert for_lille["data"]["convoy_id"] == "c2"
        await stranger.nothing(within=1.0)
        await bucha.nothing(within=0.5)
        await kharkiv.nothing(within=0.5)


async def test_a_stream_without_a_key_or_with_a_bad_last_event_id_is_refused(
    api: ShipmentsApi,
) -> None:
    assert_problem(await api.client.get("/v1/tracking/updates"), 401)
    bad = await api.client.get(
        "/v1/tracking/updates",
        headers={**await api.as_("kharkiv", Role.MEMBER), "Last-Event-ID": "yesterday"},
    )
    assert_problem(bad, 422)
