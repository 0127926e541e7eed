"""Partnerships over HTTP on real PostgreSQL: lifecycle, the one-active rule, queries, access."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.auth import Role
from tests.registry.conftest import (
    ADMIN_EVIDENCE,
    BRNO,
    CONSENTED,
    DRUSKININKAI,
    FASTIV,
    KHARKIV,
    LEEDS,
    LILLE,
    LUBLIN,
    RegistryApi,
    assert_problem,
)

ALL_STATUSES = ["proposed", "under_discussion", "agreed", "signed", "suspended", "terminated"]
EVIDENCE = {
    "reference": "https://www.lille.fr/Lille-a-l-international/Villes-partenaires",
    "note": "twinning charter of 1978",
}


@pytest.fixture
async def cities(api: RegistryApi) -> RegistryApi:
    await api.register(LILLE, KHARKIV, LEEDS, BRNO, LUBLIN, FASTIV, DRUSKININKAI)
    return api


async def transition(
    api: RegistryApi,
    partnership_id: str,
    to: str,
    *,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> Any:
    """As a registry administrator unless `headers` say otherwise; an administrator's move to
    agreed or signed carries evidence unless `body` gives its own (None: none)."""
    if headers is None and to in CONSENTED:
        body.setdefault("evidence", ADMIN_EVIDENCE)
    body = {k: v for k, v in body.items() if v is not None}
    return await api.client.post(
        f"/v1/partnerships/{partnership_id}/transitions",
        json={"to": to, **body},
        headers=headers or api.as_admin,
    )


async def get(api: RegistryApi, partnership_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/v1/partnerships/{partnership_id}", headers=api.as_admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed(api: RegistryApi, **params: Any) -> list[str]:
    response = await api.client.get("/v1/partnerships", params=params, headers=api.as_admin)
    assert response.status_code == 200, response.text
    return [p["partnership_id"] for p in response.json()["items"]]


async def twinning(api: RegistryApi, partnership_id: str, a: str, b: str, **body: Any) -> str:
    return await api.propose(
        partnership_id=partnership_id, organisations=[a, b], kind="twinning", **body
    )


async def test_lille_and_kharkiv_signed_in_1978_are_found_by_their_signing_year(
    cities: RegistryApi,
) -> None:
    api = cities
    response = await api.client.post(
        "/v1/partnerships",
        json={
            "partnership_id": "lille-kharkiv",
            "organisations": ["lille", "kharkiv"],
            "kind": "twinning",
            "fields": ["culture", "education"],
            "occurred_at": "1978-03-01T00:00:00Z",
            "evidence": EVIDENCE,
        },
        headers=api.as_admin,
    )
    assert response.status_code == 201, response.text
    assert response.json() == {
        "partnership_id": "lille-kharkiv",
        "status": "proposed",
        "version": 1,
    }
    signed = await transition(
        api, "lille-kharkiv", "signed", occurred_at="1978-06-15T12:00:00+02:00", evidence=EVIDENCE
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "signed"
    got = await get(api, "lille-kharkiv")
    assert got["status"] == "signed"
    assert got["organisations"] == ["lille", "kharkiv"]
    assert got["fields"] == ["culture", "education"]
    assert got["proposed_at"].startswith("1978-03-01")
    assert got["signed_at"].startswith("1978-06-15T10:00:00")
    assert [(h["status"], h["evidence"]) for h in got["history"]] == [
        ("proposed", EVIDENCE),
        ("signed", EVIDENCE),
    ]
    assert await listed(api, signed_year=1978) == ["lille-kharkiv"]
    assert await listed(api, signed_year=1979) == []


async def test_a_partnership_goes_through_its_whole_lifecycle_with_dated_history(
    cities: RegistryApi,
) -> None:
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv", occurred_at="1977-01-10T00:00:00Z")
    path = [
        ("under_discussion", "1977-03-01T00:00:00Z"),
        ("agreed", "1977-11-01T00:00:00Z"),
        ("signed", "1978-06-15T00:00:00Z"),
        ("suspended", "2020-03-01T00:00:00Z"),
        ("signed", "2021-01-01T00:00:00Z"),
        ("terminated", "2023-12-31T00:00:00Z"),
    ]
    for version, (to, when) in enumerate(path, start=2):
        response = await transition(api, "lille-kharkiv", to, occurred_at=when)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "partnership_id": "lille-kharkiv",
            "status": to,
            "version": version,
        }
    got = await get(api, "lille-kharkiv")
    assert got["status"] == "terminated"
    assert got["version"] == 7
    assert got["signed_at"].startswith("1978-06-15"), "the first signing date is kept"
    assert [h["status"] for h in got["history"]] == ["proposed", *(to for to, _ in path)]
    assert [h["occurred_at"][:10] for h in got["history"]] == [
        "1977-01-10",
        *(when[:10] for _, when in path),
    ]
    in_2020 = await api.client.get(
        "/v1/partnerships/lille-kharkiv",
        params={"as_of": "2020-06-01T00:00:00Z"},
        headers=api.as_admin,
    )
    assert in_2020.json()["status"] == "suspended"
    before = await api.client.get(
        "/v1/partnerships/lille-kharkiv",
        params={"as_of": "1970-01-01T00:00:00Z"},
        headers=api.as_admin,
    )
    assert_problem(before, 404)


@pytest.mark.parametrize(
    ("reach", "to", "allowed"),
    [
        ([], "proposed", ["under_discussion", "agreed", "signed", "terminated"]),
        ([], "suspended", ["under_discussion", "agreed", "signed", "terminated"]),
        (["under_discussion"], "proposed", ["agreed", "signed", "terminated"]),
        (["agreed"], "under_discussion", ["signed", "terminated"]),
        (["signed"], "agreed", ["suspended", "terminated"]),
        (["signed"], "signed", ["suspended", "terminated"]),
        (["signed", "suspended"], "proposed", ["signed", "terminated"]),
    ],
)
async def test_a_refused_transition_is_a_409_problem_listing_the_allowed_ones(
    cities: RegistryApi, reach: list[str], to: str, allowed: list[str]
) -> None:
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv")
    for step in reach:
        await api.move("lille-kharkiv", step)
    before = await api.count()
    body = assert_problem(await transition(api, "lille-kharkiv", to), 409)
    assert body["allowed_transitions"] == allowed
    assert body["current_status"] == (reach or ["proposed"])[-1]
    for status in allowed:
        assert status in body["detail"]
    assert await api.count() == before


@pytest.mark.parametrize("to", ALL_STATUSES)
async def test_a_terminated_partnership_is_final(cities: RegistryApi, to: str) -> None:
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv")
    await api.move("lille-kharkiv", "terminated")
    before = await api.count()
    body = assert_problem(await transition(api, "lille-kharkiv", to), 409)
    assert body["allowed_transitions"] == []
    assert await api.count() == before
    assert (await get(api, "lille-kharkiv"))["status"] == "terminated"


async def test_a_second_twinning_of_a_pair_may_be_proposed_but_not_signed_while_one_is_active(
    cities: RegistryApi,
) -> None:
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv")
    await api.move("lille-kharkiv", "signed")
    # the same pair named the other way round is still the same pair
    await twinning(api, "kharkiv-lille", "kharkiv", "lille")
    await api.move("kharkiv-lille", "agreed")
    before = await api.count()
    body = assert_problem(await transition(api, "kharkiv-lille", "signed"), 409)
    assert body["active_partnership_id"] == "lille-kharkiv"
    assert "lille-kharkiv" in body["detail"]
    assert await api.count() == before
    assert (await get(api, "kharkiv-lille"))["status"] == "agreed"
    await api.propose(
        partnership_id="lille-kharkiv-friends",
        organisations=["lille", "kharkiv"],
        kind="friendship",
    )
    await api.move("lille-kharkiv-friends", "signed")
    await api.propose(
        partnership_id="lille-leeds", organisations=["lille", "leeds"], kind="twinning"
    )
    await api.move("lille-leeds", "signed")
    assert await listed(api, status="signed") == [
        "lille-kharkiv",
        "lille-kharkiv-friends",
        "lille-leeds",
    ]


async def test_a_twin_may_be_signed_once_the_active_one_is_terminated(
    cities: RegistryApi,
) -> None:
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv")
    await twinning(api, "lille-kharkiv-2", "lille", "kharkiv")
    await api.move("lille-kharkiv", "signed")
    await api.move("lille-kharkiv", "terminated")
    await api.move("lille-kharkiv-2", "signed")
    assert (await get(api, "lille-kharkiv-2"))["status"] == "signed"


async def test_a_suspended_partnership_cannot_resume_while_a_twin_is_active(
    cities: RegistryApi,
) -> None:
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv")
    await api.move("lille-kharkiv", "signed")
    await api.move("lille-kharkiv", "suspended")
    await twinning(api, "lille-kharkiv-2", "lille", "kharkiv")
    await api.move("lille-kharkiv-2", "signed")
    before = await api.count()
    body = assert_problem(await transition(api, "lille-kharkiv", "signed"), 409)
    assert body["active_partnership_id"] == "lille-kharkiv-2"
    assert await api.count() == before
    assert (await get(api, "lille-kharkiv"))["status"] == "suspended"
    await api.move("lille-kharkiv", "terminated")


async def test_concurrent_signings_of_two_twins_sign_exactly_one(cities: RegistryApi) -> None:
    api = cities
    # three pairs at once, so that a missing guard shows up on at least one of them
    pairs = [("lille", "kharkiv"), ("leeds", "kharkiv"), ("brno", "lublin")]
    for a, b in pairs:
        await twinning(api, f"{a}-{b}-1", a, b)
        await twinning(api, f"{a}-{b}-2", b, a)
    requests = [
        (a, b, transition(api, f"{a}-{b}-{1 + i % 2}", "signed"))
        for a, b in pairs
        for i in range(10)
    ]
    responses = await asyncio.gather(*(request for _, _, request in requests))
    for a, b in pairs:
        answers = [r for (x, y, _), r in zip(requests, responses, strict=True) if (x, y) == (a, b)]
        codes = sorted(r.status_code for r in answers)
        assert codes == [200] + [409] * 9, [r.text for r in answers]
        for refused in (r for r in answers if r.status_code == 409):
            assert_problem(refused, 409)
        assert len(await listed(api, organisation=a, status="signed")) == 1
    assert len(await api.events("registry.partnership-status-changed")) == len(pairs)


async def test_a_stale_if_match_on_a_transition_is_a_412_problem(cities: RegistryApi) -> None:
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv")
    await api.move("lille-kharkiv", "under_discussion")
    before = await api.count()
    stale = await transition(
        api,
        "lille-kharkiv",
        "agreed",
        headers={**api.as_admin, "If-Match": "1"},
        evidence=ADMIN_EVIDENCE,
    )
    assert assert_problem(stale, 412)["current_version"] == 2
    assert await api.count() == before
    fresh = await transition(
        api,
        "lille-kharkiv",
        "agreed",
        headers={**api.as_admin, "If-Match": "2"},
        evidence=ADMIN_EVIDENCE,
    )
    assert fresh.status_code == 200, fresh.text


async def test_a_transition_dated_before_the_previous_change_is_a_422_problem(
    cities: RegistryApi,
) -> None:
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv", occurred_at="1978-03-01T00:00:00Z")
    before = await api.count()
    response = await transition(api, "lille-kharkiv", "signed", occurred_at="1977-01-01T00:00:00Z")
    assert "occurred_at" in str(assert_problem(response, 422)["invalid_params"])
    assert await api.count() == before


async def test_a_transition_of_an_unknown_partnership_is_a_404_problem(
    cities: RegistryApi,
) -> None:
    api = cities
    before = await api.count()
    assert_problem(await transition(api, "atlantis-kharkiv", "signed"), 404)
    assert_problem(
        await api.client.get("/v1/partnerships/atlantis-kharkiv", headers=api.as_admin), 404
    )
    assert await api.count() == before


# Queries


@pytest.fixture
async def network(cities: RegistryApi) -> RegistryApi:
    """Kharkiv's partners as the sources give them, and Fastiv-Druskininkai in a programme."""
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv", occurred_at="1978-01-01T00:00:00Z")
    await api.move("lille-kharkiv", "signed", "1978-06-15T00:00:00Z")
    await twinning(api, "brno-kharkiv", "kharkiv", "brno", occurred_at="2004-01-01T00:00:00Z")
    await api.move("brno-kharkiv", "signed", "2005-05-01T00:00:00Z")
    await api.propose(
        partnership_id="kharkiv-lublin",
        organisations=["kharkiv", "lublin"],
        kind="cooperation_agreement",
        occurred_at="2022-04-01T00:00:00Z",
    )
    await api.move("kharkiv-lublin", "signed", "2022-09-01T00:00:00Z")
    await twinning(api, "leeds-kharkiv", "leeds", "kharkiv", occurred_at="2023-02-01T00:00:00Z")
    await api.move("leeds-kharkiv", "under_discussion", "2023-03-01T00:00:00Z")
    await api.propose(
        partnership_id="fastiv-druskininkai",
        organisations=["fastiv", "druskininkai"],
        kind="programme_partnership",
        programme="Bridges of Trust",
        phase="2",
        fields=["humanitarian_aid", "reconstruction"],
        occurred_at="2023-05-01T00:00:00Z",
    )
    await api.move("fastiv-druskininkai", "agreed", "2023-06-01T00:00:00Z")
    return api


