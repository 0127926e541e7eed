"""Quantities and weights at the request boundary: any exponent, any number of digits, is a
short 422 naming the field with nothing stored, or is stored exactly as written (never rounded
in a 28-digit context, never flushed to zero); and the decimal text events carry is exact and
bounded for any Decimal."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pytest

from shared.event_models import MAX_DECIMAL_TEXT, decimal_places, decimal_text
from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, assert_problem, generators_pledge

PLEDGE = "/v1/pledges/lille-generators"
SHORT = 1000  # bytes: a refusal answers in a few lines, whatever the request held

# what the hunter sent, and their kin: each beyond 10^12 or beyond 6 decimal places; a string
# with an exponent is not the documented pattern (the same figures as JSON numbers:
# test_json_numbers_as_written.py)
OUT_OF_BOUNDS = [
    pytest.param("1E+999999999", "without an exponent", id="huge-exponent"),
    pytest.param("1E+1000000", "without an exponent", id="exponent-past-context"),
    pytest.param("1E+999999", "without an exponent", id="million-digits-spelt"),
    pytest.param(10**400, "exceeds 1000000000000", id="json-integer"),
    pytest.param("-1E+1000000", "without an exponent", id="huge-negative"),
    pytest.param("1E-999999999", "without an exponent", id="tiny"),
    pytest.param("1E-1000000", "without an exponent", id="tiny-past-context"),
    pytest.param("1.0000000000000000000000000000001", "more than 6 decimal places", id="31dp"),
    pytest.param(
        "99999999999.9999999999999999999999", "more than 6 decimal places", id="34-digits"
    ),
    pytest.param("1.0000001", "more than 6 decimal places", id="7dp"),
]


def _kg_line(**changes: Any) -> dict[str, Any]:
    return {
        "line_id": "flour",
        "kind": "in_kind",
        "item": "Flour",
        "category": "food",
        "quantity": "500",
        "unit": "kg",
        **changes,
    }


def _refused(response: Any, field: str, says: str) -> dict[str, Any]:
    problem = assert_problem(response, 422)
    assert len(response.content) < SHORT, len(response.content)
    assert [p["name"] for p in problem["invalid_params"]] == [field], problem
    assert says in problem["detail"], problem
    return problem


@pytest.mark.parametrize(("quantity", "says"), OUT_OF_BOUNDS)
async def test_a_need_quantity_out_of_bounds_is_a_short_422_and_stores_nothing(
    api: PledgesApi, quantity: Any, says: str
) -> None:
    body = {**GENERATORS_NEED, "quantity": quantity, "unit": "kg", "recipient_id": "kharkiv"}
    _refused(await api.post("/v1/needs", body, by="kharkiv"), "quantity", says)
    assert await api.count_events() == 0
    assert await api.fetch("SELECT 1 FROM needs") == []


@pytest.mark.parametrize(("quantity", "says"), OUT_OF_BOUNDS)
@pytest.mark.parametrize("field", ["quantity", "weight_kg"])
async def test_a_pledge_line_quantity_or_weight_out_of_bounds_is_a_422_and_stores_nothing(
    api: PledgesApi, field: str, quantity: Any, says: str
) -> None:
    body = generators_pledge(lines=[_kg_line(**{field: quantity})], partnership_id=None)
    _refused(await api.post("/v1/pledges", body, by="lille"), f"lines.0.{field}", says)
    assert await api.count_events() == 0
    assert await api.fetch("SELECT 1 FROM pledges") == []


async def test_a_tiny_quantity_never_becomes_a_fulfilled_zero(api: PledgesApi) -> None:
    # as JSON numbers: a string with an exponent is refused for it
    headers = {**await api.as_("lille"), "Content-Type": "application/json"}
    for field in ("quantity", "weight_kg"):
        line = _kg_line(**{field: 0})
        raw = json.dumps(generators_pledge(lines=[line], partnership_id=None))
        raw = raw.replace(f'"{field}": 0', f'"{field}": 1E-999999999')
        response = await api.client.post("/v1/pledges", content=raw, headers=headers)
        _refused(response, f"lines.0.{field}", "decimal places")
    assert await api.count_events() == 0


@pytest.mark.parametrize(("quantity", "says"), OUT_OF_BOUNDS)
async def test_a_revision_amendment_or_donor_figure_out_of_bounds_changes_nothing(
    api: PledgesApi, quantity: Any, says: str
) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(commit=True), by="lille")
    before = await api.count_events()
    revision = {"quantity": quantity, "reason": "more"}
    _refused(
        await api.post("/v1/needs/kharkiv-generators/revisions", revision, by="kharkiv"),
        "quantity",
        says,
    )
    amendment = {"quantity": quantity, "reason": "fewer"}
    _refused(
        await api.post(f"{PLEDGE}/lines/generators/amendments", amendment, by="lille"),
        "quantity",
        says,
    )
    figure = {"quantity": quantity, "reported_on": "2023-03-20"}
    _refused(
        await api.post(f"{PLEDGE}/lines/generators/donor-figures", figure, by="lille"),
        "quantity",
        says,
    )
    assert await api.count_events() == before
    need = await api.get("/v1/needs/kharkiv-generators")
    assert (need["target"]["quantity"], need["revisions"]) == ("100", [])
    [line] = (await api.get(PLEDGE))["lines"]
    assert (line["quantity"], line["amendments"], line["donor_reported"]) == ("100", [], None)


@pytest.mark.parametrize(
    "quantity",
    [
        pytest.param("1_000", id="underscores"),
        pytest.param("\u0661\u0662", id="arabic-indic-digits"),
        pytest.param("\uff11\uff12", id="fullwidth-digits"),
        pytest.param("12,5", id="decimal-comma"),
        pytest.param("1E+99999999999999999999999", id="exponent-past-decimal"),
    ],
)
async def test_a_quantity_not_written_as_a_json_number_is_refused_not_read_changed(
    api: PledgesApi, quantity: str
) -> None:
    body = generators_pledge(lines=[_kg_line(quantity=quantity)], partnership_id=None)
    _refused(await api.post("/v1/pledges", body, by="lille"), "lines.0.quantity", "not a decimal")
    assert await api.count_events() == 0


@pytest.mark.parametrize(
    ("quantity", "unit", "stored"),
    [
        (1e2, "pieces", "100"),
        (100, "pieces", "100"),
        ("1000000000000", "pieces", "1000000000000"),
        (1e12, "pieces", "1000000000000"),
        ("12.500000", "kg", "12.5"),
        ("0.000001", "kg", "0.000001"),
        ("999999999999.999999", "kg", "999999999999.999999"),
        ("1.50000000000000000000000000000000000000", "kg", "1.5"),
        (0.25, "tonnes", "0.25"),
    ],
)
async def test_a_quantity_within_bounds_is_stored_exactly_as_written(
    api: PledgesApi, quantity: Any, unit: str, stored: str
) -> None:
    line = _kg_line(quantity=quantity, unit=unit, weight_kg=quantity)
    await api.ok("/v1/pledges", generators_pledge(lines=[line], partnership_id=None), by="lille")
    [made] = await api.events("pledges.pledge-made")
    assert (made["lines"][0]["quantity"], made["lines"][0]["weight_kg"]) == (stored, stored)
    [read] = (await api.get(PLEDGE, reader="lille"))["lines"]
    assert read["quantity"] == stored


async def test_a_figure_at_the_bounds_is_accepted_exactly(api: PledgesApi) -> None:
    need = {**GENERATORS_NEED, "quantity": "0.000001", "unit": "tonnes"}
    await api.ok("/v1/needs", need, by="kharkiv")
    revision = {"quantity": "999999999999.999999", "reason": "all of it"}
    await api.ok("/v1/needs/kharkiv-generators/revisions", revision, by="kharkiv")
    [posted] = await api.events("pledges.need-posted")
    [revised] = await api.events("pledges.need-revised")
    assert (posted["quantity"], revised["changes"]["quantity"]) == (
        "0.000001",
        "999999999999.999999",
    )
    target = (await api.get("/v1/needs/kharkiv-generators"))["target"]
    assert target["quantity"] == "999999999999.999999"


@pytest.mark.parametrize("number", ["1e400", "-1e400", "Infinity", "-Infinity", "NaN"])
async def test_an_amount_json_reads_as_infinite_or_nan_is_a_422_not_a_500(
    api: PledgesApi, number: str
) -> None:
    """Python's JSON reader turns 1e400 into an infinity and takes the NaN and Infinity
    literals: an amount of minor units refuses them as it refuses any non-integer."""
    money = {"kind": "money", "category": "medicines", "description": "d", "currency": "EUR"}
    line = {"line_id": "f", "kind": "money", "item": "Funds", "category": "food", "currency": "EUR"}
    in_kind = _kg_line(estimated_value={"amount": 0, "currency": "EUR"})
    for path, raw, by, field in [
        ("/v1/needs", json.dumps({**money, "amount": 0}), "kharkiv", "amount"),
        (
            "/v1/pledges",
            json.dumps(generators_pledge(lines=[{**line, "amount": 0}])),
            "lille",
            "lines.0.amount",
        ),
        (
            "/v1/pledges",
            json.dumps(generators_pledge(lines=[in_kind])),
            "lille",
            "lines.0.estimated_value.amount",
        ),
    ]:
        body = raw.replace('"amount": 0', f'"amount": {number}')
        headers = {**await api.as_(by), "Content-Type": "application/json"}
        response = await api.client.post(path, content=body, headers=headers)
        _refused(response, field, "not an integer")
    assert await api.count_events() == 0


# decimal_text and decimal_places: exact and bounded for any Decimal


def _rounded_text(value: Decimal) -> str:
    """What decimal_text wrote before: normalize() in the default 28-digit context."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def test_decimal_text_writes_what_it_wrote_for_every_figure_of_28_digits_or_fewer() -> None:
    rng = random.Random(20261206)
    for _ in range(20_000):
        value = Decimal(rng.randint(-(10**28) + 1, 10**28 - 1)).scaleb(rng.randint(-40, 40))
        if abs(value.adjusted()) < 60:
            assert decimal_text(value) == _rounded_text(value), value


