"""What corrections, renames and aliases may not break, over HTTP on real PostgreSQL and on the
in-memory handlers: a country corrected into one where another organisation is known by a
look-alike of one of its names is a 409 naming it (as a registration, unless `distinct`); a new
parent under the organisation (a cycle of any length) or a chain of parents longer than
MAX_PARENT_CHAIN is a 422 naming parent_id; an organisation is known by at most MAX_ALIASES
aliases (adding one beyond, or a rename keeping the previous name as one, is a 409 naming the
limit); and every 422 the registry's rules raise names its field. Nothing refused is stored."""

from __future__ import annotations

import ast
import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.registry import commands, domain
from services.registry.domain.organisations import renamed_aliases, with_alias
from services.registry.handlers import HANDLERS
from services.registry.handlers.ports import InMemoryPorts
from shared.errors import Conflict, ValidationFailed
from shared.events import Metadata
from shared.memory_store import InMemoryEventStore
from shared.repository import InMemoryUnitOfWork
from tests.registry.conftest import KHARKIV, RegistryApi, assert_problem

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADMIN = Metadata(actor="admin", organisation="twinaid")
KHARKIV_DE = {
    "organisation_id": "kharkiv-de",
    "name": "Kharkiv",
    "kind": "municipality",
    "country": "DE",
}
OTHERVILLE = {
    "organisation_id": "otherville",
    "name": "Otherville",
    "kind": "municipality",
    "country": "DE",
    "aliases": ["Kharkov"],
}
TESTVILLE = {
    "organisation_id": "testville",
    "name": "Testville",
    "kind": "municipality",
    "country": "UA",
}


def town(slug: str, **extra: Any) -> dict[str, Any]:
    """A municipality of Ukraine named after its id."""
    return {"organisation_id": slug, "name": slug.title(), "kind": "municipality", **extra} | {
        "country": "UA"
    }


async def read(api: RegistryApi, slug: str) -> dict[str, Any]:
    response = await api.client.get(f"/v1/organisations/{slug}", headers=api.as_admin)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def found_in(api: RegistryApi, q: str, country: str) -> list[str]:
    response = await api.client.get(
        "/v1/organisations", params={"q": q, "country": country}, headers=api.as_admin
    )
    assert response.status_code == 200, response.text
    return sorted(o["organisation_id"] for o in response.json()["items"])


async def correct(api: RegistryApi, slug: str, **body: Any) -> Any:
    return await api.client.post(
        f"/v1/organisations/{slug}/corrections",
        json={"reason": "typo", **body},
        headers=api.as_admin,
    )


def names_of(problem: dict[str, Any]) -> list[str]:
    return [p["name"] for p in problem["invalid_params"]]


# 1. A country corrected into one with a namesake


@pytest.mark.parametrize(
    ("moved", "q"),
    [
        pytest.param(KHARKIV_DE, "Kharkiv", id="its-name"),
        pytest.param(OTHERVILLE, "Kharkov", id="an-alias"),
        pytest.param({**KHARKIV_DE, "name": "Kh\u0430rkiv"}, "Kharkiv", id="a-look-alike"),
    ],
)
async def test_a_country_corrected_into_a_namesakes_country_is_a_409_and_stores_nothing(
    api: RegistryApi, moved: dict[str, Any], q: str
) -> None:
    await api.register(KHARKIV, moved)
    slug = moved["organisation_id"]
    before = (await api.count(), await read(api, slug), await found_in(api, q, "UA"))
    response = await correct(api, slug, country="UA")
    problem = assert_problem(response, 409)
    assert problem["existing_organisation_id"] == "kharkiv"
    assert "kharkiv" in problem["detail"] and '"distinct": true' in problem["detail"]
    after = (await api.count(), await read(api, slug), await found_in(api, q, "UA"))
    assert after == before
    assert before[1]["country"] == "DE" and before[2] == ["kharkiv"]


async def test_a_country_corrected_despite_a_namesake_when_said_distinct(api: RegistryApi) -> None:
    await api.register(KHARKIV, KHARKIV_DE)
    response = await correct(api, "kharkiv-de", country="UA", distinct=True)
    assert response.status_code == 200, response.text
    assert (await read(api, "kharkiv-de"))["country"] == "UA"
    assert await found_in(api, "Kharkiv", "UA") == ["kharkiv", "kharkiv-de"]
    [corrected] = await api.events("registry.organisation-corrected")
    assert corrected["changes"] == {"country": "UA"}  # `distinct` is no correction


