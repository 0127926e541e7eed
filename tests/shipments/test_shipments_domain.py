"""The convoy's pure rules: decide on a folded state, then fold what was decided."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from services.shipments import domain
from services.shipments import events as ev
from services.shipments.domain import ConvoyStatus
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.events import Metadata, NewEvent, RecordedEvent

NOW = datetime(2022, 6, 20, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
T0 = datetime(2022, 6, 1, 8, 0, tzinfo=UTC)
GENERATORS = domain.PledgeLine(
    pledge_id="p1",
    line_id="l1",
    donor_id="lille",
    recipient_id="kharkiv",
    item="Medium generator 5 kVA",
    category="generators",
    unit="pieces",
    quantity=Decimal(50),
    weight_kg=Decimal(4000),
    status="committed",
    correlation_id="corr-p1",
)


def as_recorded(state: domain.Convoy, event: NewEvent, *, at: datetime = NOW) -> RecordedEvent:
    """`event` recorded after `state`."""
    return RecordedEvent(
        event_id=event.event_id,
        stream_type="convoy",
        stream_id=f"convoy-{state.convoy_id}",
        stream_version=state.version + 1,
        event_type=event.event_type,
        schema_version=event.schema_version,
        occurred_at=event.occurred_at or at,
        recorded_at=at,
        data=event.data,
        metadata=Metadata(),
    )


def fold(state: domain.Convoy, events: list[NewEvent], *, at: datetime = NOW) -> domain.Convoy:
    for event in events:
        state = domain.evolve(state, ev.CODEC.decode(as_recorded(state, event, at=at)))
    return state


def planned(**changes: Any) -> domain.Convoy:
    command = domain.PlanConvoy(
        convoy_id="c1",
        reference="Lille - Kharkiv generators",
        origin_id="lille",
        destination_id="kharkiv",
        carrier_id="transports-nord",
        planned_departure=T0 + DAY,
        vehicles=(
            domain.Vehicle("GH-482-LK", "semi-trailer truck", Decimal(12000)),
            domain.Vehicle("FD-117-PR", "van", Decimal(1000)),
        ),
        occurred_at=T0,
    )
    state = domain.Convoy("c1")
    return fold(state, domain.plan(state, replace(command, **changes), now=NOW), at=T0)


def loaded(quantity: str = "10", manifest_line_id: str = "m1", **changes: Any) -> domain.Convoy:
    state = changes.pop("state", None) or planned()
    command = domain.LoadLine(
        manifest_line_id=manifest_line_id,
        pledge_id="p1",
        line_id="l1",
        quantity=Decimal(quantity),
        vehicle="GH-482-LK",
        occurred_at=T0 + timedelta(hours=5),
    )
    events = domain.load(
        state,
        replace(command, **changes),
        now=NOW,
        pledge_line=GENERATORS,
        allocated=Decimal(0),
    )
    return fold(state, events)


def road(
    state: domain.Convoy,
    *entries: domain.FieldEntry,
    at: datetime = NOW,
    recorded: dict[str, domain.Entry] | None = None,
) -> tuple[domain.Convoy, domain.RoadDecision]:
    """`recorded`: the entries of the convoy already recorded under the ids sent (the log's)."""
    decision = domain.record_entries(
        state,
        entries,
        now=at,
        known_organisations={"ukrposhta", "transports-nord"},
        recorded=recorded,
    )
    return fold(state, decision.events, at=at), decision


def e(
    entry_kind: str, hours: float, entry_id: str | None = None, **details: Any
) -> domain.FieldEntry:
    defaults: dict[str, Any] = {"note": None}
    return domain.FieldEntry(
        entry_id=entry_id or uuid.uuid4().hex,
        kind=entry_kind,
        occurred_at=T0 + DAY + timedelta(hours=hours),
        details={**defaults, **details},
    )


def checkpoint(hours: float, place: str, entry_id: str | None = None) -> domain.FieldEntry:
    return e("checkpoint", hours, entry_id, place=place, coordinates=None)


def border(hours: float, outcome: str) -> domain.FieldEntry:
    return e(
        "border_crossing",
        hours,
        crossing_point="Medyka - Shehyni",
        from_country="PL",
        to_country="UA",
        customs_document="UA-1",
        outcome=outcome,
        coordinates=None,
    )


def theft(hours: float, quantity: str, line: str = "m1") -> domain.FieldEntry:
    return e(
        "incident",
        hours,
        kind="theft",
        description="stolen",
        place=None,
        delay_minutes=None,
        lines=[{"manifest_line_id": line, "quantity": quantity}],
    )


def dispatched(quantity: str = "10") -> domain.Convoy:
    state, _ = road(loaded(quantity), e("dispatch", 0, "d", custody=None))
    return state


def test_a_plan_with_the_same_origin_and_destination_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="from one organisation to another"):
        planned(destination_id="lille")


