"""Names that only look alike are namesakes (UTS #39 skeletons, ICU), and names that hold
characters a reader cannot see are refused: pure rules, the API, the one-statement batch path
and an existing database brought up to date, on real PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from services.registry import domain, handlers
from services.registry.app import create_app
from shared import db as dbmod
from shared.errors import Conflict
from tests.conftest import settings_for
from tests.registry.conftest import KHARKIV, RegistryApi, assert_problem, prepared

CYRILLIC_A = "Kh\u0430rkiv"  # Cyrillic small a
CYRILLIC_KA = "\u041aharkiv"  # Cyrillic capital Ka
MIXED_CAPITALS = "KH\u0410RK\u0406V"  # Cyrillic capital A, Ukrainian capital I
ZERO_WIDTH_SPACE = "Khar\u200bkiv"
RIGHT_TO_LEFT_OVERRIDE = "\u202evikrahK"
HIDDEN = [
    pytest.param(ZERO_WIDTH_SPACE, "U+200B", id="zero-width-space"),
    pytest.param(RIGHT_TO_LEFT_OVERRIDE, "U+202E", id="right-to-left-override"),
    pytest.param("Khark\u200div", "U+200D", id="zero-width-joiner"),
    pytest.param("\ufeffKharkiv", "U+FEFF", id="byte-order-mark"),
    pytest.param("\u2067Kharkiv\u2069", "U+2067", id="right-to-left-isolate"),
    pytest.param("Kharkiv\u202a", "U+202A", id="left-to-right-embedding"),
    pytest.param("Khar\u00adkiv", "U+00AD", id="soft-hyphen"),
    pytest.param("Khar\u3164kiv", "U+3164", id="hangul-filler"),
    pytest.param("Khar\x07kiv", "U+0007", id="bell-control"),
]


# Pure rules


@pytest.mark.parametrize(
    "look_alike",
    [CYRILLIC_A, CYRILLIC_KA, MIXED_CAPITALS, "KHARKIV", "kharkiv", " Kharkiv  "],
)
def test_a_look_alike_shares_a_key_with_the_name(look_alike: str) -> None:
    assert set(domain.name_keys(look_alike)) & set(domain.name_keys("Kharkiv"))


@pytest.mark.parametrize("other", ["Kharkov", "Kherson", "Харків", "Kharkiv Oblast"])
def test_a_different_name_shares_no_key(other: str) -> None:
    assert not set(domain.name_keys(other)) & set(domain.name_keys("Kharkiv"))


@pytest.mark.parametrize(("name", "code_point"), HIDDEN)
def test_hidden_characters_are_named_by_code_point(name: str, code_point: str) -> None:
    assert [h.split()[0] for h in domain.hidden_characters(name)][:1] == [code_point]


@pytest.mark.parametrize("name", ["Kharkiv", "Харків", "Düsseldorf", "Bila Tserkva", "Łódź"])
def test_names_that_show_every_character_have_none_hidden(name: str) -> None:
    assert domain.hidden_characters(name) == []


# Registration over HTTP


@pytest.mark.parametrize(
    "clash",
    [
        pytest.param({"name": CYRILLIC_A}, id="cyrillic-a"),
        pytest.param({"name": CYRILLIC_KA}, id="cyrillic-capital-ka"),
        pytest.param({"name": MIXED_CAPITALS}, id="mixed-script-capitals"),
        pytest.param({"name": "Kharkiv City", "aliases": ["Ch\u0430rkiw"]}, id="alias"),
    ],
)
async def test_a_look_alike_of_a_name_or_alias_is_a_409_naming_the_existing_one(
    api: RegistryApi, clash: dict[str, Any]
) -> None:
    await api.register(KHARKIV)
    before = await api.count()
    response = await api.client.post(
        "/v1/organisations",
        json={**KHARKIV, "organisation_id": "kharkiv-2", "aliases": [], **clash},
        headers=api.as_admin,
    )
    assert assert_problem(response, 409)["existing_organisation_id"] == "kharkiv"
    assert await api.count() == before
    assert await api.count("organisations") == 1


async def test_a_look_alike_is_registered_when_the_request_says_it_is_distinct(
    api: RegistryApi,
) -> None:
    await api.register(KHARKIV)
    response = await api.client.post(
        "/v1/organisations",
        json={**KHARKIV, "organisation_id": "kharkiv-2", "name": CYRILLIC_A, "distinct": True},
        headers=api.as_admin,
    )
    assert response.status_code == 201, response.text


async def test_a_look_alike_in_another_country_is_no_namesake(api: RegistryApi) -> None:
    await api.register(KHARKIV)
    response = await api.client.post(
        "/v1/organisations",
        json={**KHARKIV, "organisation_id": "kharkiv-pl", "name": CYRILLIC_A, "country": "PL"},
        headers=api.as_admin,
    )
    assert response.status_code == 201, response.text


async def test_concurrent_look_alikes_in_one_country_register_only_once(api: RegistryApi) -> None:
    """They lock the same name keys, so none misses another's uncommitted registration."""
    names = ["Kharkiv", CYRILLIC_A, CYRILLIC_KA, MIXED_CAPITALS, "KHARKIV", "Kh\u0430rk\u0456v"]
    responses = await asyncio.gather(
        *(
            api.client.post(
                "/v1/organisations",
                json={**KHARKIV, "organisation_id": f"kharkiv-{i}", "name": name, "aliases": []},
                headers=api.as_admin,
            )
            for i, name in enumerate(names)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409, 409]
    assert await api.count("organisations") == 1


@pytest.mark.parametrize(("name", "code_point"), HIDDEN)
async def test_a_name_with_a_hidden_character_is_a_422_naming_the_field_and_stores_nothing(
    api: RegistryApi, name: str, code_point: str
) -> None:
    response = await api.client.post(
        "/v1/organisations", json={**KHARKIV, "name": name}, headers=api.as_admin
    )
    problem = assert_problem(response, 422)
    assert [p["name"] for p in problem["invalid_params"]] == ["name"]
    assert code_point in problem["detail"]
    assert await api.count() == 0
    assert await api.count("organisations") == 0


async def test_an_alias_with_a_hidden_character_is_a_422_naming_the_alias(
    api: RegistryApi,
) -> None:
    response = await api.client.post(
        "/v1/organisations",
        json={**KHARKIV, "aliases": ["Charkiw", RIGHT_TO_LEFT_OVERRIDE]},
        headers=api.as_admin,
    )
    problem = assert_problem(response, 422)
    assert [p["name"] for p in problem["invalid_params"]] == ["aliases.1"]
    assert await api.count() == 0


# Renames and aliases


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("rename", {"name": ZERO_WIDTH_SPACE}, "name"),
        ("rename", {"name": RIGHT_TO_LEFT_OVERRIDE}, "name"),
        ("aliases", {"alias": ZERO_WIDTH_SPACE}, "alias"),
        ("aliases", {"alias": RIGHT_TO_LEFT_OVERRIDE}, "alias"),
    ],
)
async def test_a_rename_or_alias_with_a_hidden_character_is_a_422_and_stores_nothing(
    api: RegistryApi, route: str, body: dict[str, str], field: str
) -> None:
    await api.register(KHARKIV)
    before = await api.count()
    response = await api.client.post(
        f"/v1/organisations/kharkiv/{route}", json=body, headers=api.as_admin
    )
    assert [p["name"] for p in assert_problem(response, 422)["invalid_params"]] == [field]
    assert await api.count() == before
    got = (await api.client.get("/v1/organisations/kharkiv", headers=api.as_admin)).json()
    assert (got["name"], got["aliases"]) == (KHARKIV["name"], KHARKIV["aliases"])


