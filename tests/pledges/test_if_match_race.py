"""Changes conditioned on the same version (If-Match) that reach the log together: one is
recorded, and every other is refused 412 precondition-failed, as a stale If-Match is, never
409 (RFC 9110: "the record is at version 1" no longer holds), and stores nothing.

The race is made certain, not left to timing: the log is locked against appends while the
three changes are decided on version 1, and released once all three wait to append."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx

from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, assert_problem, generators_pledge

PLEDGE = "/v1/pledges/lille-generators"
WAITING_TO_APPEND = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'
  AND query LIKE '%twinaid_append%'
"""


async def _all_wait_to_append(blocker: asyncpg.Connection, writers: int) -> None:
    for _ in range(500):
        await blocker.execute("SELECT pg_stat_clear_snapshot()")  # read afresh in the transaction
        if await blocker.fetchval(WAITING_TO_APPEND) == writers:
            return
        await asyncio.sleep(0.01)
    rows = await blocker.fetch(
        "SELECT wait_event_type, wait_event, state, left(query, 200) AS q FROM pg_stat_activity"
        " WHERE datname = current_database()"
    )
    raise AssertionError(f"{writers} writers never all waited to append: {[dict(r) for r in rows]}")


async def _racing(
    api: PledgesApi, changes: dict[str, dict[str, Any]], *, if_match: str | None = '"1"'
) -> list[httpx.Response]:
    """The `changes` (path -> body) by the donor, with `if_match`, each decided on version 1
    before any of them appends."""
    condition = {"If-Match": if_match} if if_match is not None else {}
    headers = {**await api.as_("lille"), **condition}
    blocker = await asyncpg.connect(api.url)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # reads still go
            sent = [
                asyncio.create_task(api.client.post(path, json=body, headers=headers))
                for path, body in changes.items()
            ]
            await _all_wait_to_append(blocker, len(sent))
        return list(await asyncio.gather(*sent))
    finally:
        await blocker.close()


async def test_the_changes_that_lose_the_race_for_the_version_they_named_get_412(
    api: PledgesApi,
) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    stored = await api.count_events()
    responses = await _racing(
        api,
        {
            f"{PLEDGE}/commit": {},
            f"{PLEDGE}/withdraw": {"reason": "plans changed"},
            f"{PLEDGE}/lines/generators/amendments": {"quantity": "80", "reason": "fewer"},
        },
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 412, 412], [r.text for r in responses]
    [won] = [r for r in responses if r.status_code == 200]
    for lost in (r for r in responses if r.status_code == 412):
        problem = assert_problem(lost, 412)
        assert problem["type"].endswith("/precondition-failed")
        assert problem["current_version"] == won.json()["version"]
        version = won.json()["version"]
        assert (
            problem["detail"] == f"the record is at version {version}, not 1: reload it and retry"
        )
    pledge = await api.get(PLEDGE, reader="lille")
    assert pledge["version"] == won.json()["version"]
    assert await api.count_events() == stored + (won.json()["version"] - 1)


async def test_without_if_match_the_same_race_is_run_again_and_both_are_recorded(
    api: PledgesApi,
) -> None:
    made = "2023-01-01T00:00:00+00:00"  # the donor's figure is dated no earlier
    await api.ok("/v1/needs", {**GENERATORS_NEED, "occurred_at": made}, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(occurred_at=made), by="lille")
    responses = await _racing(
        api,
        {
            f"{PLEDGE}/lines/generators/amendments": {"quantity": "80", "reason": "fewer"},
            f"{PLEDGE}/lines/generators/donor-figures": {
                "quantity": "0",
                "reported_on": "2023-01-01",
            },
        },
        if_match=None,
    )
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert (await api.get(PLEDGE, reader="lille"))["version"] == 3
