"""The organisation directory over HTTP on real PostgreSQL: register, search, change, access."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.auth import Role
from tests.registry.conftest import (
    CHU_LILLE,
    DUSSELDORF,
    FASTIV,
    KHARKIV,
    LEEDS,
    LILLE,
    RegistryApi,
    assert_problem,
)

CONTACTS = [
    {"role": "director", "name": "Anne Dupont", "email": "anne.dupont@chu-lille.example"},
    {"role": "international relations", "name": "Marc Leroy", "email": None},
]


def people(contacts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contacts as they were given (a view adds each one's subject id and `erased`)."""
    assert all(c["subject_id"].startswith("registry-") and not c["erased"] for c in contacts)
    return [{k: c[k] for k in ("role", "name", "email")} for c in contacts]


async def search(api: RegistryApi, **params: Any) -> list[str]:
    response = await api.client.get("/v1/organisations", params=params, headers=api.as_admin)
    assert response.status_code == 200, response.text
    return [o["organisation_id"] for o in response.json()["items"]]


async def test_registers_an_organisation_with_aliases_coordinates_parent_and_contacts(
    api: RegistryApi,
) -> None:
    await api.register(LILLE, KHARKIV)
    response = await api.client.post(
        "/v1/organisations",
        json={**CHU_LILLE, "aliases": ["Centre hospitalier universitaire de Lille"]}
        | {"coordinates": {"lat": 50.61, "lon": 3.03}, "contacts": CONTACTS},
        headers=api.as_admin,
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"organisation_id": "chu-lille", "version": 2}
    got = (await api.client.get("/v1/organisations/chu-lille", headers=api.as_admin)).json()
    assert got["name"] == "CHU de Lille"
    assert got["kind"] == "hospital"
    assert (got["country"], got["region"]) == ("FR", "Hauts-de-France")
    assert got["parent_id"] == "lille"
    assert got["aliases"] == ["Centre hospitalier universitaire de Lille"]
    assert got["coordinates"] == {"lat": 50.61, "lon": 3.03}
    assert people(got["contacts"]) == CONTACTS
    kharkiv = (await api.client.get("/v1/organisations/kharkiv", headers=api.as_admin)).json()
    assert kharkiv["aliases"] == ["Charkiw", "Kharkov", "Kharkow"]
    assert kharkiv["coordinates"] == {"lat": 49.9935, "lon": 36.2304}


async def test_an_organisation_without_an_id_gets_one(api: RegistryApi) -> None:
    body = {k: v for k, v in LEEDS.items() if k != "organisation_id"}
    response = await api.client.post("/v1/organisations", json=body, headers=api.as_admin)
    assert response.status_code == 201, response.text
    new_id = response.json()["organisation_id"]
    got = await api.client.get(f"/v1/organisations/{new_id}", headers=api.as_admin)
    assert got.json()["name"] == "Leeds"


async def test_an_unknown_organisation_is_a_404_problem(api: RegistryApi) -> None:
    assert_problem(await api.client.get("/v1/organisations/atlantis", headers=api.as_admin), 404)


async def test_contacts_are_shown_to_the_organisation_itself_and_to_registry_admins(
    api: RegistryApi,
) -> None:
    await api.register(LILLE, {**CHU_LILLE, "contacts": CONTACTS})
    for headers in (api.as_admin, await api.as_("chu-lille", Role.MEMBER)):
        got = await api.client.get("/v1/organisations/chu-lille", headers=headers)
        assert people(got.json()["contacts"]) == CONTACTS


@pytest.mark.parametrize(
    ("organisation", "role"),
    [
        ("lille", Role.MEMBER),
        ("kharkiv", Role.MEMBER),
        ("twinaid", Role.AUDITOR),
        ("lille", Role.LOGISTICS),
    ],
)
async def test_contacts_are_hidden_from_everyone_else(
    api: RegistryApi, organisation: str, role: Role
) -> None:
    await api.register(LILLE, {**CHU_LILLE, "contacts": CONTACTS})
    headers = await api.as_(organisation, role)
    got = await api.client.get("/v1/organisations/chu-lille", headers=headers)
    assert got.status_code == 200
    assert got.json()["name"] == "CHU de Lille"
    assert "contacts" not in got.json()
    assert "anne.dupont" not in got.text
    as_of = datetime.now(UTC).isoformat()
    past = await api.client.get(
        "/v1/organisations/chu-lille", params={"as_of": as_of}, headers=headers
    )
    assert past.status_code == 200, past.text
    assert "anne.dupont" not in past.text
    found = await api.client.get("/v1/organisations", params={"q": "CHU"}, headers=headers)
    assert [o["organisation_id"] for o in found.json()["items"]] == ["chu-lille"]
    assert "anne.dupont" not in found.text