async def test_a_country_with_no_namesake_or_other_fields_are_corrected_as_before(
    api: RegistryApi,
) -> None:
    await api.register(KHARKIV, KHARKIV_DE)
    # another country, and the same one: no namesake there
    assert (await correct(api, "kharkiv-de", country="PL")).status_code == 200
    assert (await correct(api, "kharkiv-de", country="PL", region="X")).status_code == 200
    # a namesake of the same country registered `distinct` keeps its fields correctable
    twin = {**KHARKIV_DE, "organisation_id": "kharkiv-2", "country": "UA", "distinct": True}
    await api.register(twin)
    assert (await correct(api, "kharkiv-2", region="Kharkiv Oblast")).status_code == 200
    assert (await correct(api, "kharkiv-2", country="UA")).status_code == 200


async def test_a_namesake_moved_in_by_a_correction_is_then_found_by_registrations(
    api: RegistryApi,
) -> None:
    """The other way round: once moved, its names are the new country's namesakes."""
    await api.register(KHARKIV_DE)
    assert (await correct(api, "kharkiv-de", country="UA")).status_code == 200
    response = await api.client.post("/v1/organisations", json=KHARKIV, headers=api.as_admin)
    assert assert_problem(response, 409)["existing_organisation_id"] == "kharkiv-de"


# 2. Cycles of parents


async def test_a_parent_under_the_organisation_is_a_422_naming_parent_id(
    api: RegistryApi,
) -> None:
    """The tester's case: otherville under testville, then testville under otherville."""
    await api.register(TESTVILLE, {**OTHERVILLE, "country": "UA", "aliases": []})
    assert (await correct(api, "otherville", parent_id="testville")).status_code == 200
    before = (await api.count(), await read(api, "testville"))
    problem = assert_problem(await correct(api, "testville", parent_id="otherville"), 422)
    assert names_of(problem) == ["parent_id"]
    assert "testville -> otherville -> testville" in problem["detail"]
    assert (await api.count(), await read(api, "testville")) == before
    assert before[1]["parent_id"] is None


async def test_a_cycle_of_any_length_is_refused_and_a_tree_stays_correctable(
    api: RegistryApi,
) -> None:
    # a <- b <- c <- d <- e: each under the one before
    await api.register(
        town("a"), *(town(s, parent_id=p) for p, s in zip("abcd", "bcde", strict=True))
    )
    before = await api.count()
    for below in "bcde":
        problem = assert_problem(await correct(api, "a", parent_id=below), 422)
        assert names_of(problem) == ["parent_id"], below
    problem = assert_problem(await correct(api, "b", parent_id="e"), 422)
    assert "b -> e -> d -> c -> b" in problem["detail"]
    assert await api.count() == before
    # moving a branch elsewhere in the tree, or to the top, is no cycle
    await api.register(town("f"))
    assert (await correct(api, "c", parent_id="f")).status_code == 200
    assert (await correct(api, "a", parent_id="e")).status_code == 200  # e is under f now
    assert (await correct(api, "a", parent_id=None)).status_code == 200
    assert (await read(api, "a"))["parent_id"] is None


async def test_an_organisation_made_its_own_parent_is_a_422_naming_parent_id(
    api: RegistryApi,
) -> None:
    await api.register(TESTVILLE)
    before = await api.count()
    problem = assert_problem(await correct(api, "testville", parent_id="testville"), 422)
    assert names_of(problem) == ["parent_id"]
    assert "own parent" in problem["detail"]
    assert await api.count() == before


async def test_two_corrections_closing_a_cycle_together_cannot_both_pass(
    api: RegistryApi,
) -> None:
    await api.register(town("a"), town("b"))
    for _ in range(3):
        answers = await asyncio.gather(
            correct(api, "a", parent_id="b"), correct(api, "b", parent_id="a")
        )
        assert sorted(r.status_code for r in answers) == [200, 422]
        a, b = await read(api, "a"), await read(api, "b")
        assert [a["parent_id"], b["parent_id"]].count(None) == 1
        assert (await correct(api, "a", parent_id=None)).status_code == 200
        assert (await correct(api, "b", parent_id=None)).status_code == 200


async def test_a_chain_of_parents_is_walked_up_to_its_bound(api: RegistryApi) -> None:
    """A parent with MAX_PARENT_CHAIN organisations in its chain (itself included) is taken;
    one more is refused naming parent_id, nothing stored."""
    bound = domain.MAX_PARENT_CHAIN
    await api.register(
        town("c0"), *(town(f"c{i}", parent_id=f"c{i - 1}") for i in range(1, bound + 1))
    )
    await api.register(town("leaf"))
    before = await api.count()
    problem = assert_problem(await correct(api, "leaf", parent_id=f"c{bound}"), 422)
    assert names_of(problem) == ["parent_id"]
    assert str(bound) in problem["detail"]
    assert await api.count() == before
    assert (await correct(api, "leaf", parent_id=f"c{bound - 1}")).status_code == 200
    # the bottom of the chain is still no parent of its top
    problem = assert_problem(await correct(api, "c0", parent_id=f"c{bound - 1}"), 422)
    assert names_of(problem) == ["parent_id"]


