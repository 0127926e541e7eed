"""Tracking views and who sees what: convoys by pledge, donor, recipient, carrier and period;
drivers and named people only for the carrier, the recipient and auditors; as-of views."""

from __future__ import annotations

from typing import Any

import pytest

from shared import pagination
from shared.auth import Role
from tests.shipments.conftest import DRIVERS, ShipmentsApi, assert_problem, entry


@pytest.fixture
async def convoys(api: ShipmentsApi) -> ShipmentsApi:
    """c-june (CHU medicines, June 2022, handed to a named Ukrposhta driver), c-march (Lille
    generators, March 2023, still planned) and c-bucha (Lille generators to Bucha)."""
    await api.pledge_line(pledge_id="chu", donor_id="chu-lille", quantity="100", weight_kg="600")
    await api.pledge_line(pledge_id="gen", quantity="50", weight_kg="4000")
    await api.pledge_line(pledge_id="gen-b", recipient_id="bucha", quantity="10", weight_kg="800")
    await api.plan("c-june")
    await api.load("c-june", manifest_line_id="m1", pledge_id="chu", quantity="100")
    await api.load("c-june", manifest_line_id="m2", pledge_id="gen", quantity="20")
    response = await api.entries(
        "c-june",
        entry("dispatch", "2022-06-07T06:10:00+02:00", "d"),
        entry(
            "custody_handoff",
            "2022-06-09T12:00:00+03:00",
            "h",
            from_party={"organisation_id": "transports-nord"},
            to_party={
                "organisation_id": "ukrposhta",
                "person": {"name": "Ihor P.", "role": "driver"},
            },
        ),
    )
    assert response.status_code == 200, response.text
    await api.plan("c-march", planned_departure="2023-03-01T06:00:00+01:00")
    await api.load("c-march", manifest_line_id="m1", pledge_id="gen", quantity="30")
    await api.plan("c-bucha", destination_id="bucha", carrier_id="lille")
    await api.load("c-bucha", manifest_line_id="m1", pledge_id="gen-b", quantity="10")
    return api


async def ids(api: ShipmentsApi, who: tuple[str, Role], **params: Any) -> list[str]:
    response = await api.client.get("/v1/convoys", params=params, headers=await api.as_(*who))
    assert response.status_code == 200, response.text
    return [c["convoy_id"] for c in response.json()["items"]]


async def test_each_organisation_lists_the_convoys_it_plays_a_part_in(
    convoys: ShipmentsApi,
) -> None:
    api = convoys
    everything = ["c-march", "c-june", "c-bucha"]
    assert await ids(api, ("audit", Role.AUDITOR)) == everything
    assert await ids(api, ("lille", Role.MEMBER)) == everything
    assert await ids(api, ("kharkiv", Role.MEMBER)) == ["c-march", "c-june"]
    assert await ids(api, ("chu-lille", Role.MEMBER)) == ["c-june"]
    assert await ids(api, ("bucha", Role.MEMBER)) == ["c-bucha"]
    assert await ids(api, ("leeds", Role.MEMBER)) == []


async def test_convoys_by_pledge_donor_recipient_carrier_status_and_period(
    convoys: ShipmentsApi,
) -> None:
    api = convoys
    auditor = ("audit", Role.AUDITOR)
    assert await ids(api, auditor, pledge_id="gen") == ["c-march", "c-june"]
    assert await ids(api, auditor, donor="chu-lille") == ["c-june"]
    assert await ids(api, auditor, recipient="bucha") == ["c-bucha"]
    assert await ids(api, auditor, carrier="lille") == ["c-bucha"]
    assert await ids(api, auditor, status="in_transit") == ["c-june"]
    assert await ids(api, auditor, organisation="ukrposhta") == []
    period = {"departs_from": "2023-01-01T00:00:00Z", "departs_to": "2024-01-01T00:00:00Z"}
    assert await ids(api, auditor, **period) == ["c-march"]
    first = await api.client.get(
        "/v1/convoys", params={"limit": 2}, headers=await api.as_(*auditor)
    )
    page = first.json()
    rest = await ids(api, auditor, limit=2, cursor=page["next_cursor"])
    assert [c["convoy_id"] for c in page["items"]] + rest == ["c-march", "c-june", "c-bucha"]
    forged = pagination.encode(["not a date", "c-june"])
    response = await api.client.get(
        "/v1/convoys", params={"cursor": forged}, headers=await api.as_(*auditor)
    )
    assert_problem(response, 422)