async def test_look_alikes_of_a_new_name_and_of_an_added_alias_are_namesakes(
    api: RegistryApi,
) -> None:
    await api.register({**KHARKIV, "name": "Kharkov City", "aliases": []})
    renamed = await api.client.post(
        "/v1/organisations/kharkiv/rename", json={"name": "Kharkiv"}, headers=api.as_admin
    )
    assert renamed.status_code == 200, renamed.text
    aliased = await api.client.post(
        "/v1/organisations/kharkiv/aliases", json={"alias": "Charkiw"}, headers=api.as_admin
    )
    assert aliased.status_code == 200, aliased.text
    for name in (CYRILLIC_A, "Ch\u0430rkiw", "Kh\u0430rkov City"):
        response = await api.client.post(
            "/v1/organisations",
            json={**KHARKIV, "organisation_id": "kharkiv-2", "name": name, "aliases": []},
            headers=api.as_admin,
        )
        assert assert_problem(response, 409)["existing_organisation_id"] == "kharkiv"


# The one-statement batch path


async def together(conn: asyncpg.Connection, batch: list[handlers.Batched]) -> list[Any]:
    """The batch in a transaction; a refusal as the namesake it names."""
    async with conn.transaction():
        outcomes = await handlers.register_together(conn, batch)
    return [o.extra["existing_organisation_id"] if isinstance(o, Conflict) else o for o in outcomes]


