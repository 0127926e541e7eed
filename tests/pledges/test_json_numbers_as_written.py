"""A quantity sent as a JSON number is taken exactly as written (shared/json_body.py), never
through a float: stored as written when within the bounds (10^12, 6 decimal places), refused
with a 422 naming the field when beyond them. A quantity sent as a string follows the
documented pattern `^\\s*[0-9]*\\.?[0-9]+\\s*$` (no exponent, sign or trailing point)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, assert_problem, generators_pledge


async def _post_raw(api: PledgesApi, path: str, body: dict[str, Any], field: str, number: str):
    """POST `body` with `field` (a top-level key set to 0) written as the JSON number `number`."""
    raw = json.dumps({**body, field: 0}).replace(f'"{field}": 0', f'"{field}": {number}', 1)
    assert number in raw
    headers = {**await api.as_("kharkiv"), "Content-Type": "application/json"}
    return await api.client.post(path, content=raw, headers=headers)


def _need(**changes: Any) -> dict[str, Any]:
    return {**GENERATORS_NEED, "unit": "kg", **changes}


@pytest.mark.parametrize(
    ("number", "stored"),
    [
        ("123456789012.123456", "123456789012.123456"),
        ("999999999999.999999", "999999999999.999999"),
        ("0.000001", "0.000001"),
        ("0.1", "0.1"),
        ("1e3", "1000"),
        ("1.5E+2", "150"),
        ("12.500000", "12.5"),
    ],
)
async def test_a_json_number_quantity_is_stored_exactly_as_written(
    api: PledgesApi, number: str, stored: str
) -> None:
    response = await _post_raw(api, "/v1/needs", _need(), "quantity", number)
    assert response.status_code == 201, response.text
    [posted] = await api.events("pledges.need-posted")
    assert posted["quantity"] == stored
    need = await api.get("/v1/needs/kharkiv-generators")
    assert need["target"]["quantity"] == stored


@pytest.mark.parametrize(
    ("number", "says"),
    [
        ("1000000000000.0000001", "exceeds 1000000000000"),
        ("999999999999.9999999", "more than 6 decimal places"),
        ("1.0000001", "more than 6 decimal places"),
        ("0.0000001", "more than 6 decimal places"),
        ("1000000000000.000001", "exceeds 1000000000000"),
        ("1E+999999999", "exceeds 1000000000000"),
        ("1e400", "exceeds 1000000000000"),
        ("-1E+1000000", "must not be negative"),
        ("1E-999999999", "more than 6 decimal places"),
    ],
)
async def test_a_json_number_quantity_beyond_the_bounds_as_written_is_a_422(
    api: PledgesApi, number: str, says: str
) -> None:
    response = await _post_raw(api, "/v1/needs", _need(), "quantity", number)
    problem = assert_problem(response, 422)
    assert [p["name"] for p in problem["invalid_params"]] == ["quantity"], problem
    assert says in problem["detail"], problem
    assert await api.count_events() == 0
    assert await api.fetch("SELECT 1 FROM needs") == []


async def test_a_pledge_line_quantity_and_weight_as_json_numbers_are_exact(
    api: PledgesApi,
) -> None:
    line = {
        "line_id": "flour",
        "kind": "in_kind",
        "item": "Flour",
        "category": "food",
        "quantity": "Q",
        "unit": "kg",
        "weight_kg": "W",
    }
    raw = json.dumps(generators_pledge(lines=[line], partnership_id=None))
    raw = raw.replace('"Q"', "123456789012.123456").replace('"W"', "0.333333")
    headers = {**await api.as_("lille"), "Content-Type": "application/json"}
    response = await api.client.post("/v1/pledges", content=raw, headers=headers)
    assert response.status_code == 201, response.text
    [made] = await api.events("pledges.pledge-made")
    assert (made["lines"][0]["quantity"], made["lines"][0]["weight_kg"]) == (
        "123456789012.123456",
        "0.333333",
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("1e3", "without an exponent"),
        ("1E+2", "without an exponent"),
        ("5.", "not a decimal number"),
        ("+5", "without a sign"),
        ("-5", "must not be negative"),
        ("1.2.3", "not a decimal number"),
        ("", "not a decimal number"),
        (" ", "not a decimal number"),
        ("0" * 40 + "1", "up to 40 characters"),
    ],
)
async def test_a_quantity_string_outside_the_documented_pattern_is_a_422_naming_it(
    api: PledgesApi, text: str, says: str
) -> None:
    response = await api.post("/v1/needs", _need(quantity=text), by="kharkiv")
    problem = assert_problem(response, 422)
    assert [p["name"] for p in problem["invalid_params"]] == ["quantity"], problem
    assert says in problem["detail"], problem
    line = {"line_id": "f", "kind": "in_kind", "item": "Flour", "category": "food", "unit": "kg"}
    for field in ("quantity", "weight_kg"):
        body = generators_pledge(
            lines=[{"quantity": "5", **line, field: text}], partnership_id=None
        )
        problem = assert_problem(await api.post("/v1/pledges", body, by="lille"), 422)
        assert [p["name"] for p in problem["invalid_params"]] == [f"lines.0.{field}"], problem
    assert await api.count_events() == 0


@pytest.mark.parametrize(
    ("text", "stored"),
    [(" 12.5 ", "12.5"), (".5", "0.5"), ("0012", "12"), ("0" * 39 + "1", "1")],
)
async def test_a_quantity_string_in_the_documented_pattern_is_stored(
    api: PledgesApi, text: str, stored: str
) -> None:
    await api.ok("/v1/needs", _need(quantity=text), by="kharkiv")
    [posted] = await api.events("pledges.need-posted")
    assert posted["quantity"] == stored