async def test_drivers_and_named_people_are_shown_only_to_carrier_recipient_and_auditors(
    convoys: ShipmentsApi,
) -> None:
    api = convoys
    for who in [
        ("transports-nord", Role.MEMBER),
        ("kharkiv", Role.MEMBER),
        ("audit", Role.AUDITOR),
    ]:
        seen = await api.convoy("c-june", who=who)
        assert [
            {k: v for k, v in d.items() if k != "subject_id"} for d in seen["drivers"]
        ] == DRIVERS_AS_SENT
        assert all(d["subject_id"].startswith("shipments-") for d in seen["drivers"])
        assert seen["custody"]["person"]["name"] == "Ihor P."
    for who in [("lille", Role.LOGISTICS), ("chu-lille", Role.MEMBER)]:
        seen = await api.convoy("c-june", who=who)
        assert seen["drivers"] == [
            {"vehicle": "GH-482-LK", "name": "(withheld)"},
            {"vehicle": "FD-117-PR", "name": "(withheld)"},
        ]
        assert seen["custody"] == {
            "organisation_id": "ukrposhta",
            "name": None,
            "person": {"name": "(withheld)", "role": "driver"},
        }
        timeline = await api.client.get("/v1/convoys/c-june/timeline", headers=await api.as_(*who))
        text = timeline.text
        assert "Ihor P." not in text and "Karim" not in text and "+33 6" not in text


# as sent, opened from their sealed form (what was not sent was not sealed)
DRIVERS_AS_SENT = [{**d, "erased": False} for d in DRIVERS]


async def test_an_organisation_with_no_part_in_a_convoy_cannot_read_it(
    convoys: ShipmentsApi,
) -> None:
    api = convoys
    headers = await api.as_("leeds", Role.MEMBER)
    assert_problem(await api.client.get("/v1/convoys/c-june", headers=headers), 403)
    assert_problem(await api.client.get("/v1/convoys/c-june/timeline", headers=headers), 403)
    assert_problem(await api.client.get("/v1/convoys/nope", headers=headers), 404)
    assert_problem(await api.client.get("/v1/convoys/c-june"), 401)


async def test_a_convoy_can_be_read_as_it_stood_at_an_earlier_instant(
    convoys: ShipmentsApi,
) -> None:
    api = convoys
    headers = await api.as_("audit", Role.AUDITOR)
    before_handoff = await api.client.get(
        "/v1/convoys/c-june", params={"as_of": "2022-06-08T00:00:00Z"}, headers=headers
    )
    assert before_handoff.status_code == 200, before_handoff.text
    body = before_handoff.json()
    assert (body["status"], body["custody"]["organisation_id"]) == ("in_transit", "transports-nord")
    assert body["as_of"] == "2022-06-08T00:00:00+00:00"
    before_plan = await api.client.get(
        "/v1/convoys/c-june", params={"as_of": "2020-01-01T00:00:00Z"}, headers=headers
    )
    assert_problem(before_plan, 404)


async def test_a_platform_operator_may_record_for_the_organisations_involved(
    convoys: ShipmentsApi,
) -> None:
    api = convoys
    response = await api.entries(
        "c-june",
        entry("checkpoint", "2022-06-09T18:00:00+03:00", "phoned-in", place="Poltava"),
        who=("twinaid", Role.REGISTRY_ADMIN),
    )
    assert response.status_code == 200, response.text
    assert (await api.convoy("c-june"))["position"]["place"] == "Poltava"