async def test_search_results_never_carry_contacts_even_for_admins(api: RegistryApi) -> None:
    await api.register(LILLE, {**CHU_LILLE, "contacts": CONTACTS})
    found = await api.client.get("/v1/organisations", params={"q": "CHU"}, headers=api.as_admin)
    assert "anne.dupont" not in found.text


async def test_a_member_replaces_its_own_organisations_contacts(api: RegistryApi) -> None:
    await api.register(LILLE)
    headers = await api.as_("lille", Role.MEMBER)
    response = await api.client.put(
        "/v1/organisations/lille/contacts", json={"contacts": CONTACTS[:1]}, headers=headers
    )
    assert response.status_code == 200, response.text
    got = await api.client.get("/v1/organisations/lille", headers=headers)
    assert people(got.json()["contacts"]) == CONTACTS[:1]


async def test_a_member_may_not_change_another_organisations_contacts(api: RegistryApi) -> None:
    await api.register(LILLE, KHARKIV)
    before = await api.count()
    response = await api.client.put(
        "/v1/organisations/kharkiv/contacts",
        json={"contacts": CONTACTS},
        headers=await api.as_("lille", Role.MEMBER),
    )
    assert "lille" in assert_problem(response, 403)["detail"]
    assert await api.count() == before


@pytest.mark.parametrize("role", [Role.LOGISTICS, Role.AUDITOR])
async def test_other_roles_of_the_organisation_may_not_change_its_contacts(
    api: RegistryApi, role: Role
) -> None:
    await api.register(LILLE)
    before = await api.count()
    response = await api.client.put(
        "/v1/organisations/lille/contacts",
        json={"contacts": CONTACTS},
        headers=await api.as_("lille", role),
    )
    assert_problem(response, 403)
    assert await api.count() == before


# Search


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("Kharkiv", ["kharkiv"]),
        ("charkiw", ["kharkiv"]),
        ("KHARKOV", ["kharkiv"]),
        ("Dusseldorf", ["dusseldorf"]),
        ("düsseldorf", ["dusseldorf"]),
        ("DÜSSELDORF", ["dusseldorf"]),
        ("lille", ["chu-lille", "lille"]),
        ("de lille", ["chu-lille"]),
        ("100%", []),
        ("_", []),
    ],
)
async def test_search_by_name_or_alias_ignores_case_and_accents(
    api: RegistryApi, q: str, found: list[str]
) -> None:
    await api.register(LILLE, CHU_LILLE, KHARKIV, DUSSELDORF, LEEDS)
    assert await search(api, q=q) == found


async def test_search_by_kind_country_and_region(api: RegistryApi) -> None:
    await api.register(LILLE, CHU_LILLE, KHARKIV, DUSSELDORF, LEEDS, FASTIV)
    assert await search(api, kind="hospital") == ["chu-lille"]
    assert await search(api, country="UA") == ["fastiv", "kharkiv"]
    assert await search(api, region="kyiv oblast") == ["fastiv"]
    assert await search(api, country="FR", kind="municipality") == ["lille"]
    assert await search(api, q="lille", kind="hospital") == ["chu-lille"]
    assert await search(api, country="IT") == []
    assert len(await search(api)) == 6


