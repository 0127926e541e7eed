"""Office writes follow what they act on in time (the outside hunter's case): a load, unload,
cancellation, delivery or closing dated before the convoy's plan, an unload before its line's
load, a cancellation before the last load or unload, a delivery before the arrival, a closing
before the delivery, the arrival or the road's latest entry are a 422 naming occurred_at, and
store nothing. Road entries, recorded late and in any order, stay accepted as before. A
convoy read as of an instant before its plan did not exist: 404, as an unknown convoy."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from services.shipments import domain, handlers
from services.shipments.handlers import common, ledger
from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem, entry, unit_of_work

LILLE = ("lille", Role.LOGISTICS)
KHARKIV = ("kharkiv", Role.MEMBER)
CARRIER = ("transports-nord", Role.LOGISTICS)
PLANNED = "2022-06-01T09:00:00+02:00"  # conftest.plan_body


async def post(
    api: ShipmentsApi, path: str, body: dict[str, Any], who: tuple[str, Role] = LILLE
) -> httpx.Response:
    return await api.client.post(path, json=body, headers=await api.as_(*who))


def before_occurred_at(response: httpx.Response, previous: str) -> dict[str, Any]:
    """A 422 naming occurred_at, which lies before `previous` (as the detail words it)."""
    problem: dict[str, Any] = assert_problem(response, 422)
    assert problem["invalid_params"] == [{"name": "occurred_at", "reason": "before last change"}]
    assert f"is before {previous}" in problem["detail"], problem["detail"]
    return problem


async def stored(api: ShipmentsApi) -> int:
    return await api.count()


@pytest.fixture
async def planned(api: ShipmentsApi) -> ShipmentsApi:
    """Convoy c1 planned on 1 June 2022 (09:00 +02:00); a committed pledge line of 50."""
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    return api


async def test_a_load_dated_before_the_plan_is_refused(planned: ShipmentsApi) -> None:
    api = planned
    before = await stored(api)
    early = await api.load(manifest_line_id="m1", occurred_at="2022-05-20T10:00:00+02:00")
    problem = before_occurred_at(early, "the plan of convoy c1")
    assert "2022-05-20T10:00:00+02:00" in problem["detail"]
    assert await stored(api) == before
    assert (await api.convoy())["manifest"] == []
    on_time = await api.load(manifest_line_id="m1", occurred_at=PLANNED)  # the same instant
    assert on_time.status_code == 201, on_time.text


async def test_an_unload_before_its_load_and_a_cancel_before_the_last_change_are_refused(
    planned: ShipmentsApi,
) -> None:
    api = planned
    assert (
        await api.load(manifest_line_id="m1", occurred_at="2022-06-06T15:00:00+02:00")
    ).status_code == 201
    assert (
        await api.load(manifest_line_id="m2", occurred_at="2022-06-02T15:00:00+02:00")
    ).status_code == 201
    before = await stored(api)
    unload = "/v1/convoys/c1/manifest/m1/unload"
    early = await post(api, unload, {"occurred_at": "2022-06-03T10:00:00+02:00"})
    before_occurred_at(early, "the load of manifest line m1")
    cancel = "/v1/convoys/c1/cancel"
    for when in ("2022-05-10T10:00:00+02:00", "2022-06-04T10:00:00+02:00"):
        refused = await post(api, cancel, {"reason": "no fuel", "occurred_at": when})
        before_occurred_at(refused, "the last load or unload")
    assert await stored(api) == before
    view = await api.convoy()
    assert view["status"] == "loading"
    assert [line["state"] for line in view["manifest"]] == ["loaded", "loaded"]
    # after its load, m1 comes off; a cancel dated before that unload is refused too
    done = await post(api, unload, {"occurred_at": "2022-06-06T18:00:00+02:00"})
    assert done.status_code == 200, done.text
    refused = await post(
        api, cancel, {"reason": "no fuel", "occurred_at": "2022-06-06T17:00:00+02:00"}
    )
    before_occurred_at(refused, "the last load or unload")
    cancelled = await post(
        api, cancel, {"reason": "no fuel", "occurred_at": "2022-06-06T18:00:00+02:00"}
    )
    assert cancelled.status_code == 200, cancelled.text
    timeline = await api.client.get("/v1/convoys/c1/timeline", headers=await api.as_(*LILLE))
    types = [e["event_type"] for e in timeline.json()["entries"]]
    assert types[0] == "shipments.convoy-planned" and types[-1] == "shipments.convoy-cancelled"


async def as_of(
    api: ShipmentsApi, convoy_id: str, instant: str, who: tuple[str, Role]
) -> httpx.Response:
    return await api.client.get(
        f"/v1/convoys/{convoy_id}", params={"as_of": instant}, headers=await api.as_(*who)
    )


async def test_before_its_plan_a_convoy_read_as_of_then_did_not_exist_for_anyone(
    planned: ShipmentsApi,
) -> None:
    api = planned
    assert (await api.load(manifest_line_id="m1")).status_code == 201
    unknown = assert_problem(await as_of(api, "c9", "2022-05-25T00:00:00Z", LILLE), 404)
    for who in (LILLE, KHARKIV, CARRIER):
        problem = assert_problem(await as_of(api, "c1", "2022-05-25T00:00:00Z", who), 404)
        assert problem["type"] == unknown["type"]
        assert problem["detail"] == unknown["detail"].replace("c9", "c1")
        seen = await as_of(api, "c1", "2022-06-01T07:00:00Z", who)  # the plan's instant
        assert seen.status_code == 200, seen.text
        assert (seen.json()["status"], seen.json()["reference"]) == (
            "planned",
            "Lille - Kharkiv medicines",
        )
        assert seen.json()["origin_id"] == "lille" and seen.json()["manifest"] == []


@pytest.fixture
async def arrived(planned: ShipmentsApi) -> ShipmentsApi:
    """c1 loaded on 6 June, dispatched on the 7th, a checkpoint on the 8th, arrived on the
    10th (10:00 +03:00)."""
    api = planned
    assert (await api.load(manifest_line_id="m1", quantity="10")).status_code == 201
    response = await api.entries(
        "c1",
        entry("dispatch", "2022-06-07T06:10:00+02:00", "d"),
        entry("checkpoint", "2022-06-08T10:00:00+02:00", "cp", place="Lviv"),
        entry("arrival", "2022-06-10T10:00:00+03:00", "a", place="Kharkiv"),
    )
    assert response.status_code == 200, response.text
    return api


def delivery(occurred_at: str) -> dict[str, Any]:
    return {
        "receiver": {"name": "Natalia Koval", "role": "warehouse manager"},
        "lines": [{"manifest_line_id": "m1", "received": "10", "damaged": "0", "short": "0"}],
        "occurred_at": occurred_at,
    }


async def test_a_close_dated_before_the_delivery_or_the_road_is_refused(
    arrived: ShipmentsApi,
) -> None:
    api = arrived
    close = "/v1/convoys/c1/close"
    early_delivery = await post(
        api, "/v1/convoys/c1/delivery", delivery("2022-06-09T10:00:00+03:00"), KHARKIV
    )
    early_problem = assert_problem(early_delivery, 422)
    assert early_problem["invalid_params"][0]["name"] == "occurred_at"
    confirmed = await post(
        api, "/v1/convoys/c1/delivery", delivery("2022-06-10T12:00:00+03:00"), KHARKIV
    )
    assert confirmed.status_code == 201, confirmed.text
    # an incident noted after the delivery (nothing lost): the road's latest entry
    noted = await api.entries(
        "c1",
        entry(
            "incident",
            "2022-06-10T15:00:00+03:00",
            "i",
            incident="delay",
            description="paperwork at the warehouse",
        ),
    )
    assert noted.status_code == 200, noted.text
    before = await stored(api)
    for when, previous in (
        ("2022-06-01T00:00:00Z", "road entry i (incident)"),
        ("2022-06-10T11:00:00+03:00", "road entry i (incident)"),
        ("2022-06-10T14:59:00+03:00", "road entry i (incident)"),
    ):
        before_occurred_at(await post(api, close, {"occurred_at": when}), previous)
    assert await stored(api) == before
    assert (await api.convoy())["status"] == "delivered"
    closed = await post(api, close, {"occurred_at": "2022-06-10T15:00:00+03:00"})
    assert closed.status_code == 200, closed.text
    view = await api.convoy()
    assert view["status"] == "closed"


async def test_a_close_is_not_dated_before_the_delivery(arrived: ShipmentsApi) -> None:
    api = arrived
    confirmed = await post(
        api, "/v1/convoys/c1/delivery", delivery("2022-06-10T12:00:00+03:00"), KHARKIV
    )
    assert confirmed.status_code == 201, confirmed.text
    before = await stored(api)
    for when in ("2022-06-01T00:00:00Z", "2022-06-10T11:00:00+03:00"):
        before_occurred_at(
            await post(api, "/v1/convoys/c1/close", {"occurred_at": when}), "the delivery"
        )
    assert await stored(api) == before


async def test_road_entries_recorded_late_and_out_of_order_are_still_accepted(
    arrived: ShipmentsApi,
) -> None:
    """A checkpoint, an incident and a custody hand-off that happened before entries recorded
    already (but after the dispatch) arrive late: recorded, and the timeline sorts them."""
    api = arrived
    late = await api.entries(
        "c1",
        entry("checkpoint", "2022-06-07T20:00:00+02:00", "cp-late", place="Aachen"),
        entry(
            "incident", "2022-06-08T09:00:00+02:00", "i-late", incident="delay", description="queue"
        ),
        entry(
            "custody_handoff",
            "2022-06-09T09:00:00+02:00",
            "h-late",
            from_party={"organisation_id": "transports-nord"},
            to_party={"organisation_id": "ukrposhta"},
        ),
    )
    assert late.status_code == 200, late.text
    assert late.json()["recorded"] == 3
    timeline = await api.client.get("/v1/convoys/c1/timeline", headers=await api.as_(*LILLE))
    ids = [e["entry_id"] for e in timeline.json()["entries"] if e["entry_id"]]
    assert ids == ["d", "cp-late", "i-late", "cp", "h-late", "a"]


async def test_a_log_written_before_the_rule_with_a_load_before_the_plan_reads_404_then(
    planned: ShipmentsApi,
) -> None:
    """The hunter's log: a load dated 20 May recorded after a plan dated 1 June (as the rule
    let it before). Read as of 25 May, the convoy did not exist: 404 for its origin, recipient
    and carrier alike (it was a half-empty "loading" convoy for the origin, 403 for the
    others)."""
    api = planned
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            uow = unit_of_work(conn)
            state = await handlers.CONVOYS.load(uow, "c1")
            line = await ledger.lock(conn, "p1", "l1")
            early = datetime.fromisoformat("2022-05-20T10:00:00+02:00")
            load = domain.LoadLine("m1", "p1", "l1", Decimal(5), "GH-482-LK", early)
            unplanned = replace(state, planned_at=None, manifest_changed_at=None)
            events = domain.load(
                unplanned, load, now=uow.now, pledge_line=line, allocated=Decimal(0)
            )
            await common.record(uow, state, events)
    finally:
        await conn.close()
    timeline = await api.client.get("/v1/convoys/c1/timeline", headers=await api.as_(*LILLE))
    assert [e["event_type"] for e in timeline.json()["entries"]] == [
        "shipments.manifest-line-loaded",
        "shipments.convoy-planned",
    ]
    unknown = assert_problem(await as_of(api, "c9", "2022-05-25T00:00:00Z", LILLE), 404)
    for who in (LILLE, KHARKIV, CARRIER):
        problem = assert_problem(await as_of(api, "c1", "2022-05-25T00:00:00Z", who), 404)
        assert problem["detail"] == unknown["detail"].replace("c9", "c1")
        seen = await as_of(api, "c1", "2022-06-02T00:00:00Z", who)
        assert seen.status_code == 200, seen.text
        assert seen.json()["status"] == "loading" and len(seen.json()["manifest"]) == 1
