"""Shipments amounts (quantities, weights, capacities, delivered figures) are written in the
digits 0 to 9, as the OpenAPI pattern documents: digits of other scripts, which the validator's
Unicode \\d and Decimal() would both read and the event would hold changed, are a 422 naming
the field, with nothing stored."""

from __future__ import annotations

import json

import pytest

from shared.auth import Role
from tests.shipments.conftest import TRUCKS, ShipmentsApi, assert_problem, entry, plan_body

OTHER_DIGITS = [
    pytest.param("\u0661\u0662", id="arabic-indic"),
    pytest.param("\uff11\uff12", id="fullwidth"),
    pytest.param("\u0967\u0968.\u0969", id="devanagari"),
]


@pytest.mark.parametrize("amount", OTHER_DIGITS)
async def test_a_capacity_in_other_digits_is_a_422_and_plans_nothing(
    api: ShipmentsApi, amount: str
) -> None:
    body = plan_body(vehicles=[{**TRUCKS[0], "capacity_kg": amount}])
    response = await api.client.post(
        "/v1/convoys", json=body, headers=await api.as_("lille", Role.LOGISTICS)
    )
    problem = assert_problem(response, 422)
    assert [p["name"] for p in problem["invalid_params"]] == ["vehicles.0.capacity_kg"]
    assert "digits 0 to 9" in problem["detail"]
    assert await api.count() == 0


@pytest.mark.parametrize("amount", OTHER_DIGITS)
async def test_a_load_in_other_digits_is_a_422_and_loads_nothing(
    api: ShipmentsApi, amount: str
) -> None:
    await api.pledge_line(quantity="50")
    await api.plan()
    before = await api.count()
    for fields, field in [({"quantity": amount}, "quantity"), ({"weight_kg": amount}, "weight_kg")]:
        problem = assert_problem(await api.load(**fields), 422)
        assert [p["name"] for p in problem["invalid_params"]] == [field]
    assert await api.count() == before
    assert (await api.convoy())["manifest"] == []


async def test_amounts_in_ascii_digits_load_as_written(api: ShipmentsApi) -> None:
    await api.pledge_line(quantity="50")
    await api.plan()
    loaded = await api.load(manifest_line_id="m1", quantity="12", weight_kg="30.5")
    assert loaded.status_code == 201, loaded.text
    assert (loaded.json()["quantity"], loaded.json()["weight_kg"]) == ("12", "30.5")


@pytest.mark.parametrize("number", ["1e400", "-1e400", "Infinity", "NaN"])
async def test_a_coordinate_or_delay_json_reads_as_infinite_or_nan_is_a_422(
    api: ShipmentsApi, number: str
) -> None:
    """Python's JSON reader turns 1e400 into an infinity and takes the NaN and Infinity
    literals: coordinates and delays refuse them, never a 500."""
    await api.plan()
    before = await api.count()
    at = "2022-06-08T18:30:00+02:00"
    checkpoint = entry("checkpoint", at, place="Wroclaw", coordinates={"lat": 0, "lon": 17.0})
    delay = entry("incident", at, incident="delay", description="queue", delay_minutes=0)
    headers = {
        **await api.as_("transports-nord", Role.LOGISTICS),
        "Content-Type": "application/json",
    }
    for one, text, field in [
        (checkpoint, '"lat": 0', "entries.0.checkpoint.coordinates.lat"),
        (delay, '"delay_minutes": 0', "entries.0.incident.delay_minutes"),
    ]:
        raw = json.dumps({"entries": [one]}).replace(text, text.replace("0", number))
        response = await api.client.post("/v1/convoys/c1/entries", content=raw, headers=headers)
        problem = assert_problem(response, 422)
        assert [p["name"] for p in problem["invalid_params"]] == [field], problem
    assert await api.count() == before
