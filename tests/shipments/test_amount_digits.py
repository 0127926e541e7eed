"""Shipments amounts (quantities, weights, capacities, delivered figures) are written in the
digits 0 to 9, as the OpenAPI pattern documents: digits of other scripts, which the validator's
Unicode \\d and Decimal() would both read and the event would hold changed, are a 422 naming
the field, with nothing stored."""

from __future__ import annotations

import pytest

from shared.auth import Role
from tests.shipments.conftest import TRUCKS, ShipmentsApi, assert_problem, plan_body

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
