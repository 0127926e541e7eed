"""One redaction policy on every view of a convoy, for every kind of caller: named people
(drivers, persons holding the goods, who confirmed the delivery) only for the carrier, the
recipient and auditors; what arrived, was damaged, short or lost of a line only for the origin,
the recipient, the carrier, auditors and the line's own donor. The raw event feed is for
auditors and services only, and holds the persons sealed as the log does; the workers'
service key still reads everything."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.auth import Role
from tests.shipments.conftest import ShipmentsApi, entry
from tests.shipments.test_live_stream import (
    screen,
    seal,
    served,  # noqa: F401 (a fixture)
)

DRIVERS = {"Karim Benali", "Olena Marchenko", "+33 6 12 34 56 78", "UA-DL-558812"}
HOLDERS = {"Jean Dupont", "Ihor Petrenko"}  # dispatch custody, then the hand-off's person
RECEIVER = "Natalia Koval"
# every name of the story appears in the log; the convoy view shows who holds the goods now
NAMES_IN = {
    "convoy": DRIVERS | {"Ihor Petrenko", RECEIVER},
    "as_of": DRIVERS | {"Ihor Petrenko", RECEIVER},
    "timeline": DRIVERS | HOLDERS | {RECEIVER},
    "stream": DRIVERS | HOLDERS | {RECEIVER},
    "feed": set(),  # the log itself: every person sealed (shared/privacy.py), for all readers
}
LINE_FIGURES = ("delivered", "received", "damaged", "short", "lost", "in_transit")
EVENTS = 9  # planned, 2 loads, dispatch, checkpoint, hand-off, incident, arrival, delivery

CALLERS: dict[str, tuple[str, Role]] = {
    "carrier": ("transports-nord", Role.MEMBER),
    "recipient": ("kharkiv", Role.MEMBER),
    "origin": ("lille", Role.LOGISTICS),
    "another donor": ("chu-lille", Role.MEMBER),
    "auditor": ("audit", Role.AUDITOR),
}
SEES_PEOPLE = {"carrier", "recipient", "auditor"}
SEES_EVERY_LINE = {"carrier", "recipient", "origin", "auditor"}
VIEWS = ["convoy", "as_of", "timeline", "stream", "feed"]


@pytest.fixture
async def delivered(api: ShipmentsApi) -> ShipmentsApi:
    """Convoy c1 Lille -> Kharkiv by Transports du Nord, with antibiotics from the CHU (m-chu)
    and blankets from Leeds Charity Lunch (m-leeds); two blankets stolen on the road, one
    damaged; delivered and confirmed by a named warehouse manager."""
    await api.pledge_line(pledge_id="chu", donor_id="chu-lille", unit="boxes", quantity="100")
    await api.pledge_line(
        pledge_id="lcl", donor_id="leeds-charity-lunch", quantity="300", weight_kg="600"
    )
    await api.plan("c1")
    assert (await api.load(manifest_line_id="m-chu", pledge_id="chu", quantity="100")).is_success
    assert (await api.load(manifest_line_id="m-leeds", pledge_id="lcl", quantity="300")).is_success
    driver = {"organisation_id": "transports-nord", "person": {"name": "Jean Dupont"}}
    response = await api.entries(
        "c1",
        entry("dispatch", "2022-06-07T06:10:00+02:00", "d", custody=driver),
        entry("checkpoint", "2022-06-08T12:00:00+02:00", "k", place="Kraków"),
        entry(
            "custody_handoff",
            "2022-06-09T12:00:00+03:00",
            "h",
            from_party=driver,
            to_party={"organisation_id": "ukrposhta", "person": {"name": "Ihor Petrenko"}},
        ),
        entry(
            "incident",
            "2022-06-09T20:00:00+03:00",
            "t",
            incident="theft",
            description="blankets taken at a night stop",
            lines=[{"manifest_line_id": "m-leeds", "quantity": "2"}],
        ),
        entry("arrival", "2022-06-10T10:00:00+03:00", "a", place="Kharkiv"),
    )
    assert response.status_code == 200, response.text
    confirmed = await api.client.post(
        "/v1/convoys/c1/delivery",
        json={
            "receiver": {"name": RECEIVER, "role": "warehouse manager"},
            "lines": [
                {"manifest_line_id": "m-chu", "received": "99", "damaged": "0", "short": "1"},
                {"manifest_line_id": "m-leeds", "received": "297", "damaged": "1", "short": "0"},
            ],
            "occurred_at": "2022-06-10T12:00:00+03:00",
        },
        headers=await api.as_("kharkiv", Role.MEMBER),
    )
    assert confirmed.status_code == 201, confirmed.text
    await seal(api)
    return api


async def view(api: ShipmentsApi, base: str, name: str, who: tuple[str, Role]) -> Any:
    """What this view gives the caller (None: refused, with the status checked)."""
    headers = await api.as_(*who)
    if name == "stream":
        async with screen(base, headers, after=0, convoy_id="c1") as board:
            return [(await board.next())["data"] for _ in range(EVENTS)]
    path, params = {
        "convoy": ("/v1/convoys/c1", {}),
        "as_of": ("/v1/convoys/c1", {"as_of": "2022-06-11T00:00:00Z"}),
        "timeline": ("/v1/convoys/c1/timeline", {}),
        "feed": ("/v1/events", {"stream_type": "convoy"}),
    }[name]
    response = await api.client.get(path, params=params, headers=headers)
    if name == "feed" and who[1] is not Role.AUDITOR:
        assert response.status_code == 403, response.text
        return None
    assert response.status_code == 200, response.text
    return response.json()


def figures_of(value: Any, manifest_line_id: str) -> list[tuple[str, Any]]:
    """Every figure of how a line fared that `value` shows: delivered, damaged, short, lost or
    in-transit quantities, and an incident's lost quantity of the line."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        if value.get("manifest_line_id") == manifest_line_id:
            found += [(k, value[k]) for k in LINE_FIGURES if value.get(k) is not None]
            if set(value) == {"manifest_line_id", "quantity"}:  # an incident's lost goods
                found.append(("stolen", value["quantity"]))
        for v in value.values():
            found += figures_of(v, manifest_line_id)
    elif isinstance(value, list):
        for v in value:
            found += figures_of(v, manifest_line_id)
    return found