async def test_cursor_pagination_walks_every_result_exactly_once_in_name_order(
    api: RegistryApi,
) -> None:
    await api.register(LILLE, CHU_LILLE, KHARKIV, DUSSELDORF, LEEDS, FASTIV)
    # two organisations with one name: the id breaks the tie, so neither is skipped
    await api.register(
        {**LEEDS, "organisation_id": "leeds-ngo", "kind": "ngo", "distinct": True},
    )
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await api.client.get("/v1/organisations", params=params, headers=api.as_admin)
        body = response.json()
        assert len(body["items"]) <= 2
        seen += [o["organisation_id"] for o in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert seen == [
        "chu-lille",
        "dusseldorf",
        "fastiv",
        "kharkiv",
        "leeds",
        "leeds-ngo",
        "lille",
    ]


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("not a cursor", id="not-base64-json"),
        pytest.param("%%%", id="punctuation"),
        pytest.param(_cursor({"name": "kharkiv"}), id="not-a-list"),
        pytest.param(_cursor(["kharkiv"]), id="one-key-short"),
        pytest.param(_cursor(["kharkiv", "kharkiv", "x"]), id="one-key-too-many"),
        pytest.param(_cursor([1, 2]), id="numbers-for-text-keys"),
        pytest.param(_cursor([["kharkiv"], {"id": 1}]), id="containers-for-text-keys"),
    ],
)
async def test_an_invalid_cursor_is_a_422_problem(api: RegistryApi, cursor: str) -> None:
    await api.register(LILLE, KHARKIV)
    response = await api.client.get(
        "/v1/organisations", params={"cursor": cursor}, headers=api.as_admin
    )
    assert_problem(response, 422)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"limit": 0}, id="limit-0"),
        pytest.param({"limit": 201}, id="limit-201"),
        pytest.param({"country": "fr"}, id="country-lowercase"),
        pytest.param({"kind": "castle"}, id="unknown-kind"),
        pytest.param({"q": ""}, id="empty-query"),
        pytest.param({"q": "K" * 201}, id="query-201-chars"),
        pytest.param({"q": "Khar\u0000kiv"}, id="query-with-nul"),
    ],
)
async def test_invalid_search_parameters_are_a_422_problem(
    api: RegistryApi, params: dict[str, Any]
) -> None:
    response = await api.client.get("/v1/organisations", params=params, headers=api.as_admin)
    assert_problem(response, 422)


# Namesakes


async def test_a_namesake_in_the_same_country_is_a_409_naming_the_existing_one(
    api: RegistryApi,
) -> None:
    await api.register(KHARKIV)
    before = await api.count()
    for clash in ({"name": "KHARKIV"}, {"name": "Kharkiv Region", "aliases": ["Charkiw"]}):
        response = await api.client.post(
            "/v1/organisations",
            json={**KHARKIV, "organisation_id": "kharkiv-2", "aliases": [], **clash},
            headers=api.as_admin,
        )
        body = assert_problem(response, 409)
        assert body["existing_organisation_id"] == "kharkiv"
        assert "kharkiv" in body["detail"]
    assert await api.count() == before
    assert_problem(await api.client.get("/v1/organisations/kharkiv-2", headers=api.as_admin), 404)


async def test_a_namesake_is_registered_when_the_request_says_it_is_distinct(
    api: RegistryApi,
) -> None:
    await api.register(KHARKIV)
    response = await api.client.post(
        "/v1/organisations",
        json={**KHARKIV, "organisation_id": "kharkiv-ngo", "kind": "ngo", "distinct": True},
        headers=api.as_admin,
    )
    assert response.status_code == 201, response.text
    assert await search(api, q="Charkiw") == ["kharkiv", "kharkiv-ngo"]


async def test_the_same_name_in_another_country_is_no_namesake(api: RegistryApi) -> None:
    await api.register(LILLE)
    response = await api.client.post(
        "/v1/organisations",
        json={**LILLE, "organisation_id": "lille-be", "country": "BE", "region": None},
        headers=api.as_admin,
    )
    assert response.status_code == 201, response.text


