"""A read's ETag is what If-Match takes on the next write (shipments): a convoy read answers
its version as ETag; loading a line with it is taken (and answers the next one), the same tag
sent again once the convoy moved on is 412 and stores nothing."""

from __future__ import annotations

import pytest

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem

LOAD = {
    "pledge_id": "p1",
    "line_id": "l1",
    "quantity": "10",
    "vehicle": "GH-482-LK",
    "occurred_at": "2022-06-06T15:00:00+02:00",
}


# plain HTTP semantics over plain SQL: one CI pass
pytestmark = pytest.mark.once


async def test_a_convoy_s_etag_is_taken_by_if_match_once_and_then_stale(
    api: ShipmentsApi,
) -> None:
    await api.register()
    await api.pledge_line()
    await api.plan("c1")
    logistics = await api.as_("lille", Role.LOGISTICS)
    read = await api.client.get("/v1/convoys/c1", headers=logistics)
    assert read.status_code == 200, read.text
    tag = read.headers["ETag"]
    assert tag == f'"{read.json()["version"]}"'

    loaded = await api.client.post(
        "/v1/convoys/c1/manifest", json=LOAD, headers={**logistics, "If-Match": tag}
    )
    assert loaded.status_code == 201, loaded.text
    assert loaded.headers["ETag"] != tag
    again = await api.client.get("/v1/convoys/c1", headers=logistics)
    assert again.headers["ETag"] == loaded.headers["ETag"]

    before = await api.count()
    stale = await api.client.post(
        "/v1/convoys/c1/manifest",
        json={**LOAD, "quantity": "5"},
        headers={**logistics, "If-Match": tag},
    )
    problem = assert_problem(stale, 412)
    assert problem["current_version"] == again.json()["version"]
    assert await api.count() == before