async def test_a_batch_refuses_mixed_script_look_alikes_of_the_directory_and_of_each_other(
    api: RegistryApi,
) -> None:
    """Odesa is in the directory; the batch brings it back in Cyrillic O, e and a, and brings
    Lviv twice, the second time with a Ukrainian i: both look-alikes write nothing and are
    refused (409) naming the organisation they look like, as the ordinary path refuses them."""
    conn = await asyncpg.connect(api.url)
    try:
        assert await together(conn, [prepared("odesa", "Odesa")]) == [
            {"organisation_id": "odesa", "version": 1}
        ]
        answers = await together(
            conn,
            [
                prepared("odesa-2", "\u041ed\u0435s\u0430"),
                prepared("lviv", "Lviv"),
                prepared("lviv-2", "Lv\u0456v"),
                prepared("bucha", "Bucha", aliases=("\u0412\u0423\u0421\u041d\u0410",)),
            ],
        )
        assert answers == [
            "odesa",
            {"organisation_id": "lviv", "version": 1},
            "lviv",
            {"organisation_id": "bucha", "version": 1},
        ]
        rows = await conn.fetch("SELECT organisation_id FROM organisations ORDER BY 1")
        assert [r["organisation_id"] for r in rows] == ["bucha", "lviv", "odesa"]
        assert await conn.fetchval("SELECT count(*) FROM events") == 3
    finally:
        await conn.close()
    for slug, name, existing in [
        ("odesa-2", "\u041ed\u0435s\u0430", "odesa"),
        ("lviv-2", "Lv\u0456v", "lviv"),
    ]:
        response = await api.client.post(
            "/v1/organisations",
            json={"organisation_id": slug, "name": name, "kind": "municipality", "country": "UA"},
            headers=api.as_admin,
        )
        assert assert_problem(response, 409)["existing_organisation_id"] == existing


async def test_a_database_from_before_the_skeletons_is_brought_up_to_date_at_start_up(
    api: RegistryApi,
) -> None:
    """A directory written before name_skeletons existed (column and index dropped again
    here): the migrations, applied at start-up, add them; the API's start-up computes every
    row's keys; then the batch path and the ordinary path both see Kharkiv's look-alikes."""
    await api.register(KHARKIV)
    conn = await asyncpg.connect(api.url)
    try:
        await conn.execute(
            "ALTER TABLE organisations DROP COLUMN name_skeletons;"
            # as a release before the skeletons: none of today's migrations recorded as applied
            " DELETE FROM _yoyo_migration"
        )
        app = create_app(settings_for(api.url))
        async with app.router.lifespan_context(app):
            filled = await conn.fetchval(
                "SELECT name_skeletons FROM organisations WHERE organisation_id = 'kharkiv'"
            )
            assert filled == sorted(
                {k for n in ("Kharkiv", *KHARKIV["aliases"]) for k in domain.name_keys(n)}
            )
            assert await conn.fetchval(
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'organisations_skeletons'"
            )
            assert await together(
                conn, [prepared("kharkiv-2", MIXED_CAPITALS), prepared("kyiv", "Kyiv")]
            ) == ["kharkiv", {"organisation_id": "kyiv", "version": 1}]
        response = await api.client.post(
            "/v1/organisations",
            json={**KHARKIV, "organisation_id": "kharkiv-3", "name": CYRILLIC_A, "aliases": []},
            headers=api.as_admin,
        )
        assert assert_problem(response, 409)["existing_organisation_id"] == "kharkiv"
    finally:
        await conn.close()


async def test_the_schema_applies_twice_over_an_up_to_date_database(api: RegistryApi) -> None:
    conn = await asyncpg.connect(api.url)
    try:
        for _ in range(2):
            await conn.execute(dbmod.schema_text("services.registry"))
        columns = await conn.fetchval(
            "SELECT count(*) FROM pg_attribute"
            " WHERE attrelid = 'organisations'::regclass AND attname = 'name_skeletons'"
        )
        assert columns == 1
        # registrations that arrive together run the handler: no function repeats its rules
        assert await conn.fetchval("SELECT to_regtype('registry_registration')") is None
    finally:
        await conn.close()