async def test_partnerships_of_an_organisation_include_both_sides(network: RegistryApi) -> None:
    api = network
    assert await listed(api, organisation="kharkiv") == [
        "brno-kharkiv",
        "kharkiv-lublin",
        "leeds-kharkiv",
        "lille-kharkiv",
    ]
    assert await listed(api, organisation="brno") == ["brno-kharkiv"]
    assert await listed(api, organisation="lublin") == ["kharkiv-lublin"]
    assert await listed(api, organisation="druskininkai") == ["fastiv-druskininkai"]
    assert await listed(api, organisation="atlantis") == []


async def test_partnerships_by_status_kind_programme_country_and_signing_year(
    network: RegistryApi,
) -> None:
    api = network
    assert await listed(api, status="under_discussion") == ["leeds-kharkiv"]
    assert await listed(api, status="signed", organisation="kharkiv", kind="twinning") == [
        "brno-kharkiv",
        "lille-kharkiv",
    ]
    assert await listed(api, kind="cooperation_agreement") == ["kharkiv-lublin"]
    assert await listed(api, country="GB") == ["leeds-kharkiv"]
    assert await listed(api, country="LT") == ["fastiv-druskininkai"]
    assert await listed(api, country="CZ", status="signed") == ["brno-kharkiv"]
    assert await listed(api, signed_year=2005) == ["brno-kharkiv"]
    assert await listed(api, signed_year=2022) == ["kharkiv-lublin"]
    assert await listed(api, signed_year=2023) == []
    response = await api.client.get(
        "/v1/partnerships", params={"programme": "bridges of trust"}, headers=api.as_admin
    )
    [item] = response.json()["items"]
    assert item["partnership_id"] == "fastiv-druskininkai"
    assert (item["programme"], item["phase"]) == ("Bridges of Trust", "2")
    assert item["fields"] == ["humanitarian_aid", "reconstruction"]
    assert item["status"] == "agreed"
    assert item["signed_at"] is None


