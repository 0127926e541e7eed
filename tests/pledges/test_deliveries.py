"""Confirmed deliveries from shipments, applied through the consumer runner on a real database:
counted once, in whatever order they arrive, with the flow's correlation id."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.pledges import subscriptions
from shared.consumer import ConsumerRunner, Incoming
from shared.db import Database
from shared.metrics import Metrics
from tests.conftest import settings_for
from tests.pledges.conftest import (
    GENERATORS_NEED,
    PledgesApi,
    assert_problem,
    generators_pledge,
    incoming,
    loading,
)

PLEDGE = "/v1/pledges/lille-generators"


@pytest.fixture
async def runner(api: PledgesApi) -> AsyncIterator[ConsumerRunner]:
    db = Database(api.url, max_size=2)
    await db.open()
    try:
        yield ConsumerRunner(
            service="pledges",
            settings=settings_for(api.url),
            db=db,
            metrics=Metrics("pledges-test"),
            handlers=subscriptions.HANDLERS,
        )
    finally:
        await db.close()


def delivery(
    *lines: dict[str, Any], convoy_id: str = "convoy-1", event_id: uuid.UUID | None = None
) -> Incoming:
    return incoming(
        "shipments",
        "shipments.delivery-confirmed",
        {
            "convoy_id": convoy_id,
            "recipient_id": "kharkiv",
            "origin_id": "lille",
            "carrier_id": "lille",
            "confirmed_by": {"name": "Olena K.", "role": "warehouse", "phone": "kept out"},
            "document": {"name": "pod.pdf", "sha256": "ab" * 32},
            "lines": list(lines),
        },
        stream_id=f"convoy-{convoy_id}",
        correlation_id="convoy-correlation",
        event_id=event_id,
    )


def line(
    manifest_line_id: str = "m1",
    *,
    received: str = "20",
    damaged: str = "0",
    short: str = "0",
    lost: str = "0",
    unit: str = "pieces",
    line_id: str = "generators",
) -> dict[str, Any]:
    loaded = sum(float(x) for x in (received, damaged, short, lost))
    return {
        "manifest_line_id": manifest_line_id,
        "pledge_id": "lille-generators",
        "line_id": line_id,
        "item": "Medium-sized generator",
        "unit": unit,
        "loaded": f"{loaded:g}",
        "received": received,
        "damaged": damaged,
        "short": short,
        "lost": lost,
        "correlation_id": "kharkiv-generators",
        "a_field_pledges_does_not_know": True,
    }


async def loaded(runner: ConsumerRunner, delivery: Incoming) -> Incoming:
    """`delivery`, once shipments' loading of its lines was applied."""
    for event in loading(delivery):
        await runner.apply(event)
    return delivery


async def committed(api: PledgesApi, quantity: str = "100") -> None:
    await api.ok(
        "/v1/needs", GENERATORS_NEED, by="kharkiv", **{"X-Correlation-ID": "kharkiv-generators"}
    )
    body = generators_pledge(commit=True)
    body["lines"][0]["quantity"] = quantity
    await api.ok("/v1/pledges", body, by="lille")


async def updates(api: PledgesApi) -> list[tuple[str, str, str, str]]:
    return [
        (e["quantity"], e["delivered"], e["remaining"], e["status"])
        for e in await api.events("pledges.pledge-line-updated")
    ]


