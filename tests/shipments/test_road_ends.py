"""The outside tester's road cases: a loss that names one manifest line twice in one incident
slipped past the "more than loaded" check (lost 8 of 6.5 loaded, -1.5 in transit, a delivery
that could never add up), and a delivered or arrived convoy kept taking entries dated after
that moved it or changed who holds it. An incident names each line once; an entry dated after
the delivery is refused, and so is a checkpoint or border crossing dated after the arrival;
entries dated before them, recorded late (offline devices), are taken as before."""

from __future__ import annotations

from typing import Any

import pytest

from services.shipments import domain
from shared.auth import Role
from shared.errors import ValidationFailed
from tests.shipments.conftest import ShipmentsApi, assert_problem, entry
from tests.shipments.test_shipments_domain import (
    NOW,
    arrived,
    checkpoint,
    delivery,
    dispatched,
    e,
    fold,
    road,
    theft,
)


def loss(hours: float, *lines: tuple[str, str], entry_id: str | None = None) -> domain.FieldEntry:
    return e(
        "incident",
        hours,
        entry_id,
        kind="loss",
        description="pallets fell off",
        place=None,
        delay_minutes=None,
        lines=[{"manifest_line_id": m, "quantity": q} for m, q in lines],
    )


def handoff(hours: float) -> domain.FieldEntry:
    return e(
        "custody_handoff",
        hours,
        from_party={"organisation_id": "transports-nord"},
        to_party={"organisation_id": "ukrposhta"},
    )


def damage(hours: float) -> domain.FieldEntry:
    return e(
        "incident",
        hours,
        kind="damage",
        description="crushed boxes",
        place=None,
        delay_minutes=None,
        lines=[],
    )


def test_a_line_named_twice_in_one_incident_is_refused() -> None:
    state, _ = road(dispatched("6.5"), theft(2, "2"))
    with pytest.raises(ValidationFailed) as refused:
        road(state, loss(3, ("m1", "3"), ("m1", "3"), entry_id="e8"))
    assert refused.value.extra["invalid_params"] == [
        {"name": "entries[e8].lines.1.manifest_line_id", "reason": "given twice"}
    ]
    assert state.lost() == {"m1": 2}
    # even in small parts that would fit: one line, once
    with pytest.raises(ValidationFailed, match="given twice"):
        road(state, loss(3, ("m1", "1"), ("m1", "1")))


def test_losses_of_a_batch_add_up_against_what_was_loaded() -> None:
    state, _ = road(dispatched("6.5"), theft(2, "2"))
    with pytest.raises(ValidationFailed, match="4 already recorded lost"):
        road(state, loss(3, ("m1", "2")), loss(4, ("m1", "3")))
    state, _ = road(state, loss(3, ("m1", "2")), loss(4, ("m1", "2.5")))
    assert state.lost() == {"m1": 6.5}


def delivered() -> domain.Convoy:
    state = arrived()  # arrival at hours 30; the delivery at hours 48
    return fold(state, domain.confirm_delivery(state, delivery("10"), now=NOW))


@pytest.mark.parametrize("late", [checkpoint(50, "Bucha"), handoff(50), damage(50)])
def test_nothing_dated_after_the_delivery_is_taken(late: domain.FieldEntry) -> None:
    state = delivered()
    with pytest.raises(ValidationFailed, match="the convoy was delivered at") as refused:
        road(state, late)
    assert refused.value.extra["invalid_params"] == [
        {"name": f"entries[{late.entry_id}].occurred_at", "reason": "after delivery"}
    ]


def test_a_delay_noted_after_the_delivery_is_taken() -> None:
    """Paperwork at the warehouse: it touches no goods and moves nothing."""
    state = delivered()
    delay = e(
        "incident",
        50,
        kind="delay",
        description="paperwork at the warehouse",
        place=None,
        delay_minutes=90,
        lines=[],
    )
    state, _ = road(state, delay)
    assert state.status is domain.ConvoyStatus.DELIVERED


def test_entries_dated_before_the_delivery_recorded_late_are_taken() -> None:
    state = delivered()
    state, _ = road(state, checkpoint(20, "Lviv"), handoff(40), damage(45))
    assert (
        state.position is not None and state.position.occurred_at == checkpoint(20, "x").occurred_at
    )
    assert state.status is domain.ConvoyStatus.DELIVERED