async def test_concurrent_namesakes_in_one_country_register_only_once(api: RegistryApi) -> None:
    responses = await asyncio.gather(
        *(
            api.client.post(
                "/v1/organisations",
                json={**LEEDS, "organisation_id": f"leeds-{i}"},
                headers=api.as_admin,
            )
            for i in range(6)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409, 409]
    assert await api.count("organisations") == 1


# Renames, aliases and corrections


async def test_a_renamed_organisation_is_still_found_by_its_old_name(api: RegistryApi) -> None:
    await api.register(
        {"organisation_id": "dnipro", "name": "Dnipropetrovsk", "kind": "municipality"}
        | {"country": "UA"}
    )
    response = await api.client.post(
        "/v1/organisations/dnipro/rename",
        json={"name": "Dnipro", "reason": "renamed in 2016"},
        headers=api.as_admin,
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    got = (await api.client.get("/v1/organisations/dnipro", headers=api.as_admin)).json()
    assert got["name"] == "Dnipro"
    assert got["aliases"] == ["Dnipropetrovsk"]
    assert await search(api, q="petrovsk") == ["dnipro"]
    [renamed] = await api.events("registry.organisation-renamed")
    assert (renamed["previous_name"], renamed["reason"]) == ("Dnipropetrovsk", "renamed in 2016")
    namesake = await api.client.post(
        "/v1/organisations",
        json={"organisation_id": "dnipro-2", "name": "DNIPROPETROVSK", "kind": "ngo"}
        | {"country": "UA"},
        headers=api.as_admin,
    )
    assert assert_problem(namesake, 409)["existing_organisation_id"] == "dnipro"


async def test_state_as_of_an_instant_before_a_rename_shows_the_old_name(
    api: RegistryApi,
) -> None:
    await api.register(KHARKIV)
    await asyncio.sleep(0.01)
    between = datetime.now(UTC)
    await asyncio.sleep(0.01)
    response = await api.client.post(
        "/v1/organisations/kharkiv/rename", json={"name": "Kharkiv City"}, headers=api.as_admin
    )
    assert response.status_code == 200, response.text
    past = await api.client.get(
        "/v1/organisations/kharkiv", params={"as_of": between.isoformat()}, headers=api.as_admin
    )
    assert past.status_code == 200, past.text
    assert past.json()["name"] == "Kharkiv"
    assert past.json()["version"] == 1
    now = await api.client.get(
        "/v1/organisations/kharkiv",
        params={"as_of": datetime.now(UTC).isoformat()},
        headers=api.as_admin,
    )
    assert now.json()["name"] == "Kharkiv City"
    before_it_existed = await api.client.get(
        "/v1/organisations/kharkiv",
        params={"as_of": "1970-01-01T00:00:00Z"},
        headers=api.as_admin,
    )
    assert_problem(before_it_existed, 404)
    naive = await api.client.get(
        "/v1/organisations/kharkiv", params={"as_of": "2024-01-01T00:00:00"}, headers=api.as_admin
    )
    assert_problem(naive, 422)


async def test_an_alias_is_recorded_once_and_is_searchable(api: RegistryApi) -> None:
    await api.register(KHARKIV)
    added = await api.client.post(
        "/v1/organisations/kharkiv/aliases", json={"alias": "Харків"}, headers=api.as_admin
    )
    assert added.json()["version"] == 2
    again = await api.client.post(
        "/v1/organisations/kharkiv/aliases", json={"alias": "charkiw"}, headers=api.as_admin
    )
    assert again.status_code == 200
    assert again.json()["version"] == 2, "a known spelling changes nothing"
    assert await api.count() == 2
    assert await search(api, q="харків") == ["kharkiv"]


async def test_a_correction_with_a_reason_changes_the_fields_and_keeps_the_previous_values(
    api: RegistryApi,
) -> None:
    await api.register(LILLE, {**CHU_LILLE, "parent_id": None, "region": "Nord"})
    response = await api.client.post(
        "/v1/organisations/chu-lille/corrections",
        json={
            "region": "Hauts-de-France",
            "parent_id": "lille",
            "coordinates": {"lat": 50.61, "lon": 3.03},
            "reason": "the CHU belongs to Lille's area",
        },
        headers=api.as_admin,
    )
    assert response.status_code == 200, response.text
    got = (await api.client.get("/v1/organisations/chu-lille", headers=api.as_admin)).json()
    assert (got["region"], got["parent_id"]) == ("Hauts-de-France", "lille")
    assert got["coordinates"] == {"lat": 50.61, "lon": 3.03}
    assert await search(api, region="Hauts-de-France", kind="hospital") == ["chu-lille"]
    [event] = await api.events("registry.organisation-corrected")
    assert event["reason"] == "the CHU belongs to Lille's area"
    assert event["previous"] == {
        "region": "Nord",
        "parent_id": None,
        "coordinates": None,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"region": "Nord"},
        {"region": "Nord", "reason": ""},
        {"name": "Rijsel", "reason": "r"},
        {"country": "XX", "reason": "r"},
        {"country": "fr", "reason": "r"},
        {"parent_id": "atlantis", "reason": "r"},
        {"parent_id": "lille", "reason": "r"},
        {"kind": "castle", "reason": "r"},
        {"coordinates": {"lat": 91, "lon": 0}, "reason": "r"},
    ],
)
async def test_a_bad_correction_is_a_422_problem_and_stores_nothing(
    api: RegistryApi, body: dict[str, Any]
) -> None:
    await api.register(LILLE)
    before = await api.count()
    response = await api.client.post(
        "/v1/organisations/lille/corrections", json=body, headers=api.as_admin
    )
    assert_problem(response, 422)
    assert await api.count() == before