async def test_partnership_pages_walk_every_result_exactly_once(network: RegistryApi) -> None:
    api = network
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = (
            await api.client.get("/v1/partnerships", params=params, headers=api.as_admin)
        ).json()
        seen += [p["partnership_id"] for p in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [
        "brno-kharkiv",
        "fastiv-druskininkai",
        "kharkiv-lublin",
        "leeds-kharkiv",
        "lille-kharkiv",
    ]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"status": "dormant"}, id="unknown-status"),
        pytest.param({"kind": "alliance"}, id="unknown-kind"),
        pytest.param({"country": "gb"}, id="country-lowercase"),
        pytest.param({"signed_year": "nineteen"}, id="year-not-a-number"),
        pytest.param({"cursor": "not a cursor"}, id="cursor-not-base64-json"),
        pytest.param({"cursor": "WzFd"}, id="cursor-number-for-an-id"),  # [1]
        pytest.param({"cursor": "WyJhIiwgImIiXQ"}, id="cursor-one-key-too-many"),  # ["a", "b"]
        pytest.param({"limit": 0}, id="limit-0"),
    ],
)
async def test_invalid_partnership_query_parameters_are_a_422_problem(
    network: RegistryApi, params: dict[str, Any]
) -> None:
    response = await network.client.get("/v1/partnerships", params=params, headers=network.as_admin)
    assert_problem(response, 422)