def test_an_arrived_convoy_does_not_move_but_may_change_hands_or_suffer_an_incident() -> None:
    state = arrived()
    with pytest.raises(ValidationFailed, match="arrived at") as refused:
        road(state, checkpoint(31, "Bucha", "cp"))
    assert refused.value.extra["invalid_params"] == [
        {"name": "entries[cp].occurred_at", "reason": "after arrival"}
    ]
    # in one batch too: the arrival first, then a checkpoint dated after it
    with pytest.raises(ValidationFailed, match="arrived at"):
        road(dispatched(), checkpoint(31, "Bucha"), e("arrival", 30, place="Kharkiv"))
    state, _ = road(state, checkpoint(20, "Poltava"), handoff(32), damage(33), theft(34, "1"))
    assert state.position is not None and state.position.payload.place == "Poltava"  # type: ignore[union-attr]
    assert (state.custody or {})["organisation_id"] == "ukrposhta"
    assert state.lost() == {"m1": 1}
    assert state.status is domain.ConvoyStatus.ARRIVED


@pytest.fixture
async def on_the_road(api: ShipmentsApi) -> ShipmentsApi:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    load = await api.load(manifest_line_id="chu-half", quantity="6.5")
    assert load.status_code == 201, load.text
    response = await api.entries(
        "c1",
        entry("dispatch", "2022-06-07T06:10:00+02:00", "d"),
        entry(
            "incident",
            "2022-06-08T23:00:00+02:00",
            "t",
            incident="theft",
            description="two taken at a night stop",
            lines=[{"manifest_line_id": "chu-half", "quantity": "2"}],
        ),
    )
    assert response.status_code == 200, response.text
    return api


async def test_the_api_refuses_a_line_twice_in_a_loss_and_stores_nothing(
    on_the_road: ShipmentsApi,
) -> None:
    api = on_the_road
    before = await api.count()
    twice = await api.entries(
        "c1",
        entry(
            "incident",
            "2022-06-09T10:00:00+02:00",
            "e8",
            incident="loss",
            description="boxes lost",
            lines=[
                {"manifest_line_id": "chu-half", "quantity": "3"},
                {"manifest_line_id": "chu-half", "quantity": "3"},
            ],
        ),
    )
    body = assert_problem(twice, 422)
    assert "given twice" in body["detail"]
    assert body["invalid_params"] == [
        {"name": "entries[e8].lines.1.manifest_line_id", "reason": "given twice"}
    ]
    assert await api.count() == before
    view = await api.convoy()
    assert (view["manifest"][0]["lost"], view["manifest"][0]["in_transit"]) == ("2", "4.5")


def receipt() -> dict[str, Any]:
    return {
        "receiver": {"name": "Natalia Koval", "role": "warehouse manager"},
        "lines": [
            {"manifest_line_id": "chu-half", "received": "4.5", "damaged": "0", "short": "0"}
        ],
        "occurred_at": "2022-06-10T12:00:00+03:00",
    }


async def test_the_api_refuses_road_entries_dated_after_the_delivery(
    on_the_road: ShipmentsApi,
) -> None:
    api = on_the_road
    arrival = await api.entries(
        "c1", entry("arrival", "2022-06-10T10:00:00+03:00", "a", place="Kharkiv")
    )
    assert arrival.status_code == 200, arrival.text
    moved = await api.entries(
        "c1", entry("checkpoint", "2022-06-10T11:00:00+03:00", "cp", place="Bucha")
    )
    assert assert_problem(moved, 422)["invalid_params"] == [
        {"name": "entries[cp].occurred_at", "reason": "after arrival"}
    ]
    headers = await api.as_("kharkiv", Role.MEMBER)
    confirmed = await api.client.post("/v1/convoys/c1/delivery", json=receipt(), headers=headers)
    assert confirmed.status_code == 201, confirmed.text
    before = await api.count()
    handed = await api.entries(
        "c1",
        entry(
            "custody_handoff",
            "2022-06-11T10:00:00+03:00",
            "h",
            from_party={"organisation_id": "kharkiv"},
            to_party={"organisation_id": "bucha"},
        ),
    )
    body = assert_problem(handed, 422)
    assert "the convoy was delivered at" in body["detail"]
    assert body["invalid_params"] == [
        {"name": "entries[h].occurred_at", "reason": "after delivery"}
    ]
    assert await api.count() == before
    view = await api.convoy()
    assert view["status"] == "delivered"
    # a checkpoint dated on the way, recorded late, is still taken
    late = await api.entries(
        "c1", entry("checkpoint", "2022-06-09T10:00:00+02:00", "lviv", place="Lviv")
    )
    assert late.status_code == 200, late.text