@pytest.mark.parametrize("kind", list(CALLERS))
@pytest.mark.parametrize("name", VIEWS)
async def test_every_view_of_a_convoy_shows_each_caller_what_the_policy_allows(
    delivered: ShipmentsApi,
    served: str,  # noqa: F811
    name: str,
    kind: str,
) -> None:
    seen = await view(delivered, served, name, CALLERS[kind])

    if seen is None:  # the raw feed: auditors and services only
        assert name == "feed" and kind != "auditor"
        return
    text = json.dumps(seen, ensure_ascii=False)
    names = {n for n in NAMES_IN[name] if n in text}
    if name == "feed":
        assert names == set() and text.count('"sealed"') == 6  # 2 drivers, 3 holders, receiver
    elif kind in SEES_PEOPLE:
        assert names == NAMES_IN[name]
    else:
        assert names == set()
        assert "(withheld)" in text
    others = figures_of(seen, "m-leeds")
    if kind in SEES_EVERY_LINE:
        assert ("received", "297") in others and ("damaged", "1") in others
        assert any(k in ("lost", "stolen") for k, _ in others), others
    else:
        assert others == []
        own = figures_of(seen, "m-chu")
        assert ("received", "99") in own and ("short", "1") in own


async def test_the_workers_service_key_reads_the_feed_unredacted(delivered: ShipmentsApi) -> None:
    response = await delivered.client.get(
        "/v1/events",
        params={"event_type": "shipments.delivery-confirmed"},
        headers=await delivered.as_("shipments-worker", Role.SERVICE),
    )

    assert response.status_code == 200, response.text
    [event] = response.json()["events"]
    # as recorded: the receiver sealed, which this service opens for those who may see them
    confirmed_by = event["data"]["confirmed_by"]
    assert RECEIVER not in json.dumps(confirmed_by) and confirmed_by["role"] == "warehouse manager"
    assert (await delivered.reveal(confirmed_by))["name"] == RECEIVER
    assert {x["manifest_line_id"]: x["received"] for x in event["data"]["lines"]} == {
        "m-chu": "99",
        "m-leeds": "297",
    }
