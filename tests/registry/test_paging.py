"""The registry's lists are paged (issue 19, point 7): an organisation's network answers a
bounded page by default and a keyset cursor (`cursor`, `next_cursor`), by partner name then
partnership id; walking it with a small limit gives every partner exactly once, in that order;
a cursor the list did not give is a 422 problem."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.registry.api.organisations import PAGE
from services.registry.views import RECENT
from shared import pagination
from shared.auth import Role
from tests.registry.conftest import KHARKIV, RegistryApi, assert_problem

pytestmark = pytest.mark.once  # keyset SQL any supported PostgreSQL runs alike


async def walk(api: RegistryApi, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every partner of a network, its pages followed; and how many pages there were."""
    partners: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = await api.client.get(path, params=query, headers=api.as_admin)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages += 1
        assert pages <= 1000, "the pages go on: a cursor that does not move on"
        assert body["organisation"]["organisation_id"] == "kharkiv"
        if "limit" in params:
            assert len(body["partners"]) <= params["limit"]
        partners += body["partners"]
        cursor = body["next_cursor"]
        if cursor is None:
            return partners, pages
        assert body["partners"], "a page with a next page is not empty"


async def partners(api: RegistryApi, names: list[str]) -> list[tuple[str, str]]:
    """Kharkiv twinned with an organisation of each name (namesakes allowed, registered
    distinct): (partner, partnership) in the order the network gives them."""
    await api.register(KHARKIV)
    made = []
    for k, name in enumerate(names):
        org = {
            "organisation_id": f"p{k:03}",
            "name": name,
            "kind": "municipality",
            "country": "FR",
            "distinct": True,
        }
        await api.register(org)
        partnership = await api.propose(
            partnership_id=f"kharkiv-p{k:03}",
            organisations=["kharkiv", f"p{k:03}"],
            kind="twinning",
            occurred_at="2022-04-01T00:00:00Z",
        )
        made.append((name.casefold(), f"p{k:03}", partnership))
    return [(org, partnership) for _, org, partnership in sorted(made, key=lambda m: (m[0], m[2]))]


async def test_a_network_walked_a_page_at_a_time_gives_every_partner_once_in_order(
    api: RegistryApi,
) -> None:
    # namesakes: the partnership id breaks the tie between equal names
    names = ["Zamość", "Amiens", "Lyon", "Lyon", "Brest", "Lyon", "Metz"]
    expected = await partners(api, names)
    walked, pages = await walk(api, "/v1/organisations/kharkiv/network", limit=2)
    got = [(p["organisation_id"], p["partnership"]["partnership_id"]) for p in walked]
    assert got == expected
    assert pages == 4
    whole, pages = await walk(api, "/v1/organisations/kharkiv/network")
    assert pages == 1 and [p["partnership"]["partnership_id"] for p in whole] == [
        p for _, p in expected
    ]


async def test_a_network_answers_a_bounded_page_by_default(api: RegistryApi) -> None:
    expected = await partners(api, [f"Town {k:03}" for k in range(PAGE + 3)])
    first = await api.client.get("/v1/organisations/kharkiv/network", headers=api.as_admin)
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["partners"]) == PAGE and body["next_cursor"]
    walked, pages = await walk(api, "/v1/organisations/kharkiv/network")
    assert pages == 2
    assert [p["organisation_id"] for p in walked] == [o for o, _ in expected]
    too_many = await api.client.get(
        "/v1/organisations/kharkiv/network",
        params={"limit": pagination.MAX_LIMIT + 1},
        headers=api.as_admin,
    )
    assert_problem(too_many, 422)


@pytest.mark.parametrize("cursor", ["!!!!", "bm90IGpzb24", pagination.encode(["only one"])])
async def test_a_cursor_the_network_did_not_give_is_a_422_problem(
    api: RegistryApi, cursor: str
) -> None:
    await partners(api, ["Lyon"])
    answer = await api.client.get(
        "/v1/organisations/kharkiv/network", params={"cursor": cursor}, headers=api.as_admin
    )
    problem = assert_problem(answer, 422)
    assert [p["name"] for p in problem["invalid_params"]] == ["query.cursor"]


async def test_a_partnership_embeds_its_latest_status_changes_and_agreements_only(
    api: RegistryApi,
) -> None:
    """Signed and suspended may alternate without end: a partnership's view stays bounded,
    the latest RECENT status changes and agreements with how many there are."""
    await partners(api, ["Lyon"])
    cycles = RECENT // 2 + 3

    async def signed_by_both() -> None:
        """Each organisation agrees with its own member's key (two agreements recorded)."""
        for org, status in (("kharkiv", 202), ("p000", 200)):
            answer = await api.client.post(
                "/v1/partnerships/kharkiv-p000/transitions",
                json={"to": "signed"},
                headers=await api.as_(org, Role.MEMBER),
            )
            assert answer.status_code == status, answer.text

    await signed_by_both()
    for _ in range(cycles):
        await api.move("kharkiv-p000", "suspended")
        await signed_by_both()
    changes = 2 + 2 * cycles  # proposed, signed, then each suspension and resumption
    now = datetime.now(UTC).isoformat()
    views = [
        (await api.client.get("/v1/partnerships/kharkiv-p000", headers=api.as_admin)).json(),
        (
            await api.client.get(
                "/v1/partnerships/kharkiv-p000", params={"as_of": now}, headers=api.as_admin
            )
        ).json(),
        (await api.client.get("/v1/partnerships", headers=api.as_admin)).json()["items"][0],
        (await walk(api, "/v1/organisations/kharkiv/network"))[0][0]["partnership"],
    ]
    for view in views:
        assert view["history_total"] == changes, view
        assert len(view["history"]) == RECENT
        assert [h["status"] for h in view["history"]] == ["suspended", "signed"] * (RECENT // 2)
        assert view["agreements_total"] == 2 + 2 * cycles
        assert [a["organisation_id"] for a in view["agreements"]] == ["kharkiv", "p000"] * (
            RECENT // 2
        )
    assert [h["occurred_at"] for h in views[0]["history"]] == [
        h["occurred_at"] for h in views[1]["history"]
    ]