async def test_the_network_around_kharkiv_lists_its_partners_with_their_statuses(
    network: RegistryApi,
) -> None:
    api = network
    response = await api.client.get(
        "/v1/organisations/kharkiv/network", headers=await api.as_("lublin", Role.MEMBER)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["organisation"]["name"] == "Kharkiv"
    assert "contacts" not in body["organisation"]
    assert [
        (p["name"], p["country"], p["partnership"]["kind"], p["partnership"]["status"])
        for p in body["partners"]
    ] == [
        ("Brno", "CZ", "twinning", "signed"),
        ("Leeds", "GB", "twinning", "under_discussion"),
        ("Lille", "FR", "twinning", "signed"),
        ("Lublin", "PL", "cooperation_agreement", "signed"),
    ]
    lille = (await api.client.get("/v1/organisations/lille/network", headers=api.as_admin)).json()
    assert [p["organisation_id"] for p in lille["partners"]] == ["kharkiv"]
    unknown = await api.client.get("/v1/organisations/atlantis/network", headers=api.as_admin)
    assert_problem(unknown, 404)


# Access


async def test_a_member_of_leeds_proposes_leeds_and_kharkiv_and_moves_it(
    cities: RegistryApi,
) -> None:
    api = cities
    leeds = await api.as_("leeds", Role.MEMBER)
    response = await api.client.post(
        "/v1/partnerships",
        json={
            "partnership_id": "leeds-kharkiv",
            "organisations": ["leeds", "kharkiv"],
            "kind": "twinning",
            "occurred_at": "2023-02-01T00:00:00Z",
        },
        headers=leeds,
    )
    assert response.status_code == 201, response.text
    [proposed] = await api.events("registry.partnership-proposed")
    assert proposed["proposed_by"] == "leeds"
    moved = await transition(api, "leeds-kharkiv", "under_discussion", headers=leeds)
    assert moved.status_code == 200, moved.text
    kharkiv = await api.as_("kharkiv", Role.MEMBER)
    kharkiv_agrees = await transition(api, "leeds-kharkiv", "agreed", headers=kharkiv)
    assert kharkiv_agrees.status_code == 202, kharkiv_agrees.text
    leeds_agrees = await transition(api, "leeds-kharkiv", "agreed", headers=leeds)
    assert leeds_agrees.status_code == 200, leeds_agrees.text
    assert (await get(api, "leeds-kharkiv"))["status"] == "agreed"


async def test_a_member_of_lille_may_not_propose_or_change_leeds_and_kharkiv(
    cities: RegistryApi,
) -> None:
    api = cities
    lille = await api.as_("lille", Role.MEMBER)
    proposal = {
        "partnership_id": "leeds-kharkiv",
        "organisations": ["leeds", "kharkiv"],
        "kind": "twinning",
    }
    before = await api.count()
    refused = await api.client.post("/v1/partnerships", json=proposal, headers=lille)
    assert "lille" in assert_problem(refused, 403)["detail"]
    assert await api.count() == before
    await api.propose(**proposal)
    before = await api.count()
    for to in ("under_discussion", "signed", "terminated"):
        assert_problem(await transition(api, "leeds-kharkiv", to, headers=lille), 403)
    assert await api.count() == before
    assert (await get(api, "leeds-kharkiv"))["status"] == "proposed"


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.LOGISTICS, Role.SERVICE])
async def test_keys_without_a_writing_role_may_not_propose_or_change_partnerships(
    cities: RegistryApi, role: Role
) -> None:
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv")
    before = await api.count()
    # even a key of one of the two organisations
    headers = await api.as_("lille", role)
    refused = await api.client.post(
        "/v1/partnerships",
        json={"organisations": ["lille", "leeds"], "kind": "friendship"},
        headers=headers,
    )
    assert_problem(refused, 403)
    assert_problem(await transition(api, "lille-kharkiv", "signed", headers=headers), 403)
    assert await api.count() == before
    listing = await api.client.get("/v1/partnerships", headers=headers)
    assert listing.status_code == 200, "every key reads"


