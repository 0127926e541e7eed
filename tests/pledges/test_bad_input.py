"""Bad input: each a clear 4xx problem+json naming what is wrong, with nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

from shared.auth import Role
from tests.pledges.conftest import (
    GENERATORS_NEED,
    PledgesApi,
    assert_problem,
    generators_pledge,
)

MONEY_NEED = {
    "need_id": "lille-convoy",
    "kind": "money",
    "category": "medicines",
    "description": "The other half of the second convoy",
    "amount": 10_000_000,
    "currency": "EUR",
}


def _line(**changes: Any) -> dict[str, Any]:
    line = {**generators_pledge()["lines"][0], "need_id": None, **changes}
    return {k: v for k, v in line.items() if v is not None or k == "need_id"}


def _money_line(**changes: Any) -> dict[str, Any]:
    return {
        "line_id": "funds",
        "kind": "money",
        "item": "Second convoy",
        "category": "medicines",
        "amount": 5_000_000,
        "currency": "EUR",
        **changes,
    }


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"quantity": "0"}, "quantity", "greater than zero"),
        ({"quantity": -5}, "quantity", "greater than zero"),
        ({"quantity": "lots"}, "quantity", "not a decimal"),
        ({"quantity": "2.5"}, "quantity", "not a whole number"),
        ({"unit": "crates"}, "unit", "pieces"),
        (
            {"kind": "money", "quantity": None, "unit": None, "amount": 100, "currency": "XYZ"},
            "currency",
            "ISO 4217",
        ),
        (
            {"kind": "money", "quantity": None, "unit": None, "amount": 100.5, "currency": "EUR"},
            "amount",
            "fraction of a minor unit",
        ),
        (
            {"kind": "money", "quantity": None, "unit": None, "amount": "100", "currency": "EUR"},
            "amount",
            "not an integer",
        ),
        (
            {"kind": "money", "quantity": None, "unit": None, "amount": 2**60, "currency": "EUR"},
            "amount",
            "too large",
        ),
        ({"priority": "urgent"}, "priority", "critical"),
        ({"surprise": True}, "surprise", "Extra inputs"),
    ],
)
async def test_a_bad_need_is_refused_naming_the_field(
    api: PledgesApi, change: dict[str, Any], field: str, says: str
) -> None:
    body = {k: v for k, v in {**GENERATORS_NEED, **change}.items() if v is not None}
    problem = assert_problem(await api.post("/v1/needs", body, by="kharkiv"), 422)
    assert field in str(problem.get("invalid_params")) + problem["detail"]
    assert says in problem["detail"]
    assert await api.count_events() == 0


async def test_a_need_for_an_organisation_the_registry_never_announced_is_refused(
    api: PledgesApi,
) -> None:
    problem = assert_problem(await api.post("/v1/needs", GENERATORS_NEED, by="atlantis"), 422)
    assert problem["invalid_params"] == [{"name": "recipient_id", "reason": "unknown organisation"}]
    assert await api.count_events() == 0


async def test_posting_a_need_for_another_organisation_is_forbidden(api: PledgesApi) -> None:
    body = {**GENERATORS_NEED, "recipient_id": "kharkiv"}
    problem = assert_problem(await api.post("/v1/needs", body, by="lille"), 403)
    assert "lille" in problem["detail"] and "kharkiv" in problem["detail"]
    assert await api.count_events() == 0


@pytest.mark.parametrize(
    ("line", "field", "says"),
    [
        (_line(quantity="0"), "lines[0].quantity", "greater than zero"),
        (_line(quantity=-1), "lines[0].quantity", "greater than zero"),
        (_line(quantity="50.5"), "lines[0].quantity", "not a whole number"),
        (_line(unit="barrels"), "lines.0.unit", "pieces"),
        (_line(weight_kg=-3), "lines[0].weight_kg", "greater than zero"),
        (_money_line(currency="ECU"), "lines[0].currency", "ISO 4217"),
        (_money_line(amount=1234.5), "lines.0.amount", "fraction of a minor unit"),
        (_money_line(amount=-100), "lines[0].amount", "greater than zero"),
        (_money_line(amount=2**53), "lines.0.amount", "too large"),
        (_money_line(quantity="3", unit="pieces"), "lines[0].quantity", "is money"),
    ],
)
async def test_a_bad_pledge_line_is_refused_naming_it(
    api: PledgesApi, line: dict[str, Any], field: str, says: str
) -> None:
    body = generators_pledge(lines=[line], partnership_id=None)
    problem = assert_problem(await api.post("/v1/pledges", body, by="lille"), 422)
    assert field in str(problem.get("invalid_params")), problem
    assert says in problem["detail"]
    assert await api.count_events() == 0


async def test_pledging_on_behalf_of_another_organisation_is_forbidden(api: PledgesApi) -> None:
    body = generators_pledge(donor_id="chu-lille")
    problem = assert_problem(await api.post("/v1/pledges", body, by="lille"), 403)
    assert "may not act for chu-lille" in problem["detail"]
    assert await api.count_events() == 0


async def test_auditors_and_logistics_keys_write_nothing(api: PledgesApi) -> None:
    for role in (Role.AUDITOR, Role.LOGISTICS):
        response = await api.post("/v1/needs", GENERATORS_NEED, by="kharkiv", role=role)
        assert_problem(response, 403)
    assert await api.count_events() == 0


async def test_committing_a_withdrawn_pledge_is_a_conflict(api: PledgesApi) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    await api.ok("/v1/pledges/lille-generators/withdraw", {"reason": "budget cut"}, by="lille")
    before = await api.count_events()
    problem = assert_problem(
        await api.post("/v1/pledges/lille-generators/commit", {}, by="lille"), 409
    )
    assert "withdrawn (budget cut)" in problem["detail"]
    assert problem["pledge_status"] == "withdrawn"
    assert await api.count_events() == before


async def test_receiving_more_money_than_pledged_is_a_conflict(api: PledgesApi) -> None:
    made = "2023-02-01T00:00:00+00:00"
    body = generators_pledge(lines=[_money_line(amount=10_000)], commit=True, occurred_at=made)
    await api.ok("/v1/pledges", body, by="lille")
    path = "/v1/pledges/lille-generators/lines/funds/receipts"
    receipt = {
        "amount": 6_000,
        "currency": "EUR",
        "received_on": "2023-02-15",
        "reference": "wire-1",
    }
    await api.ok(path, receipt, by="kharkiv")
    before = await api.count_events()
    too_much = {**receipt, "amount": 4_001, "reference": "wire-2"}
    problem = assert_problem(await api.post(path, too_much, by="kharkiv"), 409)
    assert problem["outstanding"] == 4_000 and problem["currency"] == "EUR"
    assert "40.00 EUR" in problem["detail"]
    assert await api.count_events() == before
    fraction = {**receipt, "amount": 40.5, "reference": "wire-3"}
    assert "fraction" in assert_problem(await api.post(path, fraction, by="kharkiv"), 422)["detail"]
    assert await api.count_events() == before


async def test_the_donor_cannot_confirm_its_own_money_as_received(api: PledgesApi) -> None:
    body = generators_pledge(lines=[_money_line()], commit=True)
    await api.ok("/v1/pledges", body, by="lille")
    before = await api.count_events()
    response = await api.post(
        "/v1/pledges/lille-generators/lines/funds/receipts",
        {"amount": 100, "currency": "EUR", "received_on": "2023-02-15", "reference": "w"},
        by="lille",
    )
    assert "only the recipient" in assert_problem(response, 403)["detail"]
    assert await api.count_events() == before


async def test_an_amendment_giving_both_or_neither_figure_is_refused(api: PledgesApi) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    before = await api.count_events()
    path = "/v1/pledges/lille-generators/lines/generators/amendments"
    for body in ({"reason": "r"}, {"reason": "r", "quantity": "40", "amount": 5}):
        assert_problem(await api.post(path, body, by="lille"), 422)
    assert await api.count_events() == before
