"""A pledge holds together: it answers a need already posted, of its category; money lines
carry no estimated value; a partnership's pledge goes to one of its parties; nothing of its
fulfilment dates from before it was made. Each refusal is a 422 naming the field, with nothing
stored."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.pledges import domain
from shared.errors import ValidationFailed
from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, assert_problem, generators_pledge
from tests.pledges.domain_helpers import (
    EARLIER,
    NOW,
    after_need,
    in_kind,
    item_need,
    make,
    money,
    pledge,
)

PLEDGE = "/v1/pledges/lille-generators"
MADE = "2023-02-01T10:00:00+00:00"


def _params(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [p["name"] for p in exc.value.extra["invalid_params"]]


def _make_at(occurred_at: datetime, *lines: domain.LineSpec, need: domain.Need) -> list[Any]:
    command = domain.MakePledge(
        pledge_id="p1",
        donor_id="lille",
        recipient_id="kharkiv",
        lines=lines,
        occurred_at=occurred_at,
    )
    return domain.make_pledge(
        domain.Pledge("p1"),
        command,
        now=NOW,
        acting_for="lille",
        needs={need.need_id: need},
        partnership=None,
    )


def _posted_at(when: datetime) -> domain.Need:
    state = domain.Need("late-need")
    command = domain.PostNeed(
        need_id="late-need",
        recipient_id="kharkiv",
        kind=domain.NeedKind.ITEM,
        category=domain.Category.GENERATORS,
        description="Generators",
        occurred_at=when,
        quantity=Decimal(100),
        unit=domain.quantities.Unit.PIECES,
    )
    return after_need(state, domain.post_need(state, command, now=NOW, acting_for=None))


def test_a_pledge_cannot_answer_a_need_posted_after_it() -> None:
    need = _posted_at(datetime(2023, 2, 10, tzinfo=UTC))
    with pytest.raises(ValidationFailed, match="before need late-need was posted") as exc:
        _make_at(datetime(2023, 2, 9, tzinfo=UTC), in_kind(need_id="late-need"), need=need)
    assert _params(exc) == ["occurred_at"]
    assert _make_at(datetime(2023, 2, 10, tzinfo=UTC), in_kind(need_id="late-need"), need=need)


def test_a_line_of_another_category_does_not_count_towards_a_need() -> None:
    need = item_need()
    with pytest.raises(ValidationFailed, match="asks for generators") as exc:
        make(in_kind(need_id=need.need_id, category="food"), needs={need.need_id: need})
    assert _params(exc) == ["lines[0].category"]


def test_a_money_line_has_no_estimated_value() -> None:
    for value in ({"value_amount": 100, "value_currency": "EUR"}, {"value_amount": 100}):
        with pytest.raises(ValidationFailed, match="estimated value belongs in kind") as exc:
            make(money(**value))
        assert _params(exc) == ["lines[0].estimated_value"]


def test_a_partnership_pledge_to_a_city_outside_it_is_refused() -> None:
    lille_bucha = domain.PartnershipRef("lille-bucha", ("lille", "bucha"), "signed")
    with pytest.raises(ValidationFailed, match="kharkiv is not a party") as exc:
        make(partnership=lille_bucha, partnership_id="lille-bucha")
    assert _params(exc) == ["partnership_id"]
    leeds_kharkiv = domain.PartnershipRef("leeds-kharkiv", ("leeds", "kharkiv"), "signed")
    assert make(
        donor="leeds-charity-lunch",
        acting_for=None,
        partnership=leeds_kharkiv,
        partnership_id="leeds-kharkiv",
    )


def test_money_and_figures_are_not_dated_before_the_pledge() -> None:
    state = pledge(money())  # made on EARLIER
    before = date(1901, 1, 1)
    receipt = domain.ReceiveMoney("funds", 500, "EUR", before, "early")
    with pytest.raises(ValidationFailed, match="before pledge p1 was made") as exc:
        domain.receive_money(state, receipt, now=NOW, acting_for="kharkiv")
    assert _params(exc) == ["received_on"]
    figure = domain.ReportFigure("funds", reported_on=before, amount=500, currency="EUR")
    with pytest.raises(ValidationFailed, match="before pledge p1 was made") as exc:
        domain.report_figure(state, figure, now=NOW, acting_for="lille")
    assert _params(exc) == ["reported_on"]
    same_day = EARLIER.date()
    assert domain.receive_money(
        state,
        domain.ReceiveMoney("funds", 500, "EUR", same_day, "on the day"),
        now=NOW,
        acting_for="kharkiv",
    )
    assert domain.report_figure(
        state,
        domain.ReportFigure("funds", reported_on=same_day, amount=500, currency="EUR"),
        now=NOW,
        acting_for="lille",
    )


async def _refused(api: PledgesApi, path: str, body: dict[str, Any], by: str, name: str) -> None:
    before = await api.count_events()
    problem = assert_problem(await api.post(path, body, by=by), 422)
    assert [p["name"] for p in problem["invalid_params"]] == [name], problem
    assert await api.count_events() == before


async def test_money_received_before_the_pledge_was_made_is_refused(api: PledgesApi) -> None:
    line = {
        "line_id": "m",
        "kind": "money",
        "item": "Second convoy",
        "category": "medicines",
        "amount": 10_000,
        "currency": "EUR",
    }
    body = generators_pledge(lines=[line], commit=True, occurred_at=MADE)
    await api.ok("/v1/pledges", body, by="lille")
    receipt = {"amount": 500, "currency": "EUR", "reference": "early"}
    await _refused(
        api,
        f"{PLEDGE}/lines/m/receipts",
        {**receipt, "received_on": "1901-01-01"},
        "kharkiv",
        "received_on",
    )
    await _refused(
        api,
        f"{PLEDGE}/lines/m/receipts",
        {**receipt, "received_on": "2023-01-31"},
        "kharkiv",
        "received_on",
    )
    await _refused(
        api,
        f"{PLEDGE}/lines/m/donor-figures",
        {"amount": 500, "currency": "EUR", "reported_on": "1901-01-01"},
        "lille",
        "reported_on",
    )
    await api.ok(
        f"{PLEDGE}/lines/m/receipts", {**receipt, "received_on": "2023-02-01"}, by="kharkiv"
    )
    pledge_now = await api.get(PLEDGE)
    assert pledge_now["lines"][0]["recipient_confirmed"] == 500


async def test_a_pledge_must_fit_the_need_it_answers_and_its_partnership(api: PledgesApi) -> None:
    await api.ok("/v1/needs", {**GENERATORS_NEED, "occurred_at": MADE}, by="kharkiv")
    line = generators_pledge()["lines"][0]
    await _refused(
        api,
        "/v1/pledges",
        generators_pledge(occurred_at="2023-01-15T00:00:00+00:00"),
        "lille",
        "occurred_at",
    )
    await _refused(
        api,
        "/v1/pledges",
        generators_pledge(lines=[{**line, "category": "food"}]),
        "lille",
        "lines[0].category",
    )
    money_line = {
        "line_id": "funds",
        "kind": "money",
        "item": "Second convoy",
        "category": "medicines",
        "amount": 5_000,
        "currency": "EUR",
        "estimated_value": {"amount": 5_000, "currency": "EUR"},
    }
    await _refused(
        api,
        "/v1/pledges",
        generators_pledge(lines=[money_line]),
        "lille",
        "lines[0].estimated_value",
    )
    # Lille gives to Bucha under the Lille-Kharkiv twinning: Bucha is no party to it
    await _refused(
        api,
        "/v1/pledges",
        generators_pledge(recipient_id="bucha", lines=[{**line, "need_id": None}]),
        "lille",
        "partnership_id",
    )
    # a Leeds charity gives to Kharkiv under the Leeds-Kharkiv twinning: Kharkiv is a party
    await api.ok(
        "/v1/pledges",
        generators_pledge(
            pledge_id="charity-generators",
            partnership_id="leeds-kharkiv-twinning",
            lines=[{**line, "need_id": None}],
        ),
        by="leeds-charity-lunch",
    )
    [charity] = [e for e in await api.events("pledges.pledge-made")]
    assert charity["partnership_id"] == "leeds-kharkiv-twinning"
    await api.ok("/v1/pledges", generators_pledge(occurred_at=MADE), by="lille")
