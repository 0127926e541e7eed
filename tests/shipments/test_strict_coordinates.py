"""A road entry's coordinates are JSON numbers, as an organisation's are (one CoordinatesIn,
shared/route_params.py): a string or a boolean is a 422 naming it, never stored converted
(`true` used to be stored as longitude 1)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.shipments.conftest import ShipmentsApi, assert_problem, entry

DISPATCH = "2022-06-07T06:10:00+02:00"


@pytest.fixture
async def on_the_road(api: ShipmentsApi) -> ShipmentsApi:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    await api.load(manifest_line_id="m1", quantity="10")
    response = await api.entries("c1", entry("dispatch", DISPATCH, "d"))
    assert response.status_code == 200, response.text
    return api


def at(coordinates: Any, entry_id: str = "cp") -> dict[str, Any]:
    return entry(
        "checkpoint", "2022-06-07T10:00:00+02:00", entry_id, place="Aachen", coordinates=coordinates
    )


@pytest.mark.parametrize(
    ("coordinates", "field"),
    [
        ({"lat": "49.9", "lon": 36.2}, "lat"),
        ({"lat": 49.9, "lon": True}, "lon"),
        ({"lat": 49.9, "lon": None}, "lon"),
        ({"lat": 91, "lon": 36.2}, "lat"),
    ],
)
async def test_coordinates_that_are_not_numbers_in_range_are_refused(
    on_the_road: ShipmentsApi, coordinates: dict[str, Any], field: str
) -> None:
    api = on_the_road
    before = await api.count()
    problem = assert_problem(await api.entries("c1", at(coordinates)), 422)
    assert f"entries.0.checkpoint.coordinates.{field}" in [
        p["name"] for p in problem["invalid_params"]
    ]
    assert await api.count() == before


async def test_numbers_are_stored_as_sent(on_the_road: ShipmentsApi) -> None:
    api = on_the_road
    response = await api.entries("c1", at({"lat": 49.99, "lon": 36}))
    assert response.status_code == 200, response.text
    [recorded] = await api.events("shipments.checkpoint-recorded")
    assert recorded["coordinates"] == {"lat": 49.99, "lon": 36}
