"""Pledges: making, committing, amending and withdrawing them; the pure rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.pledges import domain
from services.pledges import events as ev
from services.pledges.domain.quantities import Unit
from shared.errors import Conflict, Forbidden, ValidationFailed
from tests.pledges.domain_helpers import (
    NOW,
    after_need,
    after_pledge,
    data,
    delivered,
    in_kind,
    item_need,
    make,
    money,
    money_need,
    pledge,
)

S = domain.PledgeStatus


def test_pledging_as_another_organisation_is_forbidden() -> None:
    with pytest.raises(Forbidden, match="lille may not pledge for chu-lille"):
        make(donor="chu-lille", acting_for="lille")


def test_a_pledge_mixes_in_kind_and_money_lines() -> None:
    state = pledge(in_kind(), money(), commit=False)
    assert [(x.kind, x.size()) for x in state.lines] == [
        (domain.LineKind.IN_KIND, "50"),
        (domain.LineKind.MONEY, "5000000"),
    ]
    assert state.status is S.PLEDGED


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (in_kind(quantity=Decimal(0)), "greater than zero"),
        (in_kind(quantity=Decimal(-3)), "greater than zero"),
        (in_kind(quantity=Decimal("1.5")), "not a whole number"),
        (in_kind(weight_kg=Decimal(-1)), "greater than zero"),
        (money(amount=0), "greater than zero"),
        (money(currency="EUROS"), "ISO 4217"),
        (money(amount=None), "give an amount"),
        (in_kind(unit=None), "give a quantity and a unit"),
    ],
)
def test_a_bad_line_is_refused_naming_it(line: domain.LineSpec, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message) as caught:
        make(line)
    assert caught.value.extra["invalid_params"][0]["name"].startswith("lines[0]")


def test_a_line_answers_a_need_only_in_a_unit_or_currency_it_is_counted_in() -> None:
    medicines = item_need(
        "meds", quantity=Decimal(13), unit=Unit.TONNES, category=domain.Category.MEDICINES
    )
    make(
        in_kind(need_id="meds", quantity=Decimal(500), unit=Unit.KG, category="medicines"),
        needs={"meds": medicines},
    )
    with pytest.raises(ValidationFailed, match="cannot count towards it"):
        make(
            in_kind(need_id="meds", unit=Unit.BOXES, category="medicines"),
            needs={"meds": medicines},
        )
    convoy = money_need("convoy", recipient_id="kharkiv")
    with pytest.raises(ValidationFailed, match="cannot count towards it"):
        make(money(need_id="convoy", currency="GBP"), needs={"convoy": convoy})


def test_a_line_cannot_answer_a_need_of_another_recipient_or_an_ended_one() -> None:
    theirs = item_need("theirs", recipient_id="bucha")
    with pytest.raises(ValidationFailed, match="belongs to bucha"):
        make(in_kind(need_id="theirs"), needs={"theirs": theirs})
    need = item_need()
    closed = after_need(
        need,
        domain.end_need(
            need,
            to=domain.NeedState.CLOSED,
            reason="done",
            occurred_at=NOW,
            now=NOW,
            acting_for=None,
        ),
    )
    with pytest.raises(Conflict, match="closed"):
        make(in_kind(need_id=need.need_id), needs={need.need_id: closed})


def test_a_pledge_under_a_partnership_goes_to_one_of_its_parties() -> None:
    twinning = domain.PartnershipRef("lille-kharkiv", ("lille", "kharkiv"), "signed")
    make(donor="chu-lille", acting_for=None, partnership=twinning, partnership_id="lille-kharkiv")
    with pytest.raises(ValidationFailed, match="bucha is not a party"):
        make(
            donor="chu-lille",
            recipient="bucha",
            acting_for=None,
            partnership=twinning,
            partnership_id="lille-kharkiv",
        )
    with pytest.raises(ValidationFailed, match="unknown"):
        make(partnership=None, partnership_id="nowhere")


def test_committing_publishes_what_may_be_loaded_from_every_in_kind_line() -> None:
    state = pledge(in_kind(weight_kg=Decimal(6000)), money(), commit=False)
    events = domain.commit(state, occurred_at=NOW, now=NOW, acting_for="lille")
    assert [e.event_type for e in events] == [ev.PLEDGE_COMMITTED, ev.PLEDGE_LINE_UPDATED]
    assert data(events, ev.PLEDGE_LINE_UPDATED) == [
        {
            "pledge_id": "p1",
            "line_id": "generators",
            "donor_id": "lille",
            "recipient_id": "kharkiv",
            "partnership_id": None,
            "item": "Medium-sized generator",
            "category": "generators",
            "unit": "pieces",
            "quantity": "50",
            "weight_kg": "6000",
            "delivered": "0",
            "remaining": "50",
            "status": "committed",
        }
    ]


def test_committing_a_withdrawn_pledge_is_a_conflict() -> None:
    state = pledge(commit=False)
    withdrawn = after_pledge(
        state,
        domain.withdraw(state, reason="budget cut", occurred_at=NOW, now=NOW, acting_for="lille"),
    )
    with pytest.raises(Conflict, match="withdrawn"):
        domain.commit(withdrawn, occurred_at=NOW, now=NOW, acting_for="lille")


def test_only_the_donor_commits() -> None:
    with pytest.raises(Forbidden):
        domain.commit(pledge(commit=False), occurred_at=NOW, now=NOW, acting_for="kharkiv")


def test_an_amendment_keeps_the_old_and_new_quantity_and_rescales_the_weight() -> None:
    state = pledge(in_kind(quantity=Decimal(100), weight_kg=Decimal(12000)))
    events = domain.amend_line(
        state,
        "generators",
        size=Decimal(50),
        reason="about fifty for the moment",
        occurred_at=NOW,
        now=NOW,
        acting_for="lille",
    )
    [amended] = data(events, ev.PLEDGE_LINE_AMENDED)
    assert (amended["previous_quantity"], amended["quantity"], amended["weight_kg"]) == (
        "100",
        "50",
        "6000",
    )
    [update] = data(events, ev.PLEDGE_LINE_UPDATED)
    assert (update["quantity"], update["remaining"], update["weight_kg"]) == ("50", "50", "6000")


def test_an_uncommitted_amendment_publishes_nothing_for_shipments() -> None:
    events = domain.amend_line(
        pledge(commit=False),
        "generators",
        size=Decimal(40),
        reason="r",
        occurred_at=NOW,
        now=NOW,
        acting_for=None,
    )
    assert [e.event_type for e in events] == [ev.PLEDGE_LINE_AMENDED]


def test_an_amendment_below_what_arrived_is_refused() -> None:
    state = pledge()
    state = after_pledge(
        state, domain.record_deliveries(state, [delivered(received="30")], occurred_at=NOW)
    )
    with pytest.raises(Conflict, match="already confirmed"):
        domain.amend_line(
            state,
            "generators",
            size=Decimal(20),
            reason="r",
            occurred_at=NOW,
            now=NOW,
            acting_for=None,
        )
