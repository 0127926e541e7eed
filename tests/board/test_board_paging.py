"""Issue 19, point 7: the convoy page follows the pages of a long timeline (more events than
the board asks for at once) and shows every event once, in order, on the real stack."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.board.conftest import Running, Tab

pytestmark = pytest.mark.once

CONVOY = "lille-kharkiv-generators-2023-03"  # the demo's convoy on the road
BOARD_PAGE = 1000  # what convoy.js asks for at once
CHECKPOINTS = BOARD_PAGE + 10


async def _timeline(running: Running) -> list[dict[str, Any]]:
    """The convoy's whole timeline through the API, its pages followed."""
    entries: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000}
    async with httpx.AsyncClient(base_url=running.apis["shipments"], timeout=30) as client:
        while True:
            answer = await client.get(
                f"/v1/convoys/{CONVOY}/timeline", params=params, headers=running.headers("lille")
            )
            assert answer.status_code == 200, answer.text
            entries += answer.json()["entries"]
            if answer.json()["next_cursor"] is None:
                return entries
            params["cursor"] = answer.json()["next_cursor"]


async def test_the_convoy_page_follows_the_pages_of_a_long_timeline(
    tab: Tab, running: Running
) -> None:
    before = await _timeline(running)
    dispatched = next(
        datetime.fromisoformat(e["occurred_at"])
        for e in before
        if e["event_type"].endswith("dispatched")
    )
    road = [
        {
            "entry_id": f"long-{i:04}",
            "kind": "checkpoint",
            "occurred_at": (dispatched + timedelta(seconds=10 * (1 + i))).isoformat(),
            "place": f"Km {i:04}",
        }
        for i in range(CHECKPOINTS)
    ]
    for start in range(0, len(road), 500):
        await running.post(
            "shipments",
            f"/v1/convoys/{CONVOY}/entries",
            "lille",
            {"entries": road[start : start + 500]},
        )
    whole = await _timeline(running)
    assert len(whole) == len(before) + CHECKPOINTS > BOARD_PAGE

    page = tab.page
    await tab.sign_in("kharkiv", at=f"#/convoys/{CONVOY}")
    events = page.locator("ol.timeline li")
    await expect(events).to_have_count(len(whole), timeout=20_000)
    await expect(events.first).to_contain_text("Planned")
    times = await page.locator("ol.timeline li .when time").evaluate_all(
        "ts => ts.map(t => t.getAttribute('datetime'))"
    )
    assert len(times) == len(whole)
    assert times == sorted(times, key=datetime.fromisoformat)
    # each checkpoint once: the one after the board's first page too
    shown = await events.evaluate_all("lis => lis.map(li => li.textContent)")
    for i in (0, BOARD_PAGE - 1, CHECKPOINTS - 1):
        assert sum(f"Km {i:04}" in text for text in shown) == 1, i