def test_a_driver_on_a_vehicle_the_convoy_does_not_have_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="not on this convoy"):
        planned(drivers=({"name": "Karim", "vehicle": "XX-000-XX"},))


def test_loading_weighs_the_line_by_the_pledges_estimate_and_counts_it_on_its_vehicle() -> None:
    state = loaded("10")
    assert state.status is ConvoyStatus.LOADING
    assert state.vehicle_load("GH-482-LK") == Decimal(800)  # 4000 kg for 50 -> 80 kg each


def test_rejects_loading_more_than_remains_on_the_pledge_line() -> None:
    with pytest.raises(domain.ExceedsRemaining) as refused:
        domain.load(
            planned(),
            domain.LoadLine("m1", "p1", "l1", Decimal(11), "GH-482-LK", T0),
            now=NOW,
            pledge_line=GENERATORS,
            allocated=Decimal(40),
        )
    assert refused.value.extra["remaining"] == "10"
    assert "50 pieces committed, 40 already loaded on convoys, so 10 remain" in str(refused.value)


@pytest.mark.parametrize("status", ["withdrawn", "fulfilled"])
def test_a_line_that_is_not_committed_cannot_be_loaded(status: str) -> None:
    with pytest.raises(domain.NotLoadable, match=status):
        domain.load(
            planned(),
            domain.LoadLine("m1", "p1", "l1", Decimal(1), "GH-482-LK", T0),
            now=NOW,
            pledge_line=replace(GENERATORS, status=status),
            allocated=Decimal(0),
        )


def test_rejects_a_load_dated_before_its_pledge_line_was_committed() -> None:
    line = replace(GENERATORS, committed_at=T0 + timedelta(hours=2))
    command = domain.LoadLine("m1", "p1", "l1", Decimal(1), "GH-482-LK", T0 + timedelta(hours=1))
    with pytest.raises(domain.LoadBeforeCommitment) as refused:
        domain.load(planned(), command, now=NOW, pledge_line=line, allocated=Decimal(0))
    assert refused.value.status == 409
    assert refused.value.extra["committed_at"] == "2022-06-01T10:00:00+00:00"
    at_commitment = replace(command, occurred_at=T0 + timedelta(hours=2))
    assert domain.load(planned(), at_commitment, now=NOW, pledge_line=line, allocated=Decimal(0))


def test_an_overweight_vehicle_is_refused_with_the_sum_in_the_detail() -> None:
    with pytest.raises(domain.Overweight) as refused:
        loaded("13", vehicle="FD-117-PR")  # 13 x 80 kg on a 1000 kg van
    assert "adding 1040 kg makes 1040 kg, over its capacity of 1000 kg" in str(refused.value)


def test_a_line_without_any_weight_estimate_needs_one_from_the_loader() -> None:
    boxes = replace(GENERATORS, unit="boxes", weight_kg=None)
    command = domain.LoadLine("m1", "p1", "l1", Decimal(2), "GH-482-LK", T0)
    with pytest.raises(ValidationFailed, match="send weight_kg"):
        domain.load(planned(), command, now=NOW, pledge_line=boxes, allocated=Decimal(0))
    tonnes = replace(GENERATORS, unit="tonnes", weight_kg=None)
    [event] = domain.load(planned(), command, now=NOW, pledge_line=tonnes, allocated=Decimal(0))
    assert event.data["weight_kg"] == "2000"


def test_unloading_gives_the_quantity_back_and_an_empty_convoy_cannot_leave() -> None:
    state = loaded("10")
    state = fold(state, domain.unload(state, domain.UnloadLine("m1", T0 + DAY), now=NOW))
    assert state.status is ConvoyStatus.PLANNED
    assert state.loaded == ()
    with pytest.raises(domain.EmptyConvoy):
        road(state, e("dispatch", 1))


