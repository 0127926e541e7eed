"""What a convoy may carry is what it can deliver, in the quantities pledges commits:

- at most MAX_MANIFEST_LINES lines loaded at once (the most a delivery gives): the next load is
  a 409 manifest-full naming the limit, nothing stored; an unloaded line frees its place;
- every quantity pledges can commit (at most 10^12, at most 6 decimal places: the one rule of
  shared.event_models) loads, and is delivered; a finer or larger one is a 422 naming the field;
- a reversed departure period is a 422 naming it, as pledges' reports refuse theirs.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from services.shipments import domain
from services.shipments import events as ev
from services.shipments.domain import planning
from shared.auth import Role
from shared.event_models import MAX_QUANTITY
from tests.shipments.conftest import ShipmentsApi, assert_problem, entry
from tests.shipments.test_shipments_domain import (
    GENERATORS,
    NOW,
    delivery,
    e,
    fold,
    loaded,
    planned,
    road,
)


def _one_piece(state: domain.Convoy, manifest_line_id: str) -> domain.Convoy:
    return loaded("1", manifest_line_id, state=state, weight_kg=Decimal("0.5"))


def test_the_line_after_the_most_a_delivery_gives_is_refused_and_the_full_convoy_delivers() -> None:
    assert domain.MAX_MANIFEST_LINES == ev.MAX_LINES == 500  # one limit: load and delivery
    state = planned()
    for i in range(domain.MAX_MANIFEST_LINES):
        state = _one_piece(state, f"m{i}")
    assert len(state.loaded) == 500

    with pytest.raises(domain.ManifestFull) as refused:
        _one_piece(state, "m500")
    assert refused.value.status == 409 and "(500, what one delivery can give)" in (
        refused.value.detail
    )
    assert refused.value.extra == {"max_manifest_lines": 500, "manifest_lines": 500}

    # an unloaded line is off the convoy: its place is free again
    unload = domain.UnloadLine("m7", occurred_at=NOW)
    freed = fold(state, domain.unload(state, unload, now=NOW))
    assert len(_one_piece(freed, "m500").loaded) == 500

    # the full convoy is delivered, every line given once in one delivery
    state, _ = road(state, e("dispatch", 0, "d", custody=None), e("arrival", 30, place="Kharkiv"))
    lines = tuple(
        domain.DeliveredQuantities(x.manifest_line_id, Decimal(1), Decimal(0), Decimal(0))
        for x in state.loaded
    )
    [event] = domain.confirm_delivery(state, replace(delivery("1"), lines=lines), now=NOW)
    assert len(event.data["lines"]) == 500


def test_quantities_to_the_bounds_of_a_pledge_load_and_are_delivered_as_written() -> None:
    big = replace(GENERATORS, unit="kg", quantity=MAX_QUANTITY, weight_kg=None)
    state = planned(
        vehicles=(domain.Vehicle("GH-482-LK", "bulk carrier", MAX_QUANTITY),),
    )
    for i, quantity in enumerate(["1.123456", "1234567890.5", "999999999999.999999"]):
        events = domain.load(
            state,
            domain.LoadLine(f"m{i}", "p1", "l1", Decimal(quantity), "GH-482-LK", NOW),
            now=NOW,
            pledge_line=big,
            allocated=Decimal(0),
        )
        assert events[0].data["quantity"] == quantity
        ev.ManifestLineLoaded.model_validate(events[0].data)  # the schema holds it
    whole = domain.load(
        state,
        domain.LoadLine("all", "p1", "l1", MAX_QUANTITY, "GH-482-LK", NOW),
        now=NOW,
        pledge_line=big,
        allocated=Decimal(0),
    )
    assert whole[0].data["quantity"] == whole[0].data["weight_kg"] == "1000000000000"
    ev.ManifestLineLoaded.model_validate(whole[0].data)


async def _committed(api: ShipmentsApi, quantity: str) -> None:
    await api.pledge_line(quantity=quantity, unit="kg", weight_kg=None)
    await api.plan(
        vehicles=[{"registration": "GH-482-LK", "type": "bulk", "capacity_kg": "1000000000000"}],
        drivers=[],
    )


async def test_a_pledged_quantity_of_six_decimal_places_loads_whole(api: ShipmentsApi) -> None:
    await _committed(api, "1.123456")
    headers = await api.as_("lille", Role.MEMBER)
    line = (await api.client.get("/v1/pledge-lines/p1/l1", headers=headers)).json()
    assert line["loadable"] == "1.123456"

    loaded_line = await api.load(manifest_line_id="m1", quantity="1.123456")
    assert loaded_line.status_code == 201, loaded_line.text
    assert (loaded_line.json()["quantity"], loaded_line.json()["weight_kg"]) == (
        "1.123456",
        "1.123456",
    )
    line = (await api.client.get("/v1/pledge-lines/p1/l1", headers=headers)).json()
    assert (line["allocated"], line["loadable"]) == ("1.123456", "0")


async def test_a_quantity_above_a_billion_loads_and_is_delivered(api: ShipmentsApi) -> None:
    await _committed(api, "1234567890.5")
    loaded_line = await api.load(manifest_line_id="m1", quantity="1234567890.5")
    assert loaded_line.status_code == 201, loaded_line.text
    at = "2022-06-08T10:00:00+02:00"
    sent = await api.entries(
        "c1",
        entry("dispatch", "2022-06-07T06:00:00+02:00"),
        entry("arrival", at, place="Kharkiv"),
    )
    assert sent.status_code in (200, 201), sent.text
    delivered = await api.client.post(
        "/v1/convoys/c1/delivery",
        json={
            "receiver": {"name": "Olha Kravchenko", "role": "warehouse"},
            "lines": [
                {
                    "manifest_line_id": "m1",
                    "received": "1234567890.499999",
                    "damaged": "0.000001",
                    "short": "0",
                }
            ],
            "occurred_at": "2022-06-08T12:00:00+02:00",
        },
        headers=await api.as_("kharkiv", Role.LOGISTICS),
    )
    assert delivered.status_code in (200, 201), delivered.text
    [event] = await api.events("shipments.delivery-confirmed")
    assert (event["lines"][0]["loaded"], event["lines"][0]["received"]) == (
        "1234567890.5",
        "1234567890.499999",
    )


@pytest.mark.parametrize(
    ("fields", "field", "why"),
    [
        ({"quantity": "1.1234567"}, "quantity", "more than 6 decimal places"),
        ({"quantity": "1000000000000.1"}, "quantity", "exceeds 1000000000000"),
        ({"weight_kg": "1.1234567"}, "weight_kg", "more than 6 decimal places"),
        ({"quantity": "1" * 41}, "quantity", "at most 40 characters"),
    ],
)
async def test_a_quantity_finer_or_larger_than_any_pledge_is_a_422_naming_it(
    api: ShipmentsApi, fields: dict[str, str], field: str, why: str
) -> None:
    await _committed(api, "1000000000000")
    before = await api.count()
    problem = assert_problem(await api.load(**fields), 422)
    assert [p["name"] for p in problem["invalid_params"]] == [field]
    assert why in problem["detail"]
    assert await api.count() == before


async def test_the_load_after_the_most_a_convoy_carries_is_a_409_and_stores_nothing(
    api: ShipmentsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTP, with the limit lowered to 2 for speed (the domain test loads 500)."""
    monkeypatch.setattr(planning, "MAX_MANIFEST_LINES", 2)
    await api.pledge_line(quantity="50")
    await api.plan()
    for i in range(2):
        assert (await api.load(manifest_line_id=f"m{i}", quantity="1")).status_code == 201
    before = await api.count()
    problem = assert_problem(
        await api.load(manifest_line_id="m2", quantity="1"), 409, "manifest-full"
    )
    assert problem["max_manifest_lines"] == 2 and "carries 2 manifest lines" in problem["detail"]
    assert await api.count() == before
    assert [x["manifest_line_id"] for x in (await api.convoy())["manifest"]] == ["m0", "m1"]

    unloaded = await api.client.post(
        "/v1/convoys/c1/manifest/m0/unload",
        json={},
        headers=await api.as_("lille", Role.LOGISTICS),
    )
    assert unloaded.status_code == 200, unloaded.text
    assert (await api.load(manifest_line_id="m2", quantity="1")).status_code == 201