# 3. At most MAX_ALIASES aliases


def many(count: int, start: int = 0) -> list[str]:
    return [f"Alias {i}" for i in range(start, start + count)]


async def test_an_alias_beyond_the_limit_is_a_409_naming_it_and_stores_nothing(
    api: RegistryApi,
) -> None:
    limit = domain.MAX_ALIASES
    await api.register({**TESTVILLE, "aliases": many(limit - 1)})
    path = "/v1/organisations/testville/aliases"
    last = await api.client.post(path, json={"alias": "The last one"}, headers=api.as_admin)
    assert last.status_code == 200, last.text
    before = (await api.count(), await read(api, "testville"))
    assert len(before[1]["aliases"]) == limit
    for body in ({"alias": "One too many"}, {"alias": "One too many", "distinct": True}):
        refused = await api.client.post(path, json=body, headers=api.as_admin)
        problem = assert_problem(refused, 409)
        assert problem["max_aliases"] == limit and str(limit) in problem["detail"]
    # a name it is already known by adds nothing: still answered, as before
    known = await api.client.post(path, json={"alias": "ALIAS 3"}, headers=api.as_admin)
    assert known.status_code == 200 and known.json()["version"] == before[1]["version"]
    assert (await api.count(), await read(api, "testville")) == before


async def test_a_rename_at_the_limit_is_a_409_the_previous_name_having_no_room(
    api: RegistryApi,
) -> None:
    limit = domain.MAX_ALIASES
    await api.register({**TESTVILLE, "aliases": many(limit)})
    before = (await api.count(), await read(api, "testville"))
    for _ in range(2):  # renaming back and forth kept adding the previous name
        refused = await api.client.post(
            "/v1/organisations/testville/rename", json={"name": "Newville"}, headers=api.as_admin
        )
        assert assert_problem(refused, 409)["max_aliases"] == limit
    same = await api.client.post(
        "/v1/organisations/testville/rename", json={"name": "Testville"}, headers=api.as_admin
    )
    assert same.status_code == 200, same.text
    assert (await api.count(), await read(api, "testville")) == before


async def test_renames_back_and_forth_keep_each_name_once_and_never_reach_the_limit(
    api: RegistryApi,
) -> None:
    """A rename keeps the previous name as an alias only if no alias already folds to it, and
    drops the aliases that fold to the new name: toggling adds nothing, and the name is never
    among its own aliases (it filled the aliases with repeats, then was a 409)."""
    limit = domain.MAX_ALIASES
    await api.register({**TESTVILLE, "aliases": [*many(limit - 2), "Alpha X"]})
    path = "/v1/organisations/testville/rename"
    for i in range(60):
        name = ("Alpha X", "Testville", "TESTVILLE")[i % 3]
        response = await api.client.post(path, json={"name": name}, headers=api.as_admin)
        assert response.status_code == 200, (i, response.text)
        now = await read(api, "testville")
        folded = [domain.fold_name(a) for a in now["aliases"]]
        assert len(folded) == len(set(folded)) and domain.fold_name(name) not in folded, now
        assert len(now["aliases"]) == limit - 1
    extra = await api.client.post(
        "/v1/organisations/testville/aliases", json={"alias": "Beta X"}, headers=api.as_admin
    )
    assert extra.status_code == 200, extra.text


def test_a_rename_folds_its_aliases_once_each_and_old_clean_histories_as_before() -> None:
    """The outside tester's toggle, on the fold the state and the read model share; a history
    without repeats folds as it did (the previous name appended); one with repeats (recorded
    before the dedupe) folds to each alias once, the name not among them."""
    aliases: tuple[str, ...] = ("Alpha X",)
    name = "Testville X"
    for new in ["Alpha X", "Testville X", "TESTVILLE X"] * 20:
        aliases, name = renamed_aliases(aliases, name, new), new
    assert (name, aliases) == ("TESTVILLE X", ("Alpha X",))
    assert renamed_aliases(("Old", "Older"), "Kharkov", "Kharkiv") == ("Old", "Older", "Kharkov")
    repeated = ("Alpha X", "Testville X", "Alpha X", "Testville X")
    assert renamed_aliases(repeated, "Testville X", "TESTVILLE X") == ("Alpha X",)
    assert with_alias(("Alpha X",), "ALPHA x", "Testville X") == ("Alpha X",)


async def test_a_registration_body_holds_at_most_the_limit(api: RegistryApi) -> None:
    limit = domain.MAX_ALIASES
    response = await api.client.post(
        "/v1/organisations", json={**TESTVILLE, "aliases": many(limit + 1)}, headers=api.as_admin
    )
    assert names_of(assert_problem(response, 422)) == ["aliases"]
    assert await api.count() == 0
    await api.register({**TESTVILLE, "aliases": many(limit)})


# 4. Every 422 of the registry's rules names its field (pure rules and handlers)