def test_the_status_follows_when_things_happened_not_when_they_were_recorded() -> None:
    state = dispatched()
    # the clearance is uploaded first, the earlier hold at the border only later
    state, _ = road(state, border(10, "cleared"))
    state, _ = road(state, border(5, "held"))
    assert state.status is ConvoyStatus.IN_TRANSIT
    state, _ = road(state, checkpoint(3, "Wrocław"), checkpoint(20, "Lviv"))
    assert state.position is not None and state.position.data["place"] == "Lviv"
    state, _ = road(state, border(30, "waiting"))
    assert state.status is ConvoyStatus.AT_BORDER
    state, _ = road(state, e("arrival", 40, place="Kharkiv"))
    state, _ = road(state, checkpoint(25, "Kyiv"))  # late news changes nothing
    assert state.status is ConvoyStatus.ARRIVED


def test_a_batch_is_taken_in_the_order_things_happened() -> None:
    state, decision = road(
        loaded(), checkpoint(2, "Brussels", "cp"), e("dispatch", 0, "d", custody=None)
    )
    assert state.status is ConvoyStatus.IN_TRANSIT
    assert [a["entry_id"] for a in decision.answers] == ["cp", "d"]  # answered as sent


def test_a_re_sent_entry_is_answered_as_the_first_time_and_decides_nothing() -> None:
    before = dispatched()
    first, decision = road(before, checkpoint(3, "Wrocław", "cp-1"))
    log = {"cp-1": domain.entry_of(ev.CODEC.decode(as_recorded(before, decision.events[0])))}
    _, replay = road(first, checkpoint(3, "Wrocław", "cp-1"), at=NOW + DAY, recorded=log)
    assert replay.events == [] and replay.replayed == 1
    assert replay.answers == decision.answers
    with pytest.raises(domain.EntryIdReused):
        road(first, checkpoint(3, "Dresden", "cp-1"), recorded=log)


def test_one_id_twice_in_a_batch_is_one_entry() -> None:
    _, decision = road(
        dispatched(), checkpoint(3, "Wrocław", "cp-1"), checkpoint(3, "Wrocław", "cp-1")
    )
    assert len(decision.events) == 1 and decision.replayed == 0  # nothing was recorded before
    assert decision.answers[0] == decision.answers[1]
    with pytest.raises(ValidationFailed) as refused:
        road(dispatched(), checkpoint(3, "Wrocław", "cp-1"), checkpoint(4, "Dresden", "cp-1"))
    assert refused.value.extra["invalid_params"][0]["name"] == "entries[1].entry_id"


def test_the_digest_of_an_entry_does_not_depend_on_the_time_zone_it_was_written_in() -> None:
    utc = checkpoint(3, "Wrocław", "cp")
    paris = replace(utc, occurred_at=utc.occurred_at.astimezone(timezone(timedelta(hours=2))))
    assert utc.digest == paris.digest


def test_road_events_need_a_dispatch_first_and_none_may_precede_it() -> None:
    with pytest.raises(domain.WrongStatus, match="record its dispatch"):
        road(loaded(), checkpoint(1, "Lille"))
    with pytest.raises(ValidationFailed, match="before the convoy was dispatched"):
        road(dispatched(), checkpoint(-1, "Lille"))


def test_an_entry_from_the_future_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="in the future"):
        road(dispatched(), checkpoint(1, "Lille"), at=T0 + DAY)


def test_lost_goods_are_told_apart_from_goods_still_in_transit() -> None:
    state, _ = road(dispatched("10"), theft(4, "3"))
    assert state.status is ConvoyStatus.IN_TRANSIT
    assert state.lost() == {"m1": Decimal(3)}
    with pytest.raises(ValidationFailed, match="3 already recorded lost \\+ 8 = 11"):
        road(state, theft(5, "8"))
    state, _ = road(state, theft(6, "7"))
    assert state.status is ConvoyStatus.LOST
    state = fold(state, domain.close(state, domain.CloseConvoy(NOW), now=NOW))
    assert state.status is ConvoyStatus.CLOSED