@pytest.mark.parametrize(
    ("written", "text", "places"),
    [
        ("0", "0", 0),
        ("-0.000", "0", 0),
        ("12.50", "12.5", 1),
        ("1E+3", "1000", 0),
        ("-0.00100", "-0.001", 3),
        ("1.0000000000000000000000000000001", "1.0000000000000000000000000000001", 31),
        ("99999999999.9999999999999999999999", "99999999999.9999999999999999999999", 22),
        ("1E+999999999", "1E+999999999", 0),
        ("-1E+1000000", "-1E+1000000", 0),
        ("1E-999999999", "1E-999999999", 999999999),
        ("1.2345678901234567890123E+100", "1.2345678901234567890…E+100", 0),
    ],
)
def test_decimal_text_is_exact_and_short_for_any_decimal(
    written: str, text: str, places: int
) -> None:
    value = Decimal(written)
    assert decimal_text(value) == text
    assert len(decimal_text(value)) <= MAX_DECIMAL_TEXT
    assert decimal_places(value) == places


def test_decimal_text_of_a_huge_coefficient_is_bounded() -> None:
    value = Decimal("7" * 100_000 + "E+5")
    assert decimal_text(value) == "7.7777777777777777777…E+100004"
    assert decimal_places(Decimal("1." + "0" * 100_000)) == 0