@pytest.mark.parametrize(
    ("departs_from", "departs_to"),
    [
        ("2023-02-01T00:00:00Z", "2023-01-01T00:00:00Z"),  # reversed
        ("2023-01-01T00:00:00Z", "2023-01-01T00:00:00Z"),  # empty: departs_to is excluded
    ],
)
async def test_a_departure_period_ending_before_it_starts_is_a_422_naming_it(
    api: ShipmentsApi, departs_from: str, departs_to: str
) -> None:
    await api.plan()
    headers = await api.as_("lille", Role.LOGISTICS)
    for fmt in ("json", "csv"):
        response = await api.client.get(
            "/v1/convoys",
            params={"departs_from": departs_from, "departs_to": departs_to, "format": fmt},
            headers=headers,
        )
        problem = assert_problem(response, 422)
        assert [p["name"] for p in problem["invalid_params"]] == ["query.departs_to"]
        assert "query.departs_from" in problem["detail"]
    ordered = await api.client.get(
        "/v1/convoys",
        params={"departs_from": "2022-06-01T00:00:00Z", "departs_to": "2022-07-01T00:00:00Z"},
        headers=headers,
    )
    assert ordered.status_code == 200, ordered.text
    assert [c["convoy_id"] for c in ordered.json()["items"]] == ["c1"]