LILLE = domain.Organisation(
    organisation_id="lille", version=1, name="Lille", kind="municipality", country="FR"
)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "Rijsel"}, ["name"]),
        ({"aliases": [], "contacts": [], "region": "Nord"}, ["aliases", "contacts"]),
        ({"kind": "castle"}, ["kind"]),
        ({"country": "XX"}, ["country"]),
        ({"parent_id": "lille"}, ["parent_id"]),
    ],
)
def test_a_refused_correction_names_its_fields(changes: dict[str, Any], field: list[str]) -> None:
    command = domain.CorrectOrganisation(changes=changes, reason="r")
    with pytest.raises(ValidationFailed) as refused:
        domain.correct(LILLE, command, now=NOW, parent=LILLE)
    assert [p["name"] for p in refused.value.extra["invalid_params"]] == field


def test_a_registration_beyond_the_alias_limit_names_aliases() -> None:
    command = domain.RegisterOrganisation(
        organisation_id="x",
        name="X",
        kind=domain.OrganisationKind.MUNICIPALITY,
        country="FR",
        aliases=tuple(many(domain.MAX_ALIASES + 1)),
    )
    with pytest.raises(ValidationFailed) as refused:
        domain.register(domain.Organisation("x"), command, now=NOW)
    assert refused.value.extra["invalid_params"][0]["name"] == "aliases"


def test_every_validation_failure_the_registry_raises_names_its_fields() -> None:
    """No ValidationFailed(...) in services/registry without its `extra` (invalid_params):
    the others go through shared.domain_checks.invalid."""
    root = Path(__file__).resolve().parents[2] / "services" / "registry"
    bare = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "ValidationFailed"
                and not any(k.arg == "extra" for k in node.keywords)
            ):
                bare.append(f"{path.relative_to(root)}:{node.lineno}")
    assert bare == []


class UnitOfWork(InMemoryUnitOfWork):
    def __init__(self, ports: InMemoryPorts) -> None:
        super().__init__(ports.store, ADMIN, NOW)
        self.ports = ports


async def run(ports: InMemoryPorts, command: Any) -> Any:
    return await HANDLERS.handle(command, UnitOfWork(ports))


def registration(slug: str, name: str, **extra: Any) -> commands.RegisterOrganisation:
    return commands.RegisterOrganisation(
        domain.RegisterOrganisation(
            organisation_id=slug,
            name=name,
            kind=domain.OrganisationKind.MUNICIPALITY,
            country=extra.pop("country", "UA"),
            **extra,
        )
    )


def correction(slug: str, distinct: bool = False, **changes: Any) -> commands.CorrectOrganisation:
    return commands.CorrectOrganisation(
        slug, domain.CorrectOrganisation(changes=changes, reason="r"), distinct=distinct
    )


async def test_the_correction_handler_checks_namesakes_in_the_new_country() -> None:
    ports = InMemoryPorts(InMemoryEventStore())
    await run(ports, registration("kharkiv", "Kharkiv", aliases=("Kharkov",)))
    await run(ports, registration("otherville", "Otherville", country="DE", aliases=("Kharkov",)))
    await run(ports, registration("kharkiv-pl", "KHARKIV", country="PL"))
    ports.locked.clear()
    with pytest.raises(Conflict) as refused:
        await run(ports, correction("kharkiv", country="PL"))
    assert refused.value.extra["existing_organisation_id"] == "kharkiv-pl"
    # its name and every alias locked in the new country, as a registration locks them
    keys = {k for n in ("Kharkiv", "Kharkov") for k in domain.name_keys(n)}
    assert ports.locked == [f"organisation-name:PL:{k}" for k in sorted(keys)]
    with pytest.raises(Conflict) as refused:
        await run(ports, correction("otherville", country="UA"))  # by its alias
    assert refused.value.extra["existing_organisation_id"] == "kharkiv"
    assert (await run(ports, correction("otherville", country="PL")))["version"] == 2
    assert (await run(ports, correction("kharkiv", country="PL", distinct=True)))["version"] == 2


async def test_the_correction_handler_refuses_a_cycle_of_parents() -> None:
    ports = InMemoryPorts(InMemoryEventStore())
    await run(ports, registration("a", "A"))
    await run(ports, registration("b", "B", parent_id="a"))
    await run(ports, registration("c", "C", parent_id="b"))
    assert await ports.parents("c", limit=10) == ["b", "a"]
    assert await ports.parents("c", limit=1) == ["b"]
    with pytest.raises(ValidationFailed, match="a -> c -> b -> a") as refused:
        await run(ports, correction("a", parent_id="c"))
    assert refused.value.extra["invalid_params"][0]["name"] == "parent_id"
    assert "organisation-parents" in ports.locked
    assert (await run(ports, correction("c", parent_id="a")))["version"] == 2
