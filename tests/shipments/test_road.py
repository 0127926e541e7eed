"""Field entries from the road over HTTP: batches uploaded late and out of order, re-sent
entries, refusals that store nothing, and the tracking views they feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, assert_problem, entry

DISPATCH = "2022-06-07T06:10:00+02:00"


@pytest.fixture
async def on_the_road(api: ShipmentsApi) -> ShipmentsApi:
    await api.pledge_line(quantity="50")
    await api.plan("c1")
    await api.load(manifest_line_id="m1", quantity="10")
    response = await api.entries("c1", entry("dispatch", DISPATCH, "d"))
    assert response.status_code == 200, response.text
    return api


def checkpoint(occurred_at: str, place: str, entry_id: str) -> dict[str, Any]:
    return entry("checkpoint", occurred_at, entry_id, place=place)


async def test_a_late_batch_in_any_order_lands_in_the_timeline_by_when_things_happened(
    on_the_road: ShipmentsApi,
) -> None:
    api = on_the_road
    batch = await api.entries(
        "c1",
        checkpoint("2022-06-09T08:00:00+03:00", "Lviv", "cp-3"),
        checkpoint("2022-06-07T18:00:00+02:00", "Aachen", "cp-1"),
        checkpoint("2022-06-08T12:00:00+02:00", "Kraków", "cp-2"),
    )
    assert batch.status_code == 200, batch.text
    assert [a["entry_id"] for a in batch.json()["entries"]] == ["cp-3", "cp-1", "cp-2"]
    timeline = await api.client.get(
        "/v1/convoys/c1/timeline", headers=await api.as_("lille", Role.MEMBER)
    )
    entries = timeline.json()["entries"]
    assert [e["entry_id"] for e in entries if e["entry_id"]] == ["d", "cp-1", "cp-2", "cp-3"]
    assert [e["event_type"] for e in entries][:2] == [
        "shipments.convoy-planned",
        "shipments.manifest-line-loaded",
    ]
    late = entries[-1]
    assert late["occurred_at"].startswith("2022-06-09") and late["recorded_at"] > "2026"
    convoy = await api.convoy()
    assert convoy["position"]["place"] == "Lviv"
    assert convoy["last_news"]["entry_id"] == "cp-3"


async def test_a_re_sent_entry_is_stored_once_and_answered_the_same_way_again(
    on_the_road: ShipmentsApi,
) -> None:
    api = on_the_road
    sent = checkpoint("2022-06-07T18:00:00+02:00", "Aachen", "cp-1")
    first = await api.entries("c1", sent)
    events = await api.count()
    again = await api.entries("c1", sent, checkpoint("2022-06-08T12:00:00+02:00", "Kraków", "cp-2"))
    assert again.status_code == 200, again.text
    assert again.json()["entries"][0] == first.json()["entries"][0]
    assert (again.json()["recorded"], again.json()["already_recorded"]) == (1, 1)
    assert await api.count() == events + 1
    changed = await api.entries("c1", {**sent, "place": "Köln"})
    body = assert_problem(changed, 409, "entry-id-reused")
    assert body["entry_id"] == "cp-1"
    assert await api.count() == events + 1


async def test_a_batch_with_one_bad_entry_stores_nothing_and_names_the_entry(
    on_the_road: ShipmentsApi,
) -> None:
    api = on_the_road
    before = await api.count()
    future = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    response = await api.entries(
        "c1",
        checkpoint("2022-06-07T18:00:00+02:00", "Aachen", "ok"),
        checkpoint(future, "Kyiv", "tomorrow"),
    )
    body = assert_problem(response, 422)
    assert "in the future" in body["detail"]
    # refused by the request's time range (shared/instants.py), at the entry's index
    assert body["invalid_params"][0]["name"] == "entries.1.checkpoint.occurred_at"
    stranger = await api.entries(
        "c1",
        entry(
            "custody_handoff",
            "2022-06-08T10:00:00+02:00",
            "h",
            from_party={"organisation_id": "transports-nord"},
            to_party={"organisation_id": "atlantis-freight"},
        ),
    )
    assert "atlantis-freight is not in the registry" in assert_problem(stranger, 422)["detail"]
    too_much = await api.entries(
        "c1",
        entry(
            "incident",
            "2022-06-08T10:00:00+02:00",
            "i",
            incident="loss",
            description="pallet fell off",
            lines=[{"manifest_line_id": "m1", "quantity": "11"}],
        ),
    )
    assert "more than was loaded" in assert_problem(too_much, 422)["detail"]
    assert_problem(await api.entries("c1", {"entry_id": "x", "kind": "teleport"}), 422)
    assert await api.count() == before


async def test_a_convoy_cannot_leave_empty_and_road_events_wait_for_its_dispatch(
    api: ShipmentsApi,
) -> None:
    await api.plan("c1")
    before = await api.count()
    empty = await api.entries("c1", entry("dispatch", DISPATCH, "d"))
    assert "nothing on its manifest" in assert_problem(empty, 409, "empty-convoy")["detail"]
    early = await api.entries("c1", checkpoint("2022-06-07T18:00:00+02:00", "Aachen", "cp"))
    assert "record its dispatch" in assert_problem(early, 409, "convoy-status")["detail"]
    unknown = await api.entries("nope", checkpoint("2022-06-07T18:00:00+02:00", "Aachen", "cp"))
    assert_problem(unknown, 404)
    assert await api.count() == before


async def test_borders_holds_and_losses_show_in_the_in_transit_board(
    on_the_road: ShipmentsApi,
) -> None:
    api = on_the_road
    await api.plan("c2", reference="Lille - Kharkiv generators")
    await api.load("c2", manifest_line_id="m2", quantity="5")
    await api.entries("c2", entry("dispatch", DISPATCH, "d2"))
    await api.entries(
        "c1",
        entry(
            "border_crossing",
            "2022-06-09T11:00:00+03:00",
            "b1",
            crossing_point="Medyka - Shehyni",
            customs_document="UA-209-2022-118734",
            outcome="held",
        ),
    )
    await api.entries(
        "c2",
        checkpoint("2022-06-08T12:00:00+02:00", "Kraków", "k"),
        entry(
            "incident",
            "2022-06-08T23:00:00+02:00",
            "s",
            incident="seizure",
            description="the whole load seized at a checkpoint",
            lines=[{"manifest_line_id": "m2", "quantity": "5"}],
        ),
    )
    board = await api.client.get(
        "/v1/tracking/in-transit", headers=await api.as_("lille", Role.MEMBER)
    )
    assert board.status_code == 200, board.text
    [held] = board.json()["items"]  # the lost convoy is not "in transit"
    assert (held["convoy_id"], held["status"]) == ("c1", "held")
    assert held["position"]["place"] == "Medyka - Shehyni"
    assert held["custody"]["organisation_id"] == "transports-nord"
    assert held["age_of_last_news_seconds"] > 3 * 365 * 24 * 3600
    lost = await api.convoy("c2")
    assert lost["status"] == "lost"
    assert (lost["manifest"][0]["lost"], lost["manifest"][0]["in_transit"]) == ("5", "0")
    assert lost["discrepancies"][0]["lost"] == "5"


async def test_only_the_carrier_or_the_logistics_teams_involved_record_road_events(
    on_the_road: ShipmentsApi,
) -> None:
    api = on_the_road
    sent = checkpoint("2022-06-07T18:00:00+02:00", "Aachen", "cp")
    for who in [("bucha", Role.LOGISTICS), ("kharkiv", Role.MEMBER), ("audit", Role.AUDITOR)]:
        assert_problem(await api.entries("c1", sent, who=who), 403)
    for i, who in enumerate(
        [("transports-nord", Role.MEMBER), ("kharkiv", Role.LOGISTICS), ("lille", Role.LOGISTICS)]
    ):
        response = await api.entries("c1", {**sent, "entry_id": f"cp-{i}"}, who=who)
        assert response.status_code == 200, response.text
