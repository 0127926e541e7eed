"""Fulfilment: money the recipient confirms, deliveries shipments reports and the donor's own
figure; the pure rules, without a database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.pledges import domain
from services.pledges import events as ev
from services.pledges.domain.quantities import Unit
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tests.pledges.domain_helpers import (
    NOW,
    after_pledge,
    data,
    delivered,
    in_kind,
    money,
    pledge,
)

S = domain.PledgeStatus


def receipt(amount: int, reference: str = "wire-1", currency: str = "EUR") -> domain.ReceiveMoney:
    return domain.ReceiveMoney(
        line_id="funds",
        amount=amount,
        currency=currency,
        received_on=date(2023, 2, 15),
        reference=reference,
        occurred_at=NOW,
    )


def test_receiving_more_money_than_pledged_is_refused() -> None:
    state = pledge(money(amount=10_000))
    state = after_pledge(
        state, domain.receive_money(state, receipt(6_000), now=NOW, acting_for="kharkiv")
    )
    with pytest.raises(Conflict, match=r"only 40\.00 EUR of 100\.00 EUR is outstanding"):
        domain.receive_money(state, receipt(5_000, "wire-2"), now=NOW, acting_for="kharkiv")


def test_money_received_in_full_fulfils_a_money_pledge() -> None:
    state = pledge(money(amount=10_000))
    [event] = domain.receive_money(state, receipt(10_000), now=NOW, acting_for="kharkiv")
    after = after_pledge(state, [event])  # the line's totals and the status: the state's
    assert (after.lines[0].received, after.lines[0].outstanding) == (10_000, 0)
    assert after.status is S.FULFILLED


def test_only_the_recipient_confirms_money_in_the_lines_currency_once_committed() -> None:
    state = pledge(money())
    with pytest.raises(Forbidden, match="only the recipient"):
        domain.receive_money(state, receipt(100), now=NOW, acting_for="lille")
    with pytest.raises(ValidationFailed, match="in EUR, not GBP"):
        domain.receive_money(state, receipt(100, currency="GBP"), now=NOW, acting_for=None)
    with pytest.raises(Conflict, match="pledged"):
        domain.receive_money(pledge(money(), commit=False), receipt(100), now=NOW, acting_for=None)
    with pytest.raises(ValidationFailed, match="only by deliveries"):
        domain.receive_money(
            pledge(in_kind()),
            domain.ReceiveMoney("generators", 100, "EUR", date(2023, 2, 1), "x", NOW),
            now=NOW,
            acting_for=None,
        )


def test_the_same_receipt_reference_is_not_recorded_twice() -> None:
    state = pledge(money())
    state = after_pledge(state, domain.receive_money(state, receipt(100), now=NOW, acting_for=None))
    with pytest.raises(Conflict, match="already recorded"):
        domain.receive_money(state, receipt(100), now=NOW, acting_for=None)


def test_deliveries_count_only_what_arrived_in_good_condition() -> None:
    state = pledge()
    events = domain.record_deliveries(
        state, [delivered(received="18", damaged="1", short="1", lost="2")], occurred_at=NOW
    )
    [recorded] = data(events, ev.DELIVERY_RECORDED)
    assert (
        recorded["received"],
        recorded["damaged"],
        recorded["short"],
        recorded["lost"],
        recorded["loaded"],
    ) == ("18", "1", "1", "2", "22")
    [update] = data(events, ev.PLEDGE_LINE_UPDATED)
    assert (update["delivered"], update["remaining"], update["status"]) == ("18", "32", "committed")
    after = after_pledge(state, events)
    assert after.status is S.PARTLY_FULFILLED
    assert after.lines[0].delivered == 18  # the line's total: its state's (events carry none)
    assert (after.lines[0].total("damaged"), after.lines[0].total("lost")) == (1, 2)


def test_the_same_delivery_counts_once() -> None:
    state = pledge()
    state = after_pledge(state, domain.record_deliveries(state, [delivered()], occurred_at=NOW))
    assert domain.record_deliveries(state, [delivered()], occurred_at=NOW) == []
    twice = domain.record_deliveries(pledge(), [delivered(), delivered()], occurred_at=NOW)
    assert len(data(twice, ev.DELIVERY_RECORDED)) == 1


def test_a_delivery_in_kilograms_counts_towards_a_line_in_tonnes() -> None:
    state = pledge(in_kind("meds", item="Medicines", quantity=Decimal(13), unit=Unit.TONNES))
    events = domain.record_deliveries(
        state, [delivered(line_id="meds", received="6500", unit="kg")], occurred_at=NOW
    )
    assert data(events, ev.PLEDGE_LINE_UPDATED)[0]["remaining"] == "6.5"


def test_a_delivery_that_does_not_fit_its_line_is_unusable() -> None:
    state = pledge(in_kind(), money())
    for bad in (delivered(unit="kg"), delivered(line_id="funds"), delivered(line_id="nope")):
        with pytest.raises(domain.UnusableDelivery):
            domain.record_deliveries(state, [bad], occurred_at=NOW)
    with pytest.raises(domain.UnusableDelivery, match="does not exist"):
        domain.record_deliveries(domain.Pledge("ghost"), [delivered()], occurred_at=NOW)


def test_goods_that_arrive_after_a_withdrawal_count_and_the_line_stays_withdrawn() -> None:
    state = pledge()
    state = after_pledge(
        state, domain.withdraw(state, reason="r", occurred_at=NOW, now=NOW, acting_for=None)
    )
    events = domain.record_deliveries(state, [delivered(received="50")], occurred_at=NOW)
    assert data(events, ev.PLEDGE_LINE_UPDATED)[0]["status"] == "withdrawn"
    after = after_pledge(state, events)
    assert (after.status, after.lines[0].delivered) == (S.WITHDRAWN, 50)


def test_more_delivered_than_pledged_leaves_nothing_to_load() -> None:
    events = domain.record_deliveries(pledge(), [delivered(received="55")], occurred_at=NOW)
    [update] = data(events, ev.PLEDGE_LINE_UPDATED)
    assert (update["delivered"], update["remaining"], update["status"]) == ("55", "0", "fulfilled")


def test_a_mixed_pledge_is_fulfilled_when_goods_and_money_both_arrived() -> None:
    state = pledge(in_kind(), money(amount=100))
    state = after_pledge(state, domain.receive_money(state, receipt(100), now=NOW, acting_for=None))
    assert state.status is S.PARTLY_FULFILLED
    state = after_pledge(
        state, domain.record_deliveries(state, [delivered(received="50")], occurred_at=NOW)
    )
    assert state.status is S.FULFILLED
    with pytest.raises(Conflict, match="nothing to withdraw"):
        domain.withdraw(state, reason="r", occurred_at=NOW, now=NOW, acting_for=None)


def test_the_donors_figure_is_kept_and_counts_for_nothing() -> None:
    state = pledge()
    figure = domain.ReportFigure("generators", date(2023, 2, 10), NOW, quantity=Decimal(50))
    events = domain.report_figure(state, figure, now=NOW, acting_for="lille")
    after = after_pledge(state, events)
    assert (after.lines[0].donor_figure, after.lines[0].delivered, after.status) == (
        "50",
        0,
        S.COMMITTED,
    )
    with pytest.raises(Forbidden, match="only the donor"):
        domain.report_figure(state, figure, now=NOW, acting_for="kharkiv")


def test_a_missing_line_is_not_found() -> None:
    with pytest.raises(NotFound, match="no line nope"):
        domain.amend_line(
            pledge(), "nope", size=Decimal(1), reason="r", occurred_at=NOW, now=NOW, acting_for=None
        )
