"""Where an organisation is: its `coordinates` ({lat, lon}, WGS 84 degrees), given at
registration or later by a correction, shown in the organisation, the search and its history;
anything but two numbers in range is a 422 problem naming the field, and nothing is stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.registry import demo
from shared.auth import Role
from tests.registry.conftest import FASTIV, KHARKIV, LILLE, RegistryApi, assert_problem

BUCHA = {
    "organisation_id": "bucha",
    "name": "Bucha",
    "kind": "municipality",
    "country": "UA",
    "region": "Kyiv Oblast",
    "coordinates": {"lat": 50.5436, "lon": 30.2131},
}


async def organisation(api: RegistryApi, organisation_id: str, **params: str) -> dict[str, Any]:
    response = await api.client.get(
        f"/v1/organisations/{organisation_id}", params=params, headers=api.as_admin
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed(api: RegistryApi, q: str) -> dict[str, Any]:
    response = await api.client.get("/v1/organisations", params={"q": q}, headers=api.as_admin)
    assert response.status_code == 200, response.text
    [found] = response.json()["items"]
    assert isinstance(found, dict)
    return found


async def correct(
    api: RegistryApi, organisation_id: str, body: dict[str, Any], headers: dict[str, str]
) -> Any:
    return await api.client.post(
        f"/v1/organisations/{organisation_id}/corrections", json=body, headers=headers
    )


async def test_registered_with_coordinates_they_show_in_the_organisation_and_the_list(
    api: RegistryApi,
) -> None:
    await api.register(BUCHA)
    assert (await organisation(api, "bucha"))["coordinates"] == {"lat": 50.5436, "lon": 30.2131}
    assert (await listed(api, "Bucha"))["coordinates"] == {"lat": 50.5436, "lon": 30.2131}
    [registered] = await api.events("registry.organisation-registered")
    assert registered["coordinates"] == {"lat": 50.5436, "lon": 30.2131}


async def test_registered_without_coordinates_they_are_null(api: RegistryApi) -> None:
    await api.register(FASTIV)
    assert (await organisation(api, "fastiv"))["coordinates"] is None
    assert (await listed(api, "Fastiv"))["coordinates"] is None
    [registered] = await api.events("registry.organisation-registered")
    assert registered["coordinates"] is None


# Sent as raw JSON text: Python's json module writes (and the API's parser reads) NaN and
# Infinity, which are not JSON numbers.
BAD_COORDINATES = [
    ('{"lat": 90.0001, "lon": 30.2}', "coordinates.lat"),
    ('{"lat": -90.5, "lon": 30.2}', "coordinates.lat"),
    ('{"lat": 50.5, "lon": 180.01}', "coordinates.lon"),
    ('{"lat": 50.5, "lon": -181}', "coordinates.lon"),
    ('{"lat": NaN, "lon": 30.2}', "coordinates.lat"),
    ('{"lat": 50.5, "lon": Infinity}', "coordinates.lon"),
    ('{"lat": "50.5", "lon": 30.2}', "coordinates.lat"),
    ('{"lat": 50.5, "lon": "30.2"}', "coordinates.lon"),
    ('{"lat": true, "lon": 30.2}', "coordinates.lat"),
    ('{"lat": null, "lon": 30.2}', "coordinates.lat"),
    ('{"lat": 50.5}', "coordinates.lon"),
    ('{"lat": 50.5, "lon": 30.2, "alt": 120}', "coordinates.alt"),
    ("[50.5, 30.2]", "coordinates"),
    ('"50.5436,30.2131"', "coordinates"),
]


def _named(body: dict[str, Any]) -> set[str]:
    return {p["name"] for p in body.get("invalid_params", [])}


@pytest.mark.parametrize(("coordinates", "field"), BAD_COORDINATES)
async def test_bad_coordinates_at_registration_are_a_422_naming_the_field_and_store_nothing(
    api: RegistryApi, coordinates: str, field: str
) -> None:
    fields = ", ".join(f'"{k}": "{v}"' for k, v in BUCHA.items() if k != "coordinates")
    raw = "{" + fields + ', "coordinates": ' + coordinates + "}"
    response = await api.client.post(
        "/v1/organisations",
        content=raw.encode(),
        headers={**api.as_admin, "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 422)
    assert field in _named(problem), problem
    assert await api.count() == 0
    assert await api.count("organisations") == 0


@pytest.mark.parametrize(("coordinates", "field"), BAD_COORDINATES)
async def test_bad_coordinates_in_a_correction_are_a_422_and_change_nothing(
    api: RegistryApi, coordinates: str, field: str
) -> None:
    await api.register(BUCHA)
    raw = '{"reason": "surveyed", "coordinates": ' + coordinates + "}"
    response = await api.client.post(
        "/v1/organisations/bucha/corrections",
        content=raw.encode(),
        headers={**api.as_admin, "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 422)
    assert field in _named(problem), problem
    assert await api.count() == 1
    assert (await organisation(api, "bucha"))["coordinates"] == BUCHA["coordinates"]


async def test_the_bounds_themselves_and_whole_numbers_are_accepted(api: RegistryApi) -> None:
    await api.register(
        {**KHARKIV, "coordinates": {"lat": 90, "lon": -180}},
        {**LILLE, "coordinates": {"lat": -90.0, "lon": 180.0}},
    )
    assert (await organisation(api, "kharkiv"))["coordinates"] == {"lat": 90, "lon": -180}
    assert (await organisation(api, "lille"))["coordinates"] == {"lat": -90, "lon": 180}


async def test_a_correction_gives_moves_and_clears_the_coordinates_and_history_shows_each(
    api: RegistryApi,
) -> None:
    await api.register(FASTIV)
    before = datetime.now(UTC).isoformat()
    given = await correct(
        api,
        "fastiv",
        {"coordinates": {"lat": 50.076, "lon": 29.9177}, "reason": "town centre"},
        api.as_admin,
    )
    assert given.status_code == 200, given.text
    assert given.json() == {"organisation_id": "fastiv", "version": 2}
    assert (await organisation(api, "fastiv"))["coordinates"] == {"lat": 50.076, "lon": 29.9177}
    assert (await listed(api, "Fastiv"))["coordinates"] == {"lat": 50.076, "lon": 29.9177}

    moved = await correct(
        api,
        "fastiv",
        {"coordinates": {"lat": 50.0801, "lon": 29.9102}, "reason": "the town hall"},
        {**api.as_admin, "If-Match": "2"},
    )
    assert moved.status_code == 200, moved.text
    assert (await organisation(api, "fastiv"))["coordinates"] == {"lat": 50.0801, "lon": 29.9102}
    # as it was before: the registration had none
    assert (await organisation(api, "fastiv", as_of=before))["coordinates"] is None

    cleared = await correct(
        api, "fastiv", {"coordinates": None, "reason": "not known after all"}, api.as_admin
    )
    assert cleared.status_code == 200, cleared.text
    assert (await organisation(api, "fastiv"))["coordinates"] is None

    auditor = await api.as_("cour-des-comptes", Role.AUDITOR)
    history = await api.client.get("/v1/audit/streams/organisation-fastiv", headers=auditor)
    assert history.status_code == 200, history.text
    events = history.json()["events"]
    assert [e["event_type"] for e in events] == [
        "registry.organisation-registered",
        *["registry.organisation-corrected"] * 3,
    ]
    assert [(e["data"]["changes"], e["data"]["previous"]) for e in events[1:]] == [
        ({"coordinates": {"lat": 50.076, "lon": 29.9177}}, {"coordinates": None}),
        (
            {"coordinates": {"lat": 50.0801, "lon": 29.9102}},
            {"coordinates": {"lat": 50.076, "lon": 29.9177}},
        ),
        ({"coordinates": None}, {"coordinates": {"lat": 50.0801, "lon": 29.9102}}),
    ]
    assert [e["data"]["reason"] for e in events[1:]] == [
        "town centre",
        "the town hall",
        "not known after all",
    ]


async def test_the_same_coordinates_again_record_nothing(api: RegistryApi) -> None:
    await api.register(BUCHA)
    again = await correct(
        api, "bucha", {"coordinates": BUCHA["coordinates"], "reason": "checked"}, api.as_admin
    )
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 1
    assert await api.count() == 1


@pytest.mark.parametrize(
    ("organisation_id", "role"),
    [
        ("bucha", Role.MEMBER),  # the organisation itself: not for it to move
        ("kharkiv", Role.MEMBER),
        ("bucha", Role.LOGISTICS),
        ("twinaid", Role.AUDITOR),
    ],
)
async def test_only_registry_administrators_change_coordinates(
    api: RegistryApi, organisation_id: str, role: Role
) -> None:
    await api.register(BUCHA)
    headers = await api.as_(organisation_id, role)
    body = {"coordinates": {"lat": 50.0, "lon": 30.0}, "reason": "moved"}
    assert_problem(await correct(api, "bucha", body, headers), 403)
    assert await api.count() == 1
    assert (await organisation(api, "bucha"))["coordinates"] == BUCHA["coordinates"]


async def test_without_a_key_nothing_changes(api: RegistryApi) -> None:
    await api.register(BUCHA)
    body = {"coordinates": {"lat": 50.0, "lon": 30.0}, "reason": "moved"}
    assert_problem(await correct(api, "bucha", body, {}), 401)
    assert await api.count() == 1


async def test_a_correction_of_an_unknown_organisation_is_a_404(api: RegistryApi) -> None:
    body = {"coordinates": {"lat": 50.0, "lon": 30.0}, "reason": "moved"}
    assert_problem(await correct(api, "atlantis", body, api.as_admin), 404)
    assert await api.count() == 0


def test_every_demo_organisation_has_coordinates_near_its_town() -> None:
    """Every demo organisation is somewhere, 4 decimals; those the articles name where the
    issue gives them; organisations of one town share its centre's."""
    named = {
        "lille": (50.6292, 3.0573),
        "kharkiv": (49.9935, 36.2304),
        "leeds": (53.8008, -1.5491),
        "bucha": (50.5436, 30.2131),
        "bergamo": (45.6983, 9.6773),
        "fastiv": (50.0760, 29.9177),
        "druskininkai": (54.0157, 23.9712),
    }
    centres = {o.organisation_id: o.centre for o in demo.ORGANISATIONS}
    assert all(centre is not None for centre in centres.values()), centres
    for organisation_id, centre in named.items():
        assert centres[organisation_id] == centre, organisation_id
    for o in demo.ORGANISATIONS:
        assert o.centre is not None
        lat, lon = o.centre
        assert -90 <= lat <= 90 and -180 <= lon <= 180, o.organisation_id
        assert round(lat, 4) == lat and round(lon, 4) == lon, o.organisation_id
        assert o.body()["coordinates"] == {"lat": lat, "lon": lon}
    assert centres["leeds-community-foundation"] == centres["leeds"]
    assert centres["fastiv-hospital"] == centres["fastiv"]
    # a town's organisations in its country: a rough box per country the demo names
    boxes = {"UA": (44, 53, 22, 41), "FR": (42, 51.2, -5, 8.3), "GB": (49, 61, -8, 2)}
    for o in demo.ORGANISATIONS:
        if o.country in boxes and o.centre is not None:
            south, north, west, east = boxes[o.country]
            lat, lon = o.centre
            assert south <= lat <= north and west <= lon <= east, o.organisation_id


