"""A convoy whose whole load was recorded lost, and that arrives all the same (the trucks, or
goods found again), is arrived: its arrival outweighs the losses, so the recipient's delivery
follows (loaded - lost per line), and the convoy is closed after it. Before, the arrival was
recorded while the convoy stayed lost, and the delivery asked for that very arrival (the
outside hunter's case). A lost convoy that never arrives is closed as lost, as before."""

from __future__ import annotations

from typing import Any

import pytest

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem, entry


@pytest.fixture
async def lost(api: ShipmentsApi) -> ShipmentsApi:
    """c1 dispatched with 10 generators, all stolen on the way."""
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    assert (await api.load(manifest_line_id="m1", quantity="10")).status_code == 201
    response = await api.entries(
        "c1",
        entry("dispatch", "2022-06-07T06:10:00+02:00", "d"),
        entry(
            "incident",
            "2022-06-08T23:00:00+02:00",
            "t",
            incident="theft",
            description="the trailer was emptied at a night stop",
            lines=[{"manifest_line_id": "m1", "quantity": "10"}],
        ),
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "lost"
    return api


def delivery(received: str = "0", short: str = "0") -> dict[str, Any]:
    return {
        "receiver": {"name": "Natalia Koval", "role": "warehouse manager"},
        "lines": [{"manifest_line_id": "m1", "received": received, "damaged": "0", "short": short}],
        "occurred_at": "2022-06-10T12:00:00+03:00",
    }


async def test_a_lost_convoy_that_arrives_is_arrived_and_its_delivery_follows(
    lost: ShipmentsApi,
) -> None:
    api = lost
    checkpoint = await api.entries(
        "c1", entry("checkpoint", "2022-06-09T10:00:00+02:00", "cp", place="Lviv")
    )
    assert checkpoint.status_code == 200, checkpoint.text
    assert checkpoint.json()["status"] == "lost"  # still nothing on board
    arrival = await api.entries(
        "c1", entry("arrival", "2022-06-10T10:00:00+03:00", "a", place="Kharkiv")
    )
    assert arrival.status_code == 200, arrival.text
    assert arrival.json()["status"] == "arrived"
    view = await api.convoy()
    assert view["status"] == "arrived" and view["arrived_at"]
    assert (view["manifest"][0]["lost"], view["manifest"][0]["in_transit"]) == ("10", "0")
    headers = await api.as_("kharkiv", Role.MEMBER)
    # loaded 10 - lost 10 = 0 to account for: receiving any is refused with the arithmetic
    wrong = await api.client.post("/v1/convoys/c1/delivery", json=delivery("10"), headers=headers)
    assert_problem(wrong, 422, "delivery-arithmetic")
    confirmed = await api.client.post("/v1/convoys/c1/delivery", json=delivery(), headers=headers)
    assert confirmed.status_code == 201, confirmed.text
    assert confirmed.json()["status"] == "delivered"
    [event] = await api.events("shipments.delivery-confirmed")
    assert [(x["loaded"], x["lost"], x["received"]) for x in event["lines"]] == [("10", "10", "0")]
    closed = await api.client.post(
        "/v1/convoys/c1/close", json={}, headers=await api.as_("lille", Role.LOGISTICS)
    )
    assert closed.status_code == 200, closed.text
    assert [e["outcome"] for e in await api.events("shipments.convoy-closed")] == ["delivered"]


async def test_a_lost_convoy_arrived_or_not_may_still_be_closed_as_lost(
    lost: ShipmentsApi,
) -> None:
    api = lost
    await api.plan("c2")
    closer = await api.as_("lille", Role.LOGISTICS)
    arrival = await api.entries(
        "c1", entry("arrival", "2022-06-10T10:00:00+03:00", "a", place="Kharkiv")
    )
    assert arrival.status_code == 200, arrival.text
    closed = await api.client.post("/v1/convoys/c1/close", json={}, headers=closer)
    assert closed.status_code == 200, closed.text
    assert [e["outcome"] for e in await api.events("shipments.convoy-closed")] == ["lost"]
    # a planned convoy is no lost one: closing it is refused as before
    planned = await api.client.post("/v1/convoys/c2/close", json={}, headers=closer)
    assert_problem(planned, 409, "convoy-status")


async def test_a_convoy_that_arrived_with_part_of_its_load_lost_is_arrived_as_before(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    assert (await api.load(manifest_line_id="m1", quantity="10")).status_code == 201
    response = await api.entries(
        "c1",
        entry("dispatch", "2022-06-07T06:10:00+02:00", "d"),
        entry(
            "incident",
            "2022-06-08T23:00:00+02:00",
            "t",
            incident="theft",
            description="part of the load taken",
            lines=[{"manifest_line_id": "m1", "quantity": "4"}],
        ),
        entry("arrival", "2022-06-10T10:00:00+03:00", "a", place="Kharkiv"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "arrived"
    closing = await api.client.post(
        "/v1/convoys/c1/close", json={}, headers=await api.as_("lille", Role.LOGISTICS)
    )
    assert_problem(closing, 409, "convoy-status")  # its delivery first
