"""Report conversion rates are bounded where they are read (a plain decimal of ASCII digits, at
most money.RATE_DIGITS significant digits, above 0 and at most money.MAX_RATE), and a converted
figure beyond the money bound is a 422 naming the rate: never a 500 from the decimal context,
in any of the three reports."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.pledges.domain import money
from shared.errors import ValidationFailed
from tests.pledges.conftest import PledgesApi, assert_problem
from tests.pledges.test_reports import loaded

REPORTS = ("totals", "needs", "pledges")


def _names(problem: dict[str, object]) -> list[str]:
    params = problem["invalid_params"]
    assert isinstance(params, list)
    return [p["name"] for p in params]


@pytest.mark.parametrize(
    "rate",
    [
        "99999999999999999999999",  # 23 digits
        "1e400",
        "1E3",
        "1000000.01",  # above MAX_RATE
        "2000000",
        "0.0000000000001234567890123",  # 13 significant digits
        "\uff11.5",  # fullwidth digit one: Decimal reads it, a rate is ASCII
        "+1.5",
        " 1.5",
        "1.",
        ".5",
        "0",
        "0.000",
        "NaN",
        "Infinity",
    ],
)
async def test_an_unbounded_or_unplain_rate_is_refused_by_every_report(
    api: PledgesApi, rate: str
) -> None:
    await loaded(api)
    for name in REPORTS:
        response = await api.client.get(
            f"/v1/reports/{name}",
            params={"convert_to": "UAH", "rate": ["GBP:50:2023-02-01", f"EUR:{rate}:2023-02-01"]},
        )
        problem = assert_problem(response, 422)
        assert _names(problem) == ["query.rate"], (name, problem)


async def test_rates_within_the_bounds_convert_in_every_report(api: PledgesApi) -> None:
    await loaded(api)
    rates = ["GBP:1000000:2023-02-01", "EUR:0.000000000001:2023-02-01"]
    for name in REPORTS:
        table = await api.get(f"/v1/reports/{name}", convert_to="UAH", rate=rates)
        assert table["conversion"]["rates"] == [
            {"currency": "GBP", "rate": "1000000", "date": "2023-02-01"},
            {"currency": "EUR", "rate": "0.000000000001", "date": "2023-02-01"},
        ], name
        for row in table["rows"]:
            assert row["rate"] in {"1000000", "0.000000000001", None}, row
    totals = await api.get("/v1/reports/totals", convert_to="UAH", rate=rates)
    gbp = next(r for r in totals["rows"] if r["currency"] == "GBP" and r["received"])
    assert gbp["received_converted"] == gbp["received"] * 1_000_000


async def test_a_converted_figure_beyond_the_money_bound_is_a_422_naming_the_rate(
    api: PledgesApi,
) -> None:
    """GBP 140,000.00 at 1,000,000 CLF (four decimal places) is 1.4e15 minor units."""
    await loaded(api)
    for name in ("totals", "pledges"):
        response = await api.client.get(
            f"/v1/reports/{name}",
            params={"convert_to": "CLF", "rate": ["GBP:1000000:2023-02-01", "EUR:1:2023-02-01"]},
        )
        problem = assert_problem(response, 422)
        assert _names(problem) == ["query.rate"], (name, problem)
        assert "GBP" in problem["detail"], problem


def test_convert_is_exact_and_never_raises_from_the_decimal_context() -> None:
    assert money.convert(16_500, "GBP", target="EUR", rate=Decimal("1.165")) == 19_222
    assert money.convert(5, "EUR", target="JPY", rate=Decimal("1")) == 0  # 0.05 half to even
    assert money.convert(15, "EUR", target="JPY", rate=Decimal("1")) == 0  # 0.15 -> 0
    assert money.convert(150, "EUR", target="JPY", rate=Decimal("1")) == 2  # 1.5 -> 2
    assert money.convert(250, "EUR", target="JPY", rate=Decimal("1")) == 2  # 2.5 -> 2
    assert money.convert(-250, "EUR", target="JPY", rate=Decimal("1")) == -2
    assert money.convert(10**15, "EUR", target="EUR", rate=Decimal(1)) == 10**15
    big = money.MAX_AMOUNT * 1000  # a total of many pledges, beyond one amount's bound
    assert money.convert(big, "EUR", target="EUR", rate=Decimal(1)) == big
    for rate in ("99999999999999999999999", "1e400", "1000000"):
        with pytest.raises(ValidationFailed) as raised:
            money.convert(10**15, "EUR", target="CLF", rate=Decimal(rate), field="query.rate")
        params = raised.value.extra["invalid_params"]
        assert params == [{"name": "query.rate", "reason": "converted amount too large"}]


async def test_a_rate_for_the_currency_converted_to_is_refused_by_every_report(
    api: PledgesApi,
) -> None:
    """EUR converted to EUR is the figure itself: a rate EUR:2 used to double it."""
    await loaded(api)
    for name in REPORTS:
        response = await api.client.get(
            f"/v1/reports/{name}",
            params={"convert_to": "EUR", "rate": ["EUR:2:2023-01-01", "GBP:1.16:2023-01-01"]},
        )
        problem = assert_problem(response, 422)
        assert _names(problem) == ["query.rate"], (name, problem)
        assert "EUR is the currency converted to" in str(problem["detail"])
