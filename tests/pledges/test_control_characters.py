"""Free text in pledges requests (descriptions, notes, reasons, items, references, contacts)
holds no control character but tab and line breaks: a 422 naming the field, nothing stored.
Text with tabs, line breaks and any other character is stored as written."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, assert_problem, generators_pledge

PLEDGE = "/v1/pledges/lille-generators"
# C0 controls (but tab, LF, CR), DEL, C1 controls, a noncharacter
NOT_TEXT = [
    pytest.param("d\u0001\u0002", "U+0001", id="soh-stx"),
    pytest.param("It\u001bem\u0008", "U+001B", id="escape-backspace"),
    pytest.param("a\u000bb\u001f", "U+000B", id="vertical-tab-unit-separator"),
    pytest.param("form\u000cfeed", "U+000C", id="form-feed"),
    pytest.param("del\u007f", "U+007F", id="delete"),
    pytest.param("next\u0085line", "U+0085", id="c1-next-line"),
    pytest.param("csi\u009b31m", "U+009B", id="c1-csi"),
    pytest.param("non\uffffchar", "U+FFFF", id="noncharacter"),
]


async def _post(api: PledgesApi, path: str, body: dict[str, Any], by: str) -> httpx.Response:
    """POST `body` as JSON with every non-ASCII character escaped (a lone surrogate too)."""
    headers = {**await api.as_(by), "Content-Type": "application/json"}
    return await api.client.post(path, content=json.dumps(body), headers=headers)


def _refused(response: Any, field: str, code_point: str) -> None:
    problem = assert_problem(response, 422)
    assert [p["name"] for p in problem["invalid_params"]] == [field], problem
    assert code_point in problem["detail"] and "control character" in problem["detail"]


@pytest.mark.parametrize(("text", "code_point"), NOT_TEXT)
async def test_a_need_with_a_control_character_in_its_text_is_a_422_naming_it(
    api: PledgesApi, text: str, code_point: str
) -> None:
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("description", {**GENERATORS_NEED, "description": text}),
        ("internal_note", {**GENERATORS_NEED, "internal_note": text}),
        ("contact.name", {**GENERATORS_NEED, "contact": {"name": text}}),
        ("contact.phone", {**GENERATORS_NEED, "contact": {"name": "O.", "phone": text}}),
    ]
    for field, body in bodies:
        _refused(await _post(api, "/v1/needs", body, "kharkiv"), field, code_point)
    assert await api.count_events() == 0
    assert await api.fetch("SELECT 1 FROM needs") == []


@pytest.mark.parametrize(("text", "code_point"), NOT_TEXT)
async def test_a_pledge_with_a_control_character_in_its_text_is_a_422_naming_it(
    api: PledgesApi, text: str, code_point: str
) -> None:
    line = generators_pledge()["lines"][0]
    for field, body in [
        ("description", generators_pledge(description=text)),
        ("lines.0.item", generators_pledge(lines=[{**line, "item": text}])),
        ("internal_note", generators_pledge(internal_note=text)),
    ]:
        _refused(await _post(api, "/v1/pledges", body, "lille"), field, code_point)
    assert await api.count_events() == 0
    assert await api.fetch("SELECT 1 FROM pledges") == []


async def test_reasons_notes_and_references_refuse_control_characters_and_change_nothing(
    api: PledgesApi,
) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    money = {
        "line_id": "funds",
        "kind": "money",
        "item": "Second convoy",
        "category": "medicines",
        "amount": 5_000_000,
        "currency": "EUR",
    }
    line = generators_pledge()["lines"][0]
    await api.ok("/v1/pledges", generators_pledge(lines=[line, money], commit=True), by="lille")
    before = await api.count_events()
    changes: list[tuple[str, dict[str, Any], str, str]] = [
        ("/v1/needs/kharkiv-generators/revisions", {"reason": "more\u0007"}, "kharkiv", "reason"),
        ("/v1/needs/kharkiv-generators/close", {"reason": "\u001b[2Jdone"}, "kharkiv", "reason"),
        (
            f"{PLEDGE}/lines/generators/amendments",
            {"quantity": "50", "reason": "fewer\u0000"},
            "lille",
            "reason",
        ),
        (
            f"{PLEDGE}/lines/generators/donor-figures",
            {"quantity": "5", "reported_on": "2023-03-20", "note": "all\u0085delivered"},
            "lille",
            "note",
        ),
        (
            f"{PLEDGE}/lines/funds/receipts",
            {
                "amount": 100,
                "currency": "EUR",
                "received_on": "2023-03-15",
                "reference": "SEPA\u0003",
            },
            "kharkiv",
            "reference",
        ),
    ]
    for path, body, by, field in changes:
        response = await _post(api, path, body, by)
        assert response.status_code == 422, (path, response.text)
        problem = assert_problem(response, 422)
        assert [p["name"] for p in problem["invalid_params"]] == [field], (path, problem)
    assert await api.count_events() == before
    need = await api.get("/v1/needs/kharkiv-generators")
    assert (need["status"], need["revisions"]) == ("covered", [])


async def test_tabs_line_breaks_and_any_other_character_are_text(api: PledgesApi) -> None:
    description = "Generators for\theating points\nand water pumps\r\nŁódź — 50 % ⚡ 😀"
    need = {**GENERATORS_NEED, "description": description}
    await api.ok("/v1/needs", need, by="kharkiv")
    [posted] = await api.events("pledges.need-posted")
    assert posted["description"] == description
    assert (await api.get("/v1/needs/kharkiv-generators"))["description"] == description
