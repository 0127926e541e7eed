"""A dispatch is held to the rule a load is held to (409 exceeds-remaining): what the convoy
carries of a pledge line must fit what the line still commits beyond what other convoys hold
of it. Pledges may reduce a line after the convoy was loaded (the outside hunter's case: 40
loaded, the line then reduced to 20): the dispatch is refused naming the line, and nothing is
stored, until the convoy carries no more than that."""

from __future__ import annotations

from typing import Any

import httpx

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem, entry

LILLE = ("lille", Role.LOGISTICS)
CARRIER = ("transports-nord", Role.LOGISTICS)


def dispatch(entry_id: str = "d") -> dict[str, Any]:
    return entry("dispatch", "2022-06-07T06:10:00+02:00", entry_id)


async def dispatch_with_key(api: ShipmentsApi, convoy_id: str, key: str) -> httpx.Response:
    """A dispatch sent with an Idempotency-Key: decided alone, outside the group commit."""
    headers = {**await api.as_(*CARRIER), "Idempotency-Key": key}
    return await api.client.post(
        f"/v1/convoys/{convoy_id}/entries", json={"entries": [dispatch()]}, headers=headers
    )


async def pledge_line(api: ShipmentsApi) -> dict[str, Any]:
    response = await api.client.get("/v1/pledge-lines/p1/l1", headers=await api.as_(*LILLE))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_convoy_carrying_more_than_the_reduced_line_commits_is_not_dispatched(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    assert (await api.load(manifest_line_id="m1", quantity="40")).status_code == 201
    await api.pledge_line(quantity="20", remaining="20")  # pledges reduced the line
    line = await pledge_line(api)
    assert (line["quantity"], line["allocated"]) == ("20", "40")
    before = await api.count()
    for refused in (await api.entries("c1", dispatch()), await dispatch_with_key(api, "c1", "k1")):
        problem = assert_problem(refused, 409, "exceeds-remaining")
        assert problem["entry_id"] == "d"
        assert problem["manifest_line_ids"] == ["m1"]
        assert problem["pledge_lines"] == [
            {
                "pledge_id": "p1",
                "line_id": "l1",
                "committed": "20",
                "allocated_elsewhere": "0",
                "remaining": "20",
                "carried": "40",
                "manifest_line_ids": ["m1"],
            }
        ]
        assert "pledge line p1/l1 (Medium generator 5 kVA) now commits 20" in problem["detail"]
    assert await api.count() == before
    assert (await api.convoy("c1"))["status"] == "loading"
    # what the line commits now is loaded instead: the convoy leaves with it
    unload = await api.client.post(
        "/v1/convoys/c1/manifest/m1/unload",
        json={"occurred_at": "2022-06-06T16:00:00+02:00"},
        headers=await api.as_(*LILLE),
    )
    assert unload.status_code == 200, unload.text
    reloaded = await api.load(
        manifest_line_id="m2", quantity="20", occurred_at="2022-06-06T17:00:00+02:00"
    )
    assert reloaded.status_code == 201, reloaded.text
    left = await api.entries("c1", dispatch())
    assert left.status_code == 200, left.text
    assert (await api.convoy("c1"))["status"] == "in_transit"


async def test_each_convoy_may_carry_what_the_line_commits_beyond_the_others_share(
    api: ShipmentsApi,
) -> None:
    """Line of 50: c1 loads 30, c2 loads 20; the line is reduced to 40. Together they hold 50:
    neither may leave (c1 may carry 40 - 20, c2 40 - 30) until one gives back enough."""
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    await api.plan("c2")
    assert (await api.load("c1", manifest_line_id="m1", quantity="30")).status_code == 201
    assert (await api.load("c2", manifest_line_id="m2", quantity="20")).status_code == 201
    await api.pledge_line(quantity="40", remaining="40")
    before = await api.count()
    c1 = assert_problem(await api.entries("c1", dispatch()), 409, "exceeds-remaining")
    assert [
        (x["allocated_elsewhere"], x["remaining"], x["carried"]) for x in c1["pledge_lines"]
    ] == [("20", "20", "30")]
    c2 = assert_problem(await dispatch_with_key(api, "c2", "c2-1"), 409, "exceeds-remaining")
    assert [
        (x["allocated_elsewhere"], x["remaining"], x["carried"]) for x in c2["pledge_lines"]
    ] == [("30", "10", "20")]
    assert await api.count() == before
    unload = await api.client.post(
        "/v1/convoys/c2/manifest/m2/unload",
        json={"occurred_at": "2022-06-06T16:00:00+02:00"},
        headers=await api.as_(*LILLE),
    )
    assert unload.status_code == 200, unload.text
    left = await dispatch_with_key(api, "c1", "c1-2")
    assert left.status_code == 200, left.text
    line = await pledge_line(api)
    assert (line["quantity"], line["allocated"]) == ("40", "30")


async def test_a_convoy_within_the_line_leaves_as_before(api: ShipmentsApi) -> None:
    """Line of 50 reduced to 45 with 40 loaded: it still commits what the convoy carries."""
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    assert (await api.load(manifest_line_id="m1", quantity="40")).status_code == 201
    await api.pledge_line(quantity="45", remaining="45")
    left = await api.entries("c1", dispatch())
    assert left.status_code == 200, left.text
