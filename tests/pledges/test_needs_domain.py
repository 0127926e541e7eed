"""Needs, coverage, money and quantities: the pure rules, without a database."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from services.pledges import domain
from services.pledges import events as ev
from services.pledges.domain.quantities import Unit
from shared.errors import Conflict, Forbidden, ValidationFailed
from tests.pledges.domain_helpers import EARLIER, NOW, after_need, item_need, money_need

C = domain.Contribution


def post(**fields: object) -> domain.PostNeed:
    values: dict[str, object] = {
        "need_id": "n1",
        "recipient_id": "kharkiv",
        "kind": domain.NeedKind.ITEM,
        "category": domain.Category.MEDICINES,
        "description": "Medicines",
        "occurred_at": EARLIER,
        "quantity": Decimal(13),
        "unit": Unit.TONNES,
        **fields,
    }
    return domain.PostNeed(**values)  # type: ignore[arg-type]


def test_an_item_need_records_its_quantity_as_a_decimal_string() -> None:
    [event] = domain.post_need(
        domain.Need("n1"), post(quantity=Decimal("12.50")), now=NOW, acting_for="kharkiv"
    )
    assert event.event_type == ev.NEED_POSTED
    assert (event.data["quantity"], event.data["unit"], event.data["amount"]) == (
        "12.5",
        "tonnes",
        None,
    )


@pytest.mark.parametrize("quantity", [Decimal(0), Decimal(-5)])
def test_a_need_for_nothing_or_less_is_refused(quantity: Decimal) -> None:
    with pytest.raises(ValidationFailed, match="greater than zero"):
        domain.post_need(domain.Need("n1"), post(quantity=quantity), now=NOW, acting_for=None)


def test_a_need_for_half_a_piece_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="not a whole number"):
        domain.post_need(
            domain.Need("n1"),
            post(quantity=Decimal("2.5"), unit=Unit.PIECES),
            now=NOW,
            acting_for=None,
        )


def test_a_money_need_in_an_unknown_currency_is_refused() -> None:
    command = post(kind=domain.NeedKind.MONEY, quantity=None, unit=None, amount=100, currency="XYZ")
    with pytest.raises(ValidationFailed, match="ISO 4217"):
        domain.post_need(domain.Need("n1"), command, now=NOW, acting_for=None)


def test_a_money_need_with_a_quantity_is_refused() -> None:
    command = post(kind=domain.NeedKind.MONEY, amount=100, currency="EUR")
    with pytest.raises(ValidationFailed, match="no quantity"):
        domain.post_need(domain.Need("n1"), command, now=NOW, acting_for=None)


def test_a_member_posts_needs_only_for_its_own_organisation() -> None:
    with pytest.raises(Forbidden):
        domain.post_need(domain.Need("n1"), post(), now=NOW, acting_for="lille")


def test_a_need_posted_in_the_future_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="future"):
        domain.post_need(
            domain.Need("n1"), post(occurred_at=NOW + timedelta(days=1)), now=NOW, acting_for=None
        )


def test_a_revision_records_the_previous_values_and_the_reason() -> None:
    need = item_need()
    revision = domain.ReviseNeed(
        changes={"quantity": Decimal(120), "priority": domain.Priority.HIGH},
        reason="two more substations hit",
        occurred_at=NOW,
    )
    [event] = domain.revise_need(need, revision, now=NOW, acting_for="kharkiv")
    assert event.data["changes"] == {"quantity": "120", "priority": "high"}
    assert event.data["previous"] == {"quantity": "100", "priority": "normal"}
    revised = after_need(need, [event])
    assert (revised.quantity, revised.priority) == (Decimal(120), domain.Priority.HIGH)


def test_a_revision_cannot_change_the_unit_or_change_nothing() -> None:
    need = item_need()
    with pytest.raises(ValidationFailed, match="cannot be revised"):
        domain.revise_need(
            need, domain.ReviseNeed({"unit": "kg"}, "oops", NOW), now=NOW, acting_for=None
        )
    with pytest.raises(ValidationFailed, match="changes nothing"):
        domain.revise_need(
            need,
            domain.ReviseNeed({"quantity": Decimal(100)}, "same", NOW),
            now=NOW,
            acting_for=None,
        )


def test_a_cancelled_need_cannot_be_revised_or_closed() -> None:
    need = item_need()
    cancelled = after_need(
        need,
        domain.end_need(
            need,
            to=domain.NeedState.CANCELLED,
            reason="bought locally",
            occurred_at=NOW,
            now=NOW,
            acting_for="kharkiv",
        ),
    )
    assert cancelled.state is domain.NeedState.CANCELLED
    with pytest.raises(Conflict, match="cancelled"):
        domain.end_need(
            cancelled,
            to=domain.NeedState.CLOSED,
            reason="done",
            occurred_at=NOW,
            now=NOW,
            acting_for=None,
        )


def test_coverage_counts_pledged_committed_and_delivered_in_the_needs_unit() -> None:
    cov = domain.coverage(
        target=Decimal(13),
        unit="tonnes",
        need_state="active",
        contributions=[
            C(pledge_status="committed", size=Decimal("6.5"), delivered=Decimal(0), unit="tonnes"),
            C(pledge_status="pledged", size=Decimal(2000), delivered=Decimal(0), unit="kg"),
            C(
                pledge_status="partly_fulfilled",
                size=Decimal(1000),
                delivered=Decimal(400),
                unit="kg",
            ),
        ],
    )
    assert (cov.pledged, cov.committed, cov.delivered, cov.gap, cov.status) == (
        Decimal("9.5"),
        Decimal("7.5"),
        Decimal("0.4"),
        Decimal("3.5"),
        "partly_covered",
    )


def test_a_withdrawn_pledge_keeps_only_what_arrived_in_the_coverage() -> None:
    cov = domain.coverage(
        target=Decimal(100),
        unit="pieces",
        need_state="active",
        contributions=[
            C(pledge_status="withdrawn", size=Decimal(50), delivered=Decimal(10), unit="pieces")
        ],
    )
    assert (cov.pledged, cov.committed, cov.delivered, cov.gap) == (10, 10, 10, 90)


def test_a_need_is_open_then_partly_covered_then_covered_and_closed_stays_closed() -> None:
    def status(pledged: int, state: str = "active") -> str:
        contributions = [C("pledged", Decimal(pledged), Decimal(0))] if pledged else []
        return domain.coverage(
            target=Decimal(100), unit=None, need_state=state, contributions=contributions
        ).status

    assert [status(0), status(40), status(100), status(150), status(150, "closed")] == [
        "open",
        "partly_covered",
        "covered",
        "covered",
        "closed",
    ]
    assert (
        domain.coverage(
            target=Decimal(100),
            unit=None,
            need_state="active",
            contributions=[C("pledged", Decimal(150), Decimal(0))],
        ).gap
        == 0
    )


def test_amounts_are_formatted_with_the_currencys_own_minor_unit() -> None:
    fm = domain.money.format_minor
    assert [fm(10_000_000, "EUR"), fm(1500, "JPY"), fm(1234, "BHD"), fm(5, "GBP")] == [
        "100000.00",
        "1500",
        "1.234",
        "0.05",
    ]


def test_conversion_uses_the_callers_rate_and_rounds_half_to_even() -> None:
    convert = domain.money.convert
    assert convert(14_000_000, "GBP", target="EUR", rate=Decimal("1.165")) == 16_310_000
    assert convert(1, "EUR", target="EUR", rate=Decimal("0.5")) == 0  # 0.5 cent -> 0
    assert convert(3, "EUR", target="EUR", rate=Decimal("0.5")) == 2  # 1.5 cents -> 2
    assert convert(1000, "JPY", target="EUR", rate=Decimal("0.0069")) == 690


def test_a_money_need_keeps_its_amount_in_minor_units() -> None:
    need = money_need()
    assert (need.amount, need.currency, need.kind) == (10_000_000, "EUR", domain.NeedKind.MONEY)