async def test_a_demo_rerun_gives_coordinates_to_organisations_registered_without_them(
    api: RegistryApi,
) -> None:
    """A dev stack loaded before the demo had coordinates: its organisations are present (409)
    and get them by a correction; one that has coordinates already keeps its own."""
    await api.register(
        {k: v for k, v in BUCHA.items() if k != "coordinates"},
        {**FASTIV, "coordinates": {"lat": 50.1, "lon": 29.9}},
    )
    events = await api.count()
    admin_client = api.client
    admin_client.headers["Authorization"] = f"Bearer {api.admin}"
    try:
        registered, present, located = await demo.load_organisations(admin_client)
    finally:
        del admin_client.headers["Authorization"]
    assert (registered, present, located) == (len(demo.ORGANISATIONS) - 2, 2, 1)
    assert (await organisation(api, "bucha"))["coordinates"] == {"lat": 50.5436, "lon": 30.2131}
    assert (await organisation(api, "fastiv"))["coordinates"] == {"lat": 50.1, "lon": 29.9}
    contacts = sum(1 for o in demo.ORGANISATIONS if o.contacts)  # Kharkiv's: one event
    assert await api.count() == events + len(demo.ORGANISATIONS) - 2 + contacts + 1
    [correction] = await api.events("registry.organisation-corrected")
    assert correction["organisation_id"] == "bucha"
    assert correction["reason"] == demo.LOCATED_REASON
    # and again: nothing left to give
    admin_client.headers["Authorization"] = f"Bearer {api.admin}"
    try:
        assert (await demo.load_organisations(admin_client))[2] == 0
    finally:
        del admin_client.headers["Authorization"]