async def test_a_change_with_a_stale_if_match_is_a_412_problem(api: RegistryApi) -> None:
    await api.register(KHARKIV)
    renamed = await api.client.post(
        "/v1/organisations/kharkiv/rename",
        json={"name": "Kharkiv City"},
        headers={**api.as_admin, "If-Match": "1"},
    )
    assert renamed.status_code == 200, renamed.text
    before = await api.count()
    for path, body in [
        ("rename", {"name": "Kharkiv Town"}),
        ("aliases", {"alias": "Kharkow"}),
        ("corrections", {"region": "Kharkivska", "reason": "r"}),
    ]:
        response = await api.client.post(
            f"/v1/organisations/kharkiv/{path}",
            json=body,
            headers={**api.as_admin, "If-Match": "1"},
        )
        assert assert_problem(response, 412)["current_version"] == 2
    stale_contacts = await api.client.put(
        "/v1/organisations/kharkiv/contacts",
        json={"contacts": CONTACTS},
        headers={**api.as_admin, "If-Match": "1"},
    )
    assert_problem(stale_contacts, 412)
    assert await api.count() == before


async def test_changing_an_unknown_organisation_is_a_404_problem(api: RegistryApi) -> None:
    response = await api.client.post(
        "/v1/organisations/atlantis/rename", json={"name": "Poseidonia"}, headers=api.as_admin
    )
    assert_problem(response, 404)
    assert await api.count() == 0


