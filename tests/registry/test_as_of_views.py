"""An `?as_of=` read answers what the current read answered at that instant: the same keys with
the same meaning (signing and change dates, who recorded each step and on what evidence), plus
`as_of`. Each step's current read is kept, then read again as of an instant after that step and
before the next."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from shared.auth import Role
from tests.registry.conftest import ADMIN_EVIDENCE, CHU_LILLE, KHARKIV, LILLE, RegistryApi

PROPOSAL_EVIDENCE = {"reference": "letter of intent, 2019-05", "note": "both mayors"}
SUSPENSION_EVIDENCE = {"reference": "council decision 2022/14"}


async def current(api: RegistryApi, path: str) -> dict[str, Any]:
    response = await api.client.get(path, headers=api.as_admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "as_of" not in body
    return body


async def as_of(api: RegistryApi, path: str, instant: str) -> dict[str, Any]:
    response = await api.client.get(path, params={"as_of": instant}, headers=api.as_admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body.pop("as_of") is not None
    return body


async def agree(api: RegistryApi, organisation: str, to: str, occurred_at: str) -> int:
    response = await api.client.post(
        "/v1/partnerships/lille-kharkiv/transitions",
        json={"to": to, "occurred_at": occurred_at, "evidence": {"reference": f"{organisation}"}},
        headers=await api.as_(organisation, Role.MEMBER),
    )
    assert response.status_code in (200, 202), response.text
    return response.status_code


async def transition(api: RegistryApi, body: dict[str, Any]) -> None:
    response = await api.client.post(
        "/v1/partnerships/lille-kharkiv/transitions", json=body, headers=api.as_admin
    )
    assert response.status_code == 200, response.text


async def test_a_partnership_as_of_each_step_is_its_current_read_right_after_that_step(
    api: RegistryApi,
) -> None:
    await api.register(LILLE, KHARKIV)
    path = "/v1/partnerships/lille-kharkiv"
    response = await api.client.post(
        "/v1/partnerships",
        json={
            "partnership_id": "lille-kharkiv",
            "organisations": ["lille", "kharkiv"],
            "kind": "twinning",
            "programme": "Bridges of Trust",
            "fields": ["education", "culture"],
            "occurred_at": "2019-06-01T10:00:00Z",
            "evidence": PROPOSAL_EVIDENCE,
        },
        headers=api.as_admin,
    )
    assert response.status_code == 201, response.text
    steps = [(await current(api, path), "2019-07-01T00:00:00Z")]
    # each organisation agrees with its own key: the status moves with the second (an offset
    # other than UTC: the same instant whichever way it was written)
    assert await agree(api, "lille", "agreed", "2019-09-01T09:00:00Z") == 202
    steps.append((await current(api, path), "2019-09-15T00:00:00Z"))
    assert await agree(api, "kharkiv", "agreed", "2019-10-01T12:00:00+03:00") == 200
    steps.append((await current(api, path), "2020-01-01T00:00:00Z"))
    signed_at = "2020-02-01T00:00:00Z"
    await transition(api, {"to": "signed", "occurred_at": signed_at, "evidence": ADMIN_EVIDENCE})
    steps.append((await current(api, path), "2023-01-01T00:00:00Z"))
    await transition(
        api,
        {"to": "suspended", "occurred_at": "2024-03-01T00:00:00Z"}
        | {"evidence": SUSPENSION_EVIDENCE},
    )
    steps.append((await current(api, path), datetime.now(UTC).isoformat()))

    signed = steps[3][0]
    assert (signed["status"], signed["signed_at"]) == ("signed", "2020-02-01T00:00:00+00:00")
    for read, instant in steps:
        assert await as_of(api, path, instant) == read, instant

    # what the outside tester read: as of 2023 the partnership was signed, since 2020-02-01
    in_2023 = await as_of(api, path, "2023-01-01T00:00:00Z")
    assert in_2023["proposed_at"] == "2019-06-01T10:00:00+00:00"
    assert in_2023["signed_at"] == in_2023["changed_at"] == "2020-02-01T00:00:00+00:00"
    assert [(h["status"], h["evidence"]) for h in in_2023["history"]] == [
        ("proposed", PROPOSAL_EVIDENCE),
        ("agreed", {"reference": "kharkiv", "note": None}),
        ("signed", ADMIN_EVIDENCE),
    ]
    kharkiv_key = await api.key("kharkiv", Role.MEMBER)
    assert in_2023["history"][1]["actor"] == kharkiv_key.split("_")[1]
    assert in_2023["history"][1]["occurred_at"] == "2019-10-01T09:00:00+00:00"
    assert [(a["organisation_id"], a["evidence"]) for a in in_2023["agreements"]] == [
        ("lille", {"reference": "lille", "note": None}),
        ("kharkiv", {"reference": "kharkiv", "note": None}),
    ]


async def test_a_resigned_partnership_as_of_any_later_instant_keeps_its_first_signing_date(
    api: RegistryApi,
) -> None:
    await api.register(LILLE, KHARKIV)
    await api.propose(
        partnership_id="lille-kharkiv",
        organisations=["lille", "kharkiv"],
        kind="twinning",
        occurred_at="2019-06-01T00:00:00Z",
    )
    await api.move("lille-kharkiv", "signed", "2020-02-01T00:00:00Z")
    await api.move("lille-kharkiv", "suspended", "2021-02-01T00:00:00Z")
    await api.move("lille-kharkiv", "signed", "2022-02-01T00:00:00Z")
    path = "/v1/partnerships/lille-kharkiv"
    now = await current(api, path)
    then = await as_of(api, path, "2022-06-01T00:00:00Z")
    assert then == now
    assert (then["signed_at"], then["changed_at"]) == (
        "2020-02-01T00:00:00+00:00",
        "2022-02-01T00:00:00+00:00",
    )


async def test_an_organisation_as_of_each_step_is_its_current_read_right_after_that_step(
    api: RegistryApi,
) -> None:
    await api.register(LILLE)
    path = "/v1/organisations/chu-lille"
    steps: list[tuple[dict[str, Any], str]] = []

    async def step() -> None:
        read = await current(api, path)
        await asyncio.sleep(0.01)
        steps.append((read, datetime.now(UTC).isoformat()))
        await asyncio.sleep(0.01)

    contacts = [{"role": "international relations", "name": "Anne Dupont"}]
    await api.register(
        {**CHU_LILLE, "parent_id": None, "aliases": ["CHRU de Lille"], "contacts": contacts}
    )
    await step()
    changes = [
        ("rename", {"name": "CHU Lille"}),
        ("aliases", {"alias": "Centre hospitalier de Lille"}),
        ("corrections", {"parent_id": "lille", "reason": "the CHU belongs to Lille"}),
        ("corrections", {"coordinates": {"lat": 50.61, "lon": 3.03}, "reason": "located"}),
        ("corrections", {"region": None, "coordinates": None, "reason": "unknown after all"}),
    ]
    for where, body in changes:
        response = await api.client.post(f"{path}/{where}", json=body, headers=api.as_admin)
        assert response.status_code == 200, response.text
        await step()
    response = await api.client.put(
        f"{path}/contacts",
        json={"contacts": [{"role": "director", "name": "Marc Leroy", "email": "m@chu.example"}]},
        headers=api.as_admin,
    )
    assert response.status_code == 200, response.text
    await step()

    for read, instant in steps:
        assert await as_of(api, path, instant) == read, instant
        assert read["contacts"], "an administrator sees the contacts, then as now"