async def test_a_confirmed_delivery_counts_what_arrived_in_good_condition(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await committed(api)
    event = delivery(line(received="20", damaged="1", short="1", lost="2"))
    assert await runner.apply(await loaded(runner, event))
    pledge = await api.get(PLEDGE)
    generators = pledge["lines"][0]
    assert (
        generators["recipient_confirmed"],
        generators["damaged"],
        generators["short"],
        generators["lost"],
        generators["remaining"],
    ) == ("20", "1", "1", "2", "80")
    assert generators["deliveries"][0]["loaded"] == "24"
    assert pledge["status"] == "partly_fulfilled"
    need = await api.get("/v1/needs/kharkiv-generators")
    assert need["coverage"]["delivered"] == "20"
    assert await updates(api) == [
        ("100", "0", "100", "committed"),
        ("100", "20", "80", "committed"),
    ]
    [recorded] = await api.events("pledges.delivery-recorded")
    # a version 1 delivery names who signed in clear: pledges seals the name (the recipient
    # records them), keeps the role in clear and drops what it does not read (the phone)
    sealed = recorded["confirmed_by"]
    assert sealed["role"] == "warehouse" and sealed["personal"] == ["name"]
    assert sealed["subject_id"].startswith("pledges-") and "Olena" not in str(recorded)
    history = await api.get(f"{PLEDGE}/history", reader="kharkiv")
    shown = history["events"][-2]["data"]["confirmed_by"]
    assert (shown["name"], shown["role"], shown["erased"]) == ("Olena K.", "warehouse", False)
    assert recorded["_meta"] == {
        "actor": "pledges-consumer",
        "organisation": None,
        "correlation_id": "kharkiv-generators",
        "causation_id": str(event.event_id),
        "idempotency_key": None,
    }


async def test_a_delivery_arriving_twice_is_counted_once(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await committed(api)
    event = delivery(line())
    assert await runner.apply(await loaded(runner, event))
    assert not await runner.apply(await loaded(runner, event)), "the inbox drops the same event"
    resent = delivery(line(), event_id=uuid.uuid4())  # the same delivery under a new event id
    assert await runner.apply(await loaded(runner, resent))
    assert len(await api.events("pledges.delivery-recorded")) == 1
    assert (await api.get(PLEDGE))["lines"][0]["recipient_confirmed"] == "20"
    rows = await api.fetch("SELECT count(*) AS n FROM deliveries")
    assert rows[0]["n"] == 1


async def test_two_convoys_for_one_line_both_count(api: PledgesApi, runner: ConsumerRunner) -> None:
    await committed(api, quantity="50")
    for convoy, received in (("convoy-1", "30"), ("convoy-2", "20")):
        event = delivery(line("m1", received=received), convoy_id=convoy)
        await runner.apply(await loaded(runner, event))
    assert (await api.get(PLEDGE))["status"] == "fulfilled"
    assert (await updates(api))[-1] == ("50", "50", "0", "fulfilled")


async def test_a_delivery_before_an_amendment_bounds_it_and_counts_against_the_new_quantity(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await committed(api)
    await runner.apply(await loaded(runner, delivery(line(received="30"))))
    path = f"{PLEDGE}/lines/generators/amendments"
    too_low = await api.post(path, {"quantity": "20", "reason": "fewer"}, by="lille")
    assert "already confirmed: 30" in assert_problem(too_low, 409)["detail"]
    await api.ok(path, {"quantity": "50", "reason": "about fifty for the moment"}, by="lille")
    assert (await updates(api))[-1] == ("50", "30", "20", "committed")


async def test_a_delivery_after_an_amendment_counts_against_the_amended_quantity(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await committed(api)
    await api.ok(
        f"{PLEDGE}/lines/generators/amendments",
        {"quantity": "50", "reason": "about fifty for the moment"},
        by="lille",
    )
    await runner.apply(await loaded(runner, delivery(line(received="50"))))
    assert (await updates(api))[-1] == ("50", "50", "0", "fulfilled")
    assert (await api.get("/v1/needs/kharkiv-generators"))["coverage"] == {
        "pledged": "50",
        "committed": "50",
        "delivered": "50",
        "gap": "50",
    }


async def test_goods_delivered_after_a_withdrawal_still_count(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await committed(api)
    await api.ok(f"{PLEDGE}/withdraw", {"reason": "budget cut"}, by="lille")
    await runner.apply(await loaded(runner, delivery(line(received="40"))))
    assert (await updates(api))[-1] == ("100", "40", "60", "withdrawn")
    need = await api.get("/v1/needs/kharkiv-generators")
    assert (need["coverage"]["pledged"], need["coverage"]["delivered"]) == ("40", "40")


async def test_a_delivery_in_kilograms_counts_towards_a_line_in_tonnes(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    body = generators_pledge(commit=True, partnership_id=None)
    body["lines"] = [
        {
            "line_id": "meds",
            "kind": "in_kind",
            "item": "Medicines",
            "category": "medicines",
            "quantity": "13",
            "unit": "tonnes",
        }
    ]
    await api.ok("/v1/pledges", body, by="lille")
    event = delivery(line(line_id="meds", received="6500", unit="kg"))
    await runner.apply(await loaded(runner, event))
    assert (await updates(api))[-1] == ("13", "6.5", "6.5", "committed")


async def test_a_delivery_that_fits_no_line_is_parked_and_the_consumer_goes_on(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await committed(api)
    bad = delivery(line(line_id="no-such-line"))
    await runner.apply_with_retries(await loaded(runner, bad), None)
    [dead] = await api.fetch("SELECT reason FROM dead_letters")
    assert "UnusableDelivery" in dead["reason"] and "no-such-line" in dead["reason"]
    assert await api.events("pledges.delivery-recorded") == []
    assert await runner.apply(await loaded(runner, delivery(line(), convoy_id="convoy-2")))
    assert len(await api.events("pledges.delivery-recorded")) == 1


async def test_other_shipments_events_change_nothing(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await committed(api)
    before = await api.count_events()
    assert await runner.apply(
        incoming("shipments", "shipments.convoy-dispatched", {"convoy_id": "convoy-1"})
    )
    assert await api.count_events() == before


async def test_a_delivery_on_a_line_never_loaded_or_beyond_its_load_is_quarantined(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await committed(api)
    unknown = delivery(line(received="20"), convoy_id="convoy-9")  # no loading announced
    await runner.apply_with_retries(unknown, None)
    await loaded(runner, delivery(line(received="50")))  # 50 loaded on convoy-1, line m1
    inflated = delivery(line(received="1000"))  # the same line, claiming 1,000
    await runner.apply_with_retries(inflated, None)
    other_line = delivery(line(received="20", line_id="meds"))  # m1 carries generators
    await runner.apply_with_retries(other_line, None)
    held = await api.fetch("SELECT event_id, reason, authentic FROM quarantine ORDER BY id")
    assert [(q["event_id"], q["reason"]) for q in held] == [
        (
            str(unknown.event_id),
            "convoy convoy-9, manifest line m1: shipments never said it was loaded",
        ),
        (
            str(inflated.event_id),
            "convoy convoy-1, manifest line m1: 1000 delivered or loaded, but 50 were loaded",
        ),
        (
            str(other_line.event_id),
            "convoy convoy-1, manifest line m1 carries lille-generators/generators,"
            " not lille-generators/meds",
        ),
    ]
    assert await api.events("pledges.delivery-recorded") == []
    assert (await api.get(PLEDGE))["lines"][0]["recipient_confirmed"] == "0"
    assert await runner.apply(await loaded(runner, delivery(line(received="50"))))
    assert (await api.get(PLEDGE))["lines"][0]["recipient_confirmed"] == "50"


async def test_a_line_cannot_be_amended_below_what_convoys_carry_until_they_give_it_back(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await committed(api)
    path = f"{PLEDGE}/lines/generators/amendments"
    # 60 loaded on convoy-1 (then on the road), 10 already delivered by convoy-2
    for event in loading(delivery(line("m1", received="60"), convoy_id="convoy-1")):
        assert await runner.apply(event)
    await runner.apply(await loaded(runner, delivery(line("m2", received="10"), convoy_id="c-2")))
    too_low = assert_problem(
        await api.post(path, {"quantity": "20", "reason": "fewer"}, by="lille"), 409
    )
    assert "convoys carry of it, not yet delivered (60)" in too_low["detail"]
    assert (too_low["confirmed"], too_low["carried"]) == ("10", "60")
    assert (await api.get(PLEDGE))["lines"][0]["quantity"] == "100", "nothing stored"
    await api.ok(path, {"quantity": "70", "reason": "what is on its way"}, by="lille")

    # convoy-1 cancelled: what it held is given back, the line may go down to what arrived
    cancelled = incoming(
        "shipments",
        "shipments.convoy-cancelled",
        {
            "convoy_id": "convoy-1",
            "reason": "road closed",
            "released": [
                {
                    "manifest_line_id": "m1",
                    "pledge_id": "lille-generators",
                    "line_id": "generators",
                    "quantity": "60",
                }
            ],
        },
        stream_id="convoy-convoy-1",
    )
    assert await runner.apply(cancelled)
    await api.ok(path, {"quantity": "10", "reason": "the rest stays home"}, by="lille")
    assert (await updates(api))[-1] == ("10", "10", "0", "fulfilled")


def closed(convoy_id: str, outcome: str) -> Incoming:
    return incoming(
        "shipments",
        "shipments.convoy-closed",
        {"convoy_id": convoy_id, "outcome": outcome, "note": None},
        stream_id=f"convoy-{convoy_id}",
    )


async def test_a_convoy_closed_with_everything_lost_gives_its_lines_back(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await committed(api)
    path = f"{PLEDGE}/lines/generators/amendments"
    # 60 loaded on convoy-1, all lost on the road; 10 delivered by c-2
    for event in loading(delivery(line("m1", received="60"), convoy_id="convoy-1")):
        assert await runner.apply(event)
    await runner.apply(await loaded(runner, delivery(line("m2", received="10"), convoy_id="c-2")))
    too_low = assert_problem(
        await api.post(path, {"quantity": "10", "reason": "fewer"}, by="lille"), 409
    )
    assert (too_low["confirmed"], too_low["carried"]) == ("10", "60")
    assert await runner.apply(closed("convoy-1", "lost"))
    held = await api.fetch(
        "SELECT loaded, source_position FROM convoy_lines WHERE convoy_id = 'convoy-1'"
    )
    assert [r["loaded"] for r in held] == [0]
    assert held[0]["source_position"] is not None
    await api.ok(path, {"quantity": "10", "reason": "the rest was lost"}, by="lille")
    assert (await updates(api))[-1] == ("10", "10", "0", "fulfilled")


async def test_a_convoy_closed_after_its_delivery_changes_nothing(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await committed(api)
    path = f"{PLEDGE}/lines/generators/amendments"
    await runner.apply(await loaded(runner, delivery(line("m1", received="10"), convoy_id="c-2")))
    # 60 still on the road on convoy-1
    for event in loading(delivery(line("m1", received="60"), convoy_id="convoy-1")):
        assert await runner.apply(event)
    before = await api.fetch("SELECT * FROM convoy_lines ORDER BY convoy_id, manifest_line_id")
    events = await api.count_events()
    assert await runner.apply(closed("c-2", "delivered"))
    assert await api.fetch("SELECT * FROM convoy_lines ORDER BY convoy_id, manifest_line_id") == (
        before
    )
    assert await api.count_events() == events
    assert (await api.get(PLEDGE))["lines"][0]["recipient_confirmed"] == "10"
    too_low = assert_problem(
        await api.post(path, {"quantity": "20", "reason": "fewer"}, by="lille"), 409
    )
    assert (too_low["confirmed"], too_low["carried"]) == ("10", "60")
