"""One convoy written by many clients at once, on real PostgreSQL (issue 19, point 2).

A write without If-Match that loses the race for the convoy's next version is run again on
the state the winner left (shared/web.py), so concurrent writers all succeed; with If-Match the
caller conditioned on a version, and a stale one is refused as before."""

from __future__ import annotations

import asyncio

import httpx

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem


async def test_concurrent_loads_without_if_match_to_one_convoy_all_succeed(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    responses = await asyncio.gather(
        *(api.load("c1", manifest_line_id=f"m{i}", quantity="1") for i in range(8))
    )
    assert [r.status_code for r in responses] == [201] * 8, [
        r.text for r in responses if r.status_code != 201
    ]
    assert sorted(r.json()["version"] for r in responses) == list(range(2, 10))
    assert {r.headers["ETag"] for r in responses} == {f'"{v}"' for v in range(2, 10)}
    assert len(await api.events("shipments.manifest-line-loaded")) == 8
    assert (await api.convoy("c1"))["version"] == 9


async def test_with_if_match_a_lost_race_and_a_stale_version_are_refused_as_before(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    headers = {**await api.as_("lille", Role.LOGISTICS), "If-Match": '"1"'}

    async def load(i: int) -> httpx.Response:
        return await api.client.post(
            "/v1/convoys/c1/manifest",
            json={
                "pledge_id": "p1",
                "line_id": "l1",
                "manifest_line_id": f"m{i}",
                "quantity": "1",
                "vehicle": "GH-482-LK",
                "occurred_at": "2022-06-06T15:00:00+02:00",
            },
            headers=headers,
        )

    responses = await asyncio.gather(*(load(i) for i in range(6)))
    codes = sorted(r.status_code for r in responses)
    assert codes[0] == 201 and set(codes[1:]) <= {409, 412}, [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 409):
        assert_problem(refused, 409, "concurrency-conflict")
    stale = await load(9)
    assert_problem(stale, 412)
    assert len(await api.events("shipments.manifest-line-loaded")) == 1
