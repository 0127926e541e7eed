"""One entry_id is one entry within a request too. The same entry twice in a batch (a road
client's queue that sent it twice) is recorded once, both places answered alike, and counted
once: as recorded, never as "already recorded" before a request that recorded it. The same
entry_id twice with other content is the request's own mistake: a 422 naming the later place
(`entries[i].entry_id`), as pledges answers a line id used twice, and nothing stored; never a
409 entry-id-reused pointing at an event the rolled-back batch never recorded."""

from __future__ import annotations

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


async def test_one_id_twice_with_other_content_is_a_422_naming_the_later_place_storing_nothing(
    on_the_road: ShipmentsApi,
) -> None:
    api = on_the_road
    before = await api.count()
    zz5 = checkpoint("2022-06-07T10:00:00+02:00", "Aachen", "zz5")
    zz6 = checkpoint("2022-06-07T11:00:00+02:00", "Köln", "zz6")
    refused = await api.entries("c1", zz5, zz6, {**zz6, "place": "Dresden"})
    body = assert_problem(refused, 422, "validation-error")
    assert body["invalid_params"] == [{"name": "entries[2].entry_id", "reason": "duplicate"}]
    assert "zz6 is used twice in this request" in body["detail"]
    assert "event_id" not in body and "recorded at" not in body["detail"]
    assert await api.count() == before
    # nothing was recorded: the entries sent again are new, not "already recorded"
    sent = await api.entries("c1", zz5, zz6)
    assert sent.status_code == 200, sent.text
    assert (sent.json()["recorded"], sent.json()["already_recorded"]) == (2, 0)
    assert await api.count() == before + 2


async def test_the_later_place_is_named_whatever_order_the_entries_occurred_in(
    on_the_road: ShipmentsApi,
) -> None:
    """A late batch is decided in the order things happened; its places are as sent."""
    api = on_the_road
    before = await api.count()
    refused = await api.entries(
        "c1",
        checkpoint("2022-06-09T08:00:00+03:00", "Lviv", "cp-3"),
        checkpoint("2022-06-07T18:00:00+02:00", "Aachen", "cp-1"),
        checkpoint("2022-06-08T12:00:00+02:00", "Kraków", "cp-3"),  # earlier, other place
    )
    body = assert_problem(refused, 422, "validation-error")
    assert body["invalid_params"][0]["name"] == "entries[2].entry_id"
    assert await api.count() == before


async def test_an_id_recorded_before_and_twice_with_other_content_is_the_requests_mistake(
    on_the_road: ShipmentsApi,
) -> None:
    api = on_the_road
    sent = checkpoint("2022-06-07T18:00:00+02:00", "Aachen", "cp-1")
    assert (await api.entries("c1", sent)).status_code == 200
    before = await api.count()
    refused = await api.entries("c1", sent, {**sent, "place": "Köln"})
    body = assert_problem(refused, 422, "validation-error")
    assert body["invalid_params"][0]["name"] == "entries[1].entry_id"
    assert await api.count() == before


async def test_the_same_entry_twice_in_a_batch_is_recorded_once_and_not_as_recorded_before(
    on_the_road: ShipmentsApi,
) -> None:
    api = on_the_road
    before = await api.count()
    zz5 = checkpoint("2022-06-07T10:00:00+02:00", "Aachen", "zz5")
    zz6 = checkpoint("2022-06-07T11:00:00+02:00", "Köln", "zz6")
    first = await api.entries("c1", zz5, zz6, dict(zz6))
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["recorded"], body["already_recorded"]) == (2, 0)
    answers = body["entries"]
    assert [a["entry_id"] for a in answers] == ["zz5", "zz6", "zz6"]
    assert answers[1] == answers[2]
    assert await api.count() == before + 2
    timeline = await api.client.get(
        "/v1/convoys/c1/timeline", headers=await api.as_("lille", Role.MEMBER)
    )
    ids = [e["entry_id"] for e in timeline.json()["entries"] if e["entry_id"]]
    assert ids.count("zz6") == 1
    # sent again, twice again: recorded before this request, counted once
    again = await api.entries("c1", dict(zz6), zz5, dict(zz6))
    assert again.status_code == 200, again.text
    assert (again.json()["recorded"], again.json()["already_recorded"]) == (0, 2)
    assert again.json()["entries"] == [answers[1], answers[0], answers[1]]
    assert await api.count() == before + 2


async def test_the_same_handoff_naming_a_person_twice_in_a_batch_is_recorded_once(
    on_the_road: ShipmentsApi,
) -> None:
    """Each place's person is sealed on its own: the batch compares the entries as sent."""
    api = on_the_road
    handoff = entry(
        "custody_handoff",
        "2022-06-08T10:00:00+02:00",
        "h-1",
        from_party={"organisation_id": "transports-nord"},
        to_party={
            "organisation_id": "kharkiv",
            "person": {"name": "Andrii Melnyk", "role": "escort team leader"},
        },
    )
    before = await api.count()
    sent = await api.entries("c1", handoff, dict(handoff))
    assert sent.status_code == 200, sent.text
    assert (sent.json()["recorded"], sent.json()["already_recorded"]) == (1, 0)
    assert sent.json()["entries"][0] == sent.json()["entries"][1]
    assert await api.count() == before + 1
    other = {**handoff, "to_party": {**handoff["to_party"], "person": {"name": "Olena Shevchenko"}}}
    other["entry_id"] = "h-2"
    refused = await api.entries("c1", other, {**handoff, "entry_id": "h-2"})
    body = assert_problem(refused, 422, "validation-error")
    assert body["invalid_params"][0]["name"] == "entries[1].entry_id"
    assert await api.count() == before + 1
