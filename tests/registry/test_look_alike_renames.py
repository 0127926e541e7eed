"""The look-alike guard on renames and aliases, over HTTP on real PostgreSQL: a new name or an
alias that looks like another organisation's name in the same country is a 409 naming it
(nothing recorded, the search unchanged) unless `distinct` is sent, as a registration; a name
close to the organisation's own names stays allowed; another country is no namesake."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.registry.conftest import FASTIV, KHARKIV, RegistryApi, assert_problem

CYRILLIC_A = "Kh\u0430rkiv"  # Cyrillic small a
BUCHA = {"organisation_id": "bucha", "name": "Bucha", "kind": "municipality", "country": "UA"}


async def organisation(api: RegistryApi, slug: str) -> dict[str, Any]:
    response = await api.client.get(f"/v1/organisations/{slug}", headers=api.as_admin)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def found_by(api: RegistryApi, q: str) -> list[str]:
    response = await api.client.get("/v1/organisations", params={"q": q}, headers=api.as_admin)
    return sorted(o["organisation_id"] for o in response.json()["items"])


CLASHES = [
    pytest.param("bucha", "rename", {"name": CYRILLIC_A}, id="rename-cyrillic-a"),
    pytest.param("bucha", "rename", {"name": "KHARKIV"}, id="rename-same-folded"),
    pytest.param("bucha", "rename", {"name": "Ch\u0430rkiw"}, id="rename-like-an-alias"),
    pytest.param("fastiv", "aliases", {"alias": "Kharkiv"}, id="alias-the-same-name"),
    pytest.param("fastiv", "aliases", {"alias": CYRILLIC_A}, id="alias-cyrillic-a"),
    pytest.param("fastiv", "aliases", {"alias": "Kh\u0430rkov"}, id="alias-like-an-alias"),
]


@pytest.mark.parametrize(("slug", "route", "body"), CLASHES)
async def test_a_look_alike_new_name_or_alias_is_a_409_naming_it_and_records_nothing(
    api: RegistryApi, slug: str, route: str, body: dict[str, str]
) -> None:
    await api.register(KHARKIV, BUCHA, FASTIV)
    before = (await api.count(), await organisation(api, slug), await found_by(api, "Kharkiv"))
    response = await api.client.post(
        f"/v1/organisations/{slug}/{route}", json=body, headers=api.as_admin
    )
    problem = assert_problem(response, 409)
    assert problem["existing_organisation_id"] == "kharkiv"
    assert '"distinct": true' in problem["detail"]
    after = (await api.count(), await organisation(api, slug), await found_by(api, "Kharkiv"))
    assert after == before
    assert before[2] == ["kharkiv"]


@pytest.mark.parametrize(("slug", "route", "body"), CLASHES)
async def test_a_look_alike_new_name_or_alias_is_recorded_when_said_distinct(
    api: RegistryApi, slug: str, route: str, body: dict[str, str]
) -> None:
    await api.register(KHARKIV, BUCHA, FASTIV)
    response = await api.client.post(
        f"/v1/organisations/{slug}/{route}", json={**body, "distinct": True}, headers=api.as_admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    got = await organisation(api, slug)
    (name,) = body.values()
    assert name in (got["name"], *got["aliases"])


async def test_an_alias_that_makes_a_search_find_the_wrong_town_is_refused(
    api: RegistryApi,
) -> None:
    """The hunter's case: without the guard a search for Kharkiv also found Fastiv."""
    await api.register(KHARKIV, FASTIV)
    response = await api.client.post(
        "/v1/organisations/fastiv/aliases", json={"alias": "Kharkiv"}, headers=api.as_admin
    )
    assert_problem(response, 409)
    assert await found_by(api, "Kharkiv") == ["kharkiv"]
    assert (await organisation(api, "fastiv"))["aliases"] == []


