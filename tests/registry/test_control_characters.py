"""Free text in registry requests (contacts, regions, reasons, evidence, programmes, key labels,
webhook descriptions) holds no control character but tab and line breaks: a 422 naming the
field, nothing stored (shared/free_text.py, as pledges and shipments)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.auth import Role
from tests.registry.conftest import KHARKIV, LILLE, RegistryApi, assert_problem

NOT_TEXT = [
    pytest.param("a\u0001b", "U+0001", id="soh"),
    pytest.param("\u001b[31mred", "U+001B", id="escape"),
    pytest.param("del\u007fete", "U+007F", id="delete"),
    pytest.param("c1\u0085nel", "U+0085", id="c1-next-line"),
]


def _refused(response: httpx.Response, field: str, code_point: str) -> None:
    problem = assert_problem(response, 422)
    assert [p["name"] for p in problem["invalid_params"]] == [field], problem
    assert code_point in problem["detail"] and "control character" in problem["detail"]


@pytest.mark.parametrize(("text", "code_point"), NOT_TEXT)
async def test_registry_free_text_with_a_control_character_is_a_422_naming_it(
    api: RegistryApi, text: str, code_point: str
) -> None:
    await api.register(LILLE, KHARKIV)
    admin = api.as_admin
    partnership = {"organisations": ["lille", "kharkiv"], "kind": "twinning"}
    contact = {"role": "mayor's office", "name": "Olha", "email": "olha@kharkiv.example"}
    kh2 = {**KHARKIV, "organisation_id": "kh2", "name": "Kharkiv oblast"}
    attempts: list[tuple[str, dict[str, Any], dict[str, str], str]] = [
        (
            "/v1/organisations",
            {**kh2, "contacts": [{**contact, "role": text}]},
            admin,
            "contacts.0.role",
        ),
        (
            "/v1/organisations",
            {**kh2, "contacts": [{**contact, "name": text}]},
            admin,
            "contacts.0.name",
        ),
        (
            "/v1/organisations",
            {**KHARKIV, "organisation_id": "kh2", "region": text},
            admin,
            "region",
        ),
        ("/v1/organisations/lille/rename", {"name": "Rijsel", "reason": text}, admin, "reason"),
        ("/v1/organisations/lille/corrections", {"region": text, "reason": "r"}, admin, "region"),
        (
            "/v1/organisations/lille/corrections",
            {"region": "Nord", "reason": text},
            admin,
            "reason",
        ),
        ("/v1/partnerships", {**partnership, "programme": text}, admin, "programme"),
        ("/v1/partnerships", {**partnership, "phase": text}, admin, "phase"),
        ("/v1/organisations/lille/api-keys", {"roles": ["member"], "label": text}, admin, "label"),
        (
            "/v1/webhooks",
            {"url": "https://partner.example.org/hook", "description": text},
            await api.as_("lille", Role.MEMBER),
            "description",
        ),
    ]
    events, keys = await api.count(), await api.count("api_keys")
    for path, body, headers, field in attempts:
        _refused(await api.client.post(path, json=body, headers=headers), field, code_point)
    assert (await api.count(), await api.count("api_keys")) == (events, keys)
    # tabs and line breaks are text
    fine = await api.client.post(
        "/v1/organisations/lille/corrections",
        json={"region": "Hauts-de-France\tNord", "reason": "first line\nsecond line"},
        headers=admin,
    )
    assert fine.status_code == 200, fine.text
