"""Names that show nothing, or marks with nothing to draw on, are refused like the invisible
characters already are: a name needs a visible character of its own (a letter, number,
punctuation or symbol), may not start with a combining mark, and stacks at most MAX_MARKS
marks (none twice) on one character. Real names of many scripts still pass."""

from __future__ import annotations

import pytest

from services.registry import domain
from services.registry.domain.names import MAX_MARKS
from tests.registry.conftest import KHARKIV, RegistryApi, assert_problem

ACUTE = "\u0301"
REFUSED = [
    pytest.param("\u2800", "U+2800", id="braille-blank"),
    pytest.param("\u2800\u2800 \u2800", "U+2800", id="braille-blanks-and-a-space"),
    pytest.param("Khar\u2800kiv", "U+2800", id="braille-blank-inside"),
    pytest.param(ACUTE, "U+0301", id="lone-combining-mark"),
    pytest.param(ACUTE + "Kharkiv", "U+0301", id="starts-with-a-mark"),
    pytest.param("\u0903Kharkiv", "U+0903", id="starts-with-a-spacing-mark"),
    pytest.param("a" + ACUTE * 199, "U+0301", id="199-stacked-marks"),
    pytest.param("Kharkiv" + "\u0300\u0301\u0302\u0303\u0304", "U+0304", id="five-marks"),
    pytest.param("Kha" + ACUTE + ACUTE + "rkiv", "U+0301", id="one-mark-twice"),
    pytest.param("\u20dd", "U+20DD", id="lone-enclosing-circle"),
]
SHOWN = [
    pytest.param("H\u00e0 N\u1ed9i", id="vietnamese-precomposed"),
    pytest.param("Nguye\u0302\u0303n", id="vietnamese-decomposed"),
    pytest.param("\u0928\u0908 \u0926\u093f\u0932\u094d\u0932\u0940", id="devanagari"),
    pytest.param("\u0e01\u0e23\u0e38\u0e07\u0e40\u0e17\u0e1e", id="thai"),
    pytest.param("\u05e2\u05b4\u05d9\u05e8\u05b4\u05d9\u05b8\u05bc\u05d4", id="hebrew-pointed"),
    pytest.param("\u1f08\u03b8\u1fc6\u03bd\u03b1\u03b9", id="greek-polytonic"),
    pytest.param("\u6771\u4eac", id="han"),
    pytest.param("D\u00fcsseldorf", id="german"),
    pytest.param("4 \u00d7 4 Relief", id="symbols"),
]


@pytest.mark.parametrize(("name", "code_point"), REFUSED)
def test_a_name_that_shows_nothing_or_stacks_marks_names_the_character(
    name: str, code_point: str
) -> None:
    hidden = domain.hidden_characters(name)
    assert code_point in [h.split()[0] for h in hidden], hidden
    assert len(hidden) <= 2  # each character once, however often it occurs


@pytest.mark.parametrize("name", SHOWN)
def test_names_of_many_scripts_show_every_character(name: str) -> None:
    assert domain.hidden_characters(name) == []


def test_up_to_max_marks_on_one_character_show() -> None:
    marks = "\u0300\u0301\u0302\u0303\u0304"
    assert domain.hidden_characters("a" + marks[:MAX_MARKS]) == []
    assert domain.hidden_characters("a" + marks[: MAX_MARKS + 1]) != []


@pytest.mark.parametrize(("name", "code_point"), REFUSED)
async def test_an_invisible_name_is_a_422_naming_the_field_and_stores_nothing(
    api: RegistryApi, name: str, code_point: str
) -> None:
    response = await api.client.post(
        "/v1/organisations", json={**KHARKIV, "name": name}, headers=api.as_admin
    )
    problem = assert_problem(response, 422)
    assert [p["name"] for p in problem["invalid_params"]] == ["name"]
    assert code_point in problem["detail"]
    assert len(response.content) < 1000
    assert await api.count() == 0
    assert await api.count("organisations") == 0


@pytest.mark.parametrize(("name", "code_point"), REFUSED)
async def test_an_invisible_alias_or_new_name_changes_nothing(
    api: RegistryApi, name: str, code_point: str
) -> None:
    await api.register(KHARKIV)
    before = await api.count()
    for route, body, field in [
        ("aliases", {"alias": name}, "alias"),
        ("rename", {"name": name}, "name"),
    ]:
        response = await api.client.post(
            f"/v1/organisations/kharkiv/{route}", json=body, headers=api.as_admin
        )
        problem = assert_problem(response, 422)
        assert [p["name"] for p in problem["invalid_params"]] == [field]
        assert code_point in problem["detail"]
    assert await api.count() == before
    got = (await api.client.get("/v1/organisations/kharkiv", headers=api.as_admin)).json()
    assert (got["name"], got["aliases"]) == (KHARKIV["name"], KHARKIV["aliases"])


async def test_a_name_of_another_script_is_registered(api: RegistryApi) -> None:
    name = "Nguye\u0302\u0303n Foundation"
    body = {**KHARKIV, "organisation_id": "nguyen", "name": name, "aliases": []}
    response = await api.client.post("/v1/organisations", json=body, headers=api.as_admin)
    assert response.status_code == 201, response.text
    got = (await api.client.get("/v1/organisations/nguyen", headers=api.as_admin)).json()
    assert got["name"] == name