def test_custody_passes_from_the_carrier_to_whoever_took_it_last() -> None:
    state = dispatched()
    assert state.custody == {"organisation_id": "transports-nord", "name": None, "person": None}
    handoff = e(
        "custody_handoff",
        8,
        from_party={"organisation_id": "transports-nord", "name": None, "person": None},
        to_party={"organisation_id": "ukrposhta", "name": None, "person": None},
    )
    state, _ = road(state, handoff)
    assert state.custody is not None and state.custody["organisation_id"] == "ukrposhta"
    stranger = replace(
        handoff,
        entry_id="x",
        details={**handoff.details, "to_party": {"organisation_id": "nobody"}},
    )
    with pytest.raises(ValidationFailed, match="nobody is not in the registry"):
        road(state, stranger)


def arrived(quantity: str = "10", *before: domain.FieldEntry) -> domain.Convoy:
    state, _ = road(dispatched(quantity), *before, e("arrival", 30, place="Kharkiv"))
    return state


def delivery(received: str, damaged: str = "0", short: str = "0") -> domain.ConfirmDelivery:
    return domain.ConfirmDelivery(
        # the receiver as the write path hands them over: sealed, the role in clear
        confirmed_by={
            "subject_id": "shipments-" + "0" * 32,
            "personal": ["name"],
            "sealed": "c2VhbGVk",
            "role": "warehouse manager",
        },
        lines=(
            domain.DeliveredQuantities("m1", Decimal(received), Decimal(damaged), Decimal(short)),
        ),
        occurred_at=T0 + DAY * 3,
    )


def test_a_delivery_must_add_up_to_loaded_minus_lost_and_the_refusal_shows_the_sums() -> None:
    state = arrived("10", theft(4, "2"))
    with pytest.raises(domain.DeliveryArithmetic) as refused:
        domain.confirm_delivery(state, delivery("9"), now=NOW)
    assert (
        "received 9 + damaged 0 + short 0 = 9, but loaded 10 - lost 2 = 8" in refused.value.detail
    )
    assert refused.value.extra["lines"][0]["expected"] == "8"
    [event] = domain.confirm_delivery(state, delivery("7", damaged="1"), now=NOW)
    assert event.data["lines"][0]["lost"] == "2"
    state = fold(state, [event])
    assert state.status is ConvoyStatus.DELIVERED
    assert state.delivery is not None and state.delivery.partial


def test_a_delivery_before_arrival_or_a_second_one_is_refused() -> None:
    with pytest.raises(domain.WrongStatus, match="record its arrival first"):
        domain.confirm_delivery(dispatched(), delivery("10"), now=NOW)
    state = arrived()
    state = fold(state, domain.confirm_delivery(state, delivery("10"), now=NOW))
    assert state.delivery is not None and not state.delivery.partial
    with pytest.raises(domain.WrongStatus, match="confirmed already"):
        domain.confirm_delivery(state, delivery("10"), now=NOW)


def test_a_dispatched_convoy_cannot_be_cancelled_or_loaded_and_unknown_ones_are_not_found() -> None:
    with pytest.raises(domain.WrongStatus):
        domain.cancel(dispatched(), domain.CancelConvoy("no fuel", NOW), now=NOW)
    with pytest.raises(domain.WrongStatus):
        loaded("1", "m2", state=dispatched())
    with pytest.raises(NotFound):
        domain.cancel(domain.Convoy("nope"), domain.CancelConvoy("x", NOW), now=NOW)
    with pytest.raises(Conflict):
        domain.plan(planned(), replace_plan(), now=NOW)


def replace_plan() -> domain.PlanConvoy:
    return domain.PlanConvoy(
        "c1", "r", "lille", "kharkiv", "x", T0, (domain.Vehicle("A", "van", Decimal(1)),), T0
    )


def test_cancelling_releases_every_loaded_line() -> None:
    state = loaded("10")
    [event] = domain.cancel(state, domain.CancelConvoy("border closed", NOW), now=NOW)
    assert event.event_type == ev.CONVOY_CANCELLED
    assert event.data["released"] == [
        {"manifest_line_id": "m1", "pledge_id": "p1", "line_id": "l1", "quantity": "10"}
    ]
    assert fold(state, [event]).loaded == ()