@pytest.mark.parametrize(
    ("route", "body"),
    [
        pytest.param("rename", {"name": CYRILLIC_A}, id="rename-to-a-look-alike-of-its-name"),
        pytest.param("rename", {"name": "Kharkov"}, id="rename-to-its-own-alias"),
        pytest.param("rename", {"name": "Kh\u0430rkow"}, id="rename-to-a-look-alike-alias"),
        pytest.param("aliases", {"alias": CYRILLIC_A}, id="alias-like-its-own-name"),
        pytest.param("aliases", {"alias": "Ch\u0430rkiw"}, id="alias-like-its-own-alias"),
    ],
)
async def test_a_name_close_to_the_organisation_s_own_names_is_no_namesake(
    api: RegistryApi, route: str, body: dict[str, str]
) -> None:
    await api.register(KHARKIV)
    response = await api.client.post(
        f"/v1/organisations/kharkiv/{route}", json=body, headers=api.as_admin
    )
    assert response.status_code == 200, response.text


async def test_renaming_to_the_name_it_has_records_nothing_even_beside_a_namesake(
    api: RegistryApi,
) -> None:
    """A look-alike registered as distinct does not stop a no-op rename or alias."""
    await api.register(KHARKIV)
    distinct = {**KHARKIV, "organisation_id": "kharkiv-2", "name": CYRILLIC_A, "aliases": []}
    await api.register({**distinct, "distinct": True})
    before = await api.count()
    for route, body in (("rename", {"name": CYRILLIC_A}), ("aliases", {"alias": CYRILLIC_A})):
        response = await api.client.post(
            f"/v1/organisations/kharkiv-2/{route}", json=body, headers=api.as_admin
        )
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 1
    assert await api.count() == before


async def test_a_look_alike_in_another_country_is_no_namesake_of_a_rename_or_alias(
    api: RegistryApi,
) -> None:
    await api.register(KHARKIV, {**BUCHA, "country": "PL"})
    renamed = await api.client.post(
        "/v1/organisations/bucha/rename", json={"name": CYRILLIC_A}, headers=api.as_admin
    )
    assert renamed.status_code == 200, renamed.text
    aliased = await api.client.post(
        "/v1/organisations/bucha/aliases", json={"alias": "Kharkov"}, headers=api.as_admin
    )
    assert aliased.status_code == 200, aliased.text


async def test_a_registration_and_a_rename_to_look_alikes_at_once_are_recorded_once(
    api: RegistryApi,
) -> None:
    """The rename takes the name's locks as a registration does: whichever comes second sees
    the first and is refused."""
    for i in range(4):
        await api.register({**BUCHA, "organisation_id": f"bucha-{i}", "name": f"Bucha {i}"})
        registered, renamed = await asyncio.gather(
            api.client.post(
                "/v1/organisations",
                json={**BUCHA, "organisation_id": f"town-{i}", "name": f"Town {i}"},
                headers=api.as_admin,
            ),
            api.client.post(
                f"/v1/organisations/bucha-{i}/rename",
                json={"name": f"T\u043ewn {i}"},  # Cyrillic o
                headers=api.as_admin,
            ),
        )
        outcome = (registered.status_code, renamed.status_code)
        assert outcome in ((201, 409), (409, 200)), (registered.text, renamed.text)
        town = await api.client.get(f"/v1/organisations/town-{i}", headers=api.as_admin)
        bucha = await organisation(api, f"bucha-{i}")
        if outcome == (201, 409):
            assert town.status_code == 200 and bucha["name"] == f"Bucha {i}"
        else:
            assert town.status_code == 404 and bucha["name"] == f"T\u043ewn {i}"


async def test_a_registration_is_refused_beside_a_renamed_look_alike(api: RegistryApi) -> None:
    await api.register(BUCHA)
    renamed = await api.client.post(
        "/v1/organisations/bucha/rename", json={"name": CYRILLIC_A}, headers=api.as_admin
    )
    assert renamed.status_code == 200, renamed.text
    response = await api.client.post(
        "/v1/organisations", json={**KHARKIV, "aliases": []}, headers=api.as_admin
    )
    assert assert_problem(response, 409)["existing_organisation_id"] == "bucha"


def test_the_rename_and_alias_bodies_document_distinct(api: RegistryApi) -> None:
    schemas = api.app.openapi()["components"]["schemas"]
    for model in ("RenameIn", "AliasIn"):
        distinct = schemas[model]["properties"]["distinct"]
        assert distinct["type"] == "boolean" and distinct["default"] is False
        assert "namesake" in distinct["description"]
