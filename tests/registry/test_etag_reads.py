"""A read's ETag is what If-Match takes on the next write (the registry): an organisation read
answers its version as ETag; a rename sent with it is taken (and answers the next one), the
same tag sent again once the organisation moved on is 412 and stores nothing."""

from __future__ import annotations

import pytest

from tests.registry.conftest import LILLE, RegistryApi, assert_problem

ORG = "/v1/organisations/lille"


# plain HTTP semantics over plain SQL: one CI pass
pytestmark = pytest.mark.once


async def test_an_organisation_s_etag_is_taken_by_if_match_once_and_then_stale(
    api: RegistryApi,
) -> None:
    await api.register(LILLE)
    read = await api.client.get(ORG, headers=api.as_admin)
    assert read.status_code == 200, read.text
    tag = read.headers["ETag"]
    assert tag == f'"{read.json()["version"]}"'

    renamed = await api.client.post(
        f"{ORG}/rename", json={"name": "Ville de Lille"}, headers={**api.as_admin, "If-Match": tag}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.headers["ETag"] != tag
    again = await api.client.get(ORG, headers=api.as_admin)
    assert again.headers["ETag"] == renamed.headers["ETag"]
    assert again.json()["name"] == "Ville de Lille"

    before = await api.count()
    stale = await api.client.post(
        f"{ORG}/rename", json={"name": "Lille"}, headers={**api.as_admin, "If-Match": tag}
    )
    problem = assert_problem(stale, 412)
    assert problem["current_version"] == again.json()["version"]
    assert await api.count() == before
    assert (await api.client.get(ORG, headers=api.as_admin)).json()["name"] == "Ville de Lille"