async def test_without_a_key_partnerships_are_401(cities: RegistryApi) -> None:
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv")
    before = await api.count()
    for response in (
        await api.client.get("/v1/partnerships"),
        await api.client.get("/v1/partnerships/lille-kharkiv"),
        await api.client.get("/v1/organisations/kharkiv/network"),
        await api.client.post(
            "/v1/partnerships", json={"organisations": ["lille", "leeds"], "kind": "friendship"}
        ),
        await api.client.post("/v1/partnerships/lille-kharkiv/transitions", json={"to": "signed"}),
    ):
        assert_problem(response, 401)
    assert await api.count() == before


# Bad input


VALID = {"organisations": ["lille", "kharkiv"], "kind": "twinning"}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param({"organisations": ["lille", "lille"]}, 422, "organisations", id="with-itself"),
        pytest.param(
            {"organisations": ["lille", "atlantis"]},
            422,
            "atlantis",
            id="unknown-second-organisation",
        ),
        pytest.param(
            {"organisations": ["atlantis", "kharkiv"]},
            422,
            "atlantis",
            id="unknown-first-organisation",
        ),
        pytest.param({"organisations": ["lille"]}, 422, "organisations", id="one-organisation"),
        pytest.param(
            {"organisations": ["lille", "kharkiv", "leeds"]},
            422,
            "organisations",
            id="three-organisations",
        ),
        pytest.param(
            {"organisations": ["Lille", "kharkiv"]}, 422, "organisations", id="id-not-a-slug"
        ),
        pytest.param(
            {"occurred_at": "2999-01-01T00:00:00Z"}, 422, "occurred_at", id="occurred-in-the-future"
        ),
        pytest.param(
            {"occurred_at": "1978-06-15T00:00:00"},
            422,
            "occurred_at",
            id="occurred-without-timezone",
        ),
        pytest.param({"occurred_at": "15/06/1978"}, 422, "occurred_at", id="occurred-not-a-date"),
        pytest.param({"kind": "alliance"}, 422, "kind", id="unknown-kind"),
        pytest.param({"fields": ["astrology"]}, 422, "fields", id="unknown-cooperation-field"),
        pytest.param({"programme": "P" * 201}, 422, "programme", id="programme-201-chars"),
        pytest.param(
            {"programme": "Bridges\u0000of Trust"}, 422, "programme", id="programme-with-nul"
        ),
        pytest.param(
            {"evidence": {"note": "no reference"}},
            422,
            "reference",
            id="evidence-without-reference",
        ),
        pytest.param(
            {"evidence": {"reference": "r", "url": "x"}}, 422, "url", id="unknown-evidence-field"
        ),
        pytest.param({"status": "signed"}, 422, "status", id="unknown-field-status"),
        pytest.param(
            {"signed_at": "1978-06-15T00:00:00Z"}, 422, "signed_at", id="unknown-field-signed-at"
        ),
    ],
)
async def test_a_bad_proposal_is_a_4xx_problem_and_stores_nothing(
    cities: RegistryApi, body: dict[str, Any], status: int, field: str
) -> None:
    api = cities
    before = await api.count()
    response = await api.client.post(
        "/v1/partnerships", json={**VALID, **body}, headers=api.as_admin
    )
    problem = assert_problem(response, status)
    assert field in str(problem.get("invalid_params", "")) + problem["detail"]
    assert await api.count() == before
    assert await api.count("partnerships") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"to": "dormant"}, "to", id="unknown-status"),
        pytest.param({}, "to", id="no-status"),
        pytest.param(
            {"to": "signed", "occurred_at": "2999-01-01T00:00:00Z"},
            "occurred_at",
            id="occurred-in-the-future",
        ),
        pytest.param(
            {"to": "signed", "occurred_at": "1978-06-15T00:00:00"},
            "occurred_at",
            id="occurred-without-timezone",
        ),
        pytest.param({"to": "signed", "kind": "friendship"}, "kind", id="unknown-field"),
        pytest.param(
            {"to": "signed", "evidence": {"reference": ""}},
            "reference",
            id="empty-evidence-reference",
        ),
    ],
)
async def test_a_bad_transition_is_a_422_problem_and_stores_nothing(
    cities: RegistryApi, body: dict[str, Any], field: str
) -> None:
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv", occurred_at="1978-01-01T00:00:00Z")
    before = await api.count()
    response = await api.client.post(
        "/v1/partnerships/lille-kharkiv/transitions", json=body, headers=api.as_admin
    )
    problem = assert_problem(response, 422)
    assert field in str(problem.get("invalid_params", "")) + problem["detail"]
    assert await api.count() == before
    assert (await get(api, "lille-kharkiv"))["status"] == "proposed"


async def test_proposing_under_a_taken_id_is_a_409_problem(cities: RegistryApi) -> None:
    api = cities
    await twinning(api, "lille-kharkiv", "lille", "kharkiv")
    before = await api.count()
    again = await api.client.post(
        "/v1/partnerships",
        json={**VALID, "partnership_id": "lille-kharkiv", "kind": "friendship"},
        headers=api.as_admin,
    )
    assert_problem(again, 409)
    assert await api.count() == before