# Bad input when registering


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"parent_id": "atlantis"}, "parent_id", id="unknown-parent"),
        pytest.param({"parent_id": "chu-lille"}, "parent", id="its-own-parent"),
        pytest.param({"country": "XX"}, "country", id="country-XX"),
        pytest.param({"country": "fr"}, "country", id="country-lowercase"),
        pytest.param({"country": "FRA"}, "country", id="country-alpha-3"),
        pytest.param({"name": "L" * 201}, "name", id="name-201-chars"),
        pytest.param({"name": "   "}, "name", id="name-blank"),
        pytest.param({"aliases": ["L" * 201]}, "aliases", id="alias-201-chars"),
        pytest.param({"region": "R" * 201}, "region", id="region-201-chars"),
        pytest.param({"organisation_id": "Lille City"}, "organisation_id", id="id-not-a-slug"),
        pytest.param({"population": 236_000}, "population", id="unknown-field"),
        pytest.param(
            {"contacts": [{"role": "mayor", "name": "M", "email": "not-an-email"}]},
            "email",
            id="email-without-at",
        ),
        pytest.param(
            {"contacts": [{"role": "mayor", "name": "M", "email": "a@b"}]},
            "email",
            id="email-without-domain-dot",
        ),
        pytest.param(
            {"contacts": [{"role": "mayor", "name": "M", "phone": "+33"}]},
            "phone",
            id="unknown-contact-field",
        ),
        pytest.param({"contacts": [{"role": "mayor"}]}, "name", id="contact-without-name"),
        pytest.param({"coordinates": {"lat": 90.5, "lon": 3.0}}, "lat", id="latitude-over-90"),
        pytest.param(
            {"coordinates": {"lat": 50.6, "lon": -181}}, "lon", id="longitude-under-minus-180"
        ),
        pytest.param({"coordinates": {"lat": 50.6}}, "lon", id="coordinates-without-longitude"),
        pytest.param({"kind": "castle"}, "kind", id="unknown-kind"),
        pytest.param({"name": "Lil\u0000le"}, "name", id="name-with-nul"),
    ],
)
async def test_bad_registration_input_is_a_4xx_problem_naming_the_field_and_stores_nothing(
    api: RegistryApi, change: dict[str, Any], field: str
) -> None:
    body = {**CHU_LILLE, "parent_id": None, **change}
    response = await api.client.post("/v1/organisations", json=body, headers=api.as_admin)
    assert 400 <= response.status_code < 500, response.text
    problem = assert_problem(response, response.status_code)
    assert field in json.dumps(problem.get("invalid_params", "")) + problem["detail"]
    assert await api.count() == 0
    assert await api.count("organisations") == 0


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
async def test_coordinates_that_are_not_finite_numbers_are_a_422_problem(
    api: RegistryApi, number: str
) -> None:
    body = json.dumps({**LEEDS, "coordinates": {"lat": 0.0, "lon": 0.0}})
    raw = body.replace('"lat": 0.0', f'"lat": {number}')
    response = await api.client.post(
        "/v1/organisations",
        content=raw.encode(),
        headers={**api.as_admin, "Content-Type": "application/json"},
    )
    assert "lat" in json.dumps(assert_problem(response, 422)["invalid_params"])
    assert await api.count() == 0


async def test_a_name_of_exactly_200_characters_is_accepted(api: RegistryApi) -> None:
    response = await api.client.post(
        "/v1/organisations", json={**LEEDS, "name": "L" * 200}, headers=api.as_admin
    )
    assert response.status_code == 201, response.text


# Access


@pytest.mark.parametrize("role", [Role.MEMBER, Role.LOGISTICS, Role.AUDITOR, Role.SERVICE])
async def test_only_registry_admins_register_rename_alias_and_correct(
    api: RegistryApi, role: Role
) -> None:
    await api.register(LILLE)
    before = await api.count()
    # even the organisation's own key may not rewrite the directory entry
    headers = await api.as_("lille", role)
    attempts = [
        ("/v1/organisations", {**KHARKIV}),
        ("/v1/organisations/lille/rename", {"name": "Rijsel"}),
        ("/v1/organisations/lille/aliases", {"alias": "Rijsel"}),
        ("/v1/organisations/lille/corrections", {"region": "Nord", "reason": "r"}),
    ]
    for path, body in attempts:
        response = await api.client.post(path, json=body, headers=headers)
        assert "registry_admin" in assert_problem(response, 403)["detail"], path
    assert await api.count() == before


async def test_every_key_reads_the_directory(api: RegistryApi) -> None:
    await api.register(LILLE)
    for role in Role:
        headers = await api.as_("kharkiv", role)
        assert (await api.client.get("/v1/organisations/lille", headers=headers)).status_code == 200
        assert (await api.client.get("/v1/organisations", headers=headers)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/organisations", None),
        ("GET", "/v1/organisations/lille", None),
        ("POST", "/v1/organisations", KHARKIV),
        ("POST", "/v1/organisations/lille/rename", {"name": "Rijsel"}),
        ("POST", "/v1/organisations/lille/aliases", {"alias": "Rijsel"}),
        ("POST", "/v1/organisations/lille/corrections", {"region": "Nord", "reason": "r"}),
        ("PUT", "/v1/organisations/lille/contacts", {"contacts": []}),
    ],
)
async def test_without_a_key_every_route_is_401(
    api: RegistryApi, method: str, path: str, body: dict[str, Any] | None
) -> None:
    await api.register(LILLE)
    before = await api.count()
    response = await api.client.request(method, path, json=body)
    assert_problem(response, 401)
    assert await api.count() == before
