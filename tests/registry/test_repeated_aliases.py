"""An organisation is known by each name once: a registration whose aliases repeat one another
or the name (folded as the registry compares names: case, accents, blanks) stores each name
once, the first spelling kept, as registering and then adding each alias would (adding an
alias it is already known by adds nothing)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.registry.conftest import KHARKIV, RegistryApi


async def _registered(api: RegistryApi) -> tuple[list[str], list[str]]:
    """The aliases the organisation reads with, and those its registration event carries."""
    got: dict[str, Any] = (
        await api.client.get("/v1/organisations/kharkiv", headers=api.as_admin)
    ).json()
    [registered] = await api.events("registry.organisation-registered")
    return got["aliases"], registered["aliases"]


@pytest.mark.parametrize(
    ("aliases", "stored"),
    [
        (["X Town", "X Town"], ["X Town"]),
        (["Charkiw", "x  town", "X TOWN"], ["Charkiw", "x  town"]),
        (["Kharkiv"], []),
        (["Charkiw", "KHARKÍV", "Charkiw"], ["Charkiw"]),
        (["A", "a", "Kharkiv", "B"], ["A", "B"]),
        (["Charkiw", "Kharkov"], ["Charkiw", "Kharkov"]),
    ],
)
async def test_a_registration_stores_each_alias_once_and_none_repeating_the_name(
    api: RegistryApi, aliases: list[str], stored: list[str]
) -> None:
    response = await api.client.post(
        "/v1/organisations", json={**KHARKIV, "aliases": aliases}, headers=api.as_admin
    )
    assert response.status_code == 201, response.text
    assert await _registered(api) == (stored, stored)


async def test_registering_with_aliases_stores_what_adding_them_one_by_one_does(
    api: RegistryApi,
) -> None:
    await api.register({**KHARKIV, "aliases": ["X Town", "x town"]})
    before = await api.count()
    again = await api.client.post(
        "/v1/organisations/kharkiv/aliases", json={"alias": "X TOWN"}, headers=api.as_admin
    )
    assert again.status_code in (200, 201), again.text
    assert await api.count() == before
    assert await _registered(api) == (["X Town"], ["X Town"])
