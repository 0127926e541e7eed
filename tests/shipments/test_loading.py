"""Loading convoys from committed pledge lines over HTTP on real PostgreSQL: never more than
remains, not even under 50 concurrent requests; bad loads refused with nothing stored."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem


async def test_fifty_concurrent_loads_of_one_line_never_take_more_than_remains(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="100", weight_kg="8000")
    for i in range(50):
        await api.plan(f"c{i}")
    before = await api.count()

    responses = await asyncio.gather(
        *(api.load(f"c{i}", manifest_line_id=f"m{i}", quantity="3") for i in range(50))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 33 + [409] * 17, [r.text for r in responses if r.status_code >= 500]
    for refused in (r for r in responses if r.status_code == 409):
        assert_problem(refused, 409, "exceeds-remaining")
    assert await api.count() == before + 33
    loaded = await api.events("shipments.manifest-line-loaded")
    assert sum(Decimal(e["quantity"]) for e in loaded) == Decimal(99)
    line = await api.client.get(
        "/v1/pledge-lines/p1/l1", headers=await api.as_("lille", Role.MEMBER)
    )
    assert (line.json()["allocated"], line.json()["loadable"]) == ("99", "1")
    assert len(line.json()["allocations"]) == 33


async def test_unloading_before_dispatch_gives_the_quantity_back_to_the_pledge_line(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    await api.plan("c2")
    assert (await api.load("c1", manifest_line_id="m1", quantity="50")).status_code == 201
    assert_problem(await api.load("c2", quantity="1"), 409, "exceeds-remaining")

    unloaded = await api.client.post(
        "/v1/convoys/c1/manifest/m1/unload",
        json={"reason": "the truck for Bucha needs the room"},
        headers=await api.as_("lille", Role.LOGISTICS),
    )
    assert unloaded.status_code == 200, unloaded.text
    assert unloaded.json()["status"] == "planned"
    assert (await api.load("c2", quantity="50")).status_code == 201


async def test_cancelling_a_convoy_before_dispatch_releases_what_it_loaded(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="20")
    await api.plan("c1")
    await api.plan("c2")
    await api.load("c1", manifest_line_id="m1", quantity="20")
    cancelled = await api.client.post(
        "/v1/convoys/c1/cancel",
        json={"reason": "border closed", "occurred_at": "2022-06-06T16:00:00+02:00"},
        headers=await api.as_("lille", Role.LOGISTICS),
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["released"][0]["quantity"] == "20"
    assert (await api.load("c2", quantity="20")).status_code == 201
    assert_problem(await api.load("c1", manifest_line_id="m9", quantity="1"), 409, "convoy-status")


async def test_a_withdrawn_line_cannot_be_loaded_and_stops_a_convoy_that_already_has_it(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(pledge_id="p1", line_id="l1", quantity="50")
    await api.pledge_line(pledge_id="p2", line_id="l1", quantity="5", status="withdrawn")
    await api.plan("c1")
    before = await api.count()
    refused = assert_problem(await api.load(pledge_id="p2"), 409, "pledge-line-not-loadable")
    assert "withdrawn" in refused["detail"]
    assert await api.count() == before

    assert (await api.load(manifest_line_id="m1", quantity="10")).status_code == 201
    await api.pledge_line(pledge_id="p1", line_id="l1", quantity="50", status="withdrawn")
    dispatch = await api.entries(
        "c1",
        {"entry_id": "d1", "kind": "dispatch", "occurred_at": "2022-06-07T06:00:00+02:00"},
    )
    body = assert_problem(dispatch, 409, "pledge-line-not-loadable")
    assert body["manifest_line_ids"] == ["m1"]


async def test_an_uncommitted_pledge_line_is_unknown_to_shipments_and_refused(
    api: ShipmentsApi,
) -> None:
    await api.plan("c1")
    before = await api.count()
    body = assert_problem(await api.load(pledge_id="never-committed"), 422)
    assert "not known to shipments" in body["detail"]
    assert body["invalid_params"] == [{"name": "line_id", "reason": "unknown pledge line"}]
    assert await api.count() == before


async def test_loading_more_than_remains_names_committed_loaded_and_remaining(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    await api.load(manifest_line_id="m1", quantity="45")
    before = await api.count()
    body = assert_problem(await api.load(manifest_line_id="m2", quantity="6"), 409)
    assert (body["committed"], body["allocated"], body["remaining"], body["requested"]) == (
        "50",
        "45",
        "5",
        "6",
    )
    assert await api.count() == before


async def test_a_newer_announcement_of_a_line_wins_and_an_older_one_changes_nothing(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50", position=10)
    await api.pledge_line(quantity="30", position=12)  # amended: "about fifty for the moment"
    await api.pledge_line(quantity="50", position=11)  # late, older news
    await api.plan("c1")
    assert_problem(await api.load(quantity="31"), 409, "exceeds-remaining")
    assert (await api.load(quantity="30")).status_code == 201


async def test_overweight_unknown_vehicles_and_other_recipients_are_refused_and_store_nothing(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line(quantity="50", weight_kg="4000")  # 80 kg each
    await api.pledge_line(pledge_id="p-bucha", recipient_id="bucha")
    await api.plan("c1")
    before = await api.count()

    overweight = assert_problem(
        await api.load(vehicle="FD-117-PR", quantity="50", weight_kg="7600"), 409, "overweight"
    )
    assert "over its capacity of 7500 kg" in overweight["detail"]
    unknown = assert_problem(await api.load(vehicle="ZZ-999-ZZ"), 422)
    assert unknown["invalid_params"] == [{"name": "vehicle", "reason": "unknown vehicle"}]
    assert "GH-482-LK, FD-117-PR" in unknown["detail"]
    other = assert_problem(await api.load(pledge_id="p-bucha"), 422)
    assert "pledged to bucha" in other["detail"]
    assert_problem(await api.load(quantity="0"), 422)
    assert_problem(await api.load(quantity="-3"), 422)
    assert_problem(await api.load(quantity="3", surprise=True), 422)
    future = assert_problem(await api.load(occurred_at="2999-01-01T00:00:00Z"), 422)
    assert "in the future" in future["detail"]
    assert await api.count() == before


async def test_only_the_logistics_role_of_the_origin_or_carrier_plans_and_loads(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line()
    await api.plan("c1")
    body = {"pledge_id": "p1", "line_id": "l1", "quantity": "1", "vehicle": "GH-482-LK"}
    for who in [("lille", Role.MEMBER), ("kharkiv", Role.LOGISTICS), ("audit", Role.AUDITOR)]:
        response = await api.client.post(
            "/v1/convoys/c1/manifest", json=body, headers=await api.as_(*who)
        )
        assert_problem(response, 403)
    carrier = await api.client.post(
        "/v1/convoys/c1/manifest",
        json=body,
        headers=await api.as_("transports-nord", Role.LOGISTICS),
    )
    assert carrier.status_code == 201, carrier.text


async def test_a_convoy_between_unregistered_organisations_is_refused(api: ShipmentsApi) -> None:
    before = await api.count()
    response = await api.client.post(
        "/v1/convoys",
        json={
            "reference": "to nowhere",
            "origin_id": "lille",
            "destination_id": "atlantis",
            "carrier_id": "lille",
            "planned_departure": "2022-06-07T06:00:00+02:00",
            "vehicles": [{"registration": "AB-1", "type": "van", "capacity_kg": "900"}],
        },
        headers=await api.as_("lille", Role.LOGISTICS),
    )
    body = assert_problem(response, 422)
    assert body["invalid_params"] == [{"name": "destination_id", "reason": "unknown organisation"}]
    assert await api.count() == before


async def test_the_pledge_lines_view_shows_what_may_still_be_loaded(api: ShipmentsApi) -> None:
    await api.pledge_line(pledge_id="p1", quantity="50")
    await api.pledge_line(pledge_id="p2", quantity="5", status="withdrawn")
    await api.pledge_line(pledge_id="p3", quantity="8", donor_id="chu-lille")
    await api.plan("c1")
    await api.load(pledge_id="p3", quantity="8", weight_kg="80")
    headers = await api.as_("kharkiv", Role.MEMBER)
    every = await api.client.get(
        "/v1/pledge-lines", params={"recipient": "kharkiv"}, headers=headers
    )
    assert [(i["pledge_id"], i["loadable"]) for i in every.json()["items"]] == [
        ("p1", "50"),
        ("p2", "0"),
        ("p3", "0"),
    ]
    loadable = await api.client.get("/v1/pledge-lines", params={"loadable": True}, headers=headers)
    assert [i["pledge_id"] for i in loadable.json()["items"]] == ["p1"]


async def test_a_load_against_a_stale_version_is_refused_with_the_current_one(
    api: ShipmentsApi,
) -> None:
    await api.pledge_line()
    await api.plan("c1")
    assert (await api.load(manifest_line_id="m1", quantity="1")).status_code == 201
    stale = await api.client.post(
        "/v1/convoys/c1/manifest",
        json={"pledge_id": "p1", "line_id": "l1", "quantity": "1", "vehicle": "GH-482-LK"},
        headers={**await api.as_("lille", Role.LOGISTICS), "If-Match": "1"},
    )
    assert assert_problem(stale, 412)["current_version"] == 2
