"""The registry's handlers on the in-memory event store and ports, no database: each command's
success, the rules that refuse it, and a stale version lost to a concurrent writer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.registry import commands, domain
from services.registry import events as ev
from services.registry.domain import api_keys as keys
from services.registry.handlers import HANDLERS, ORGANISATIONS
from services.registry.handlers.ports import InMemoryPorts
from shared.auth import Role
from shared.commands import Command
from shared.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed
from shared.event_store import ConcurrencyConflict
from shared.events import Metadata, RecordedEvent
from shared.memory_store import InMemoryEventStore
from shared.repository import InMemoryUnitOfWork

pytestmark = pytest.mark.once

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADMIN = Metadata(actor="admin", organisation="twinaid")
EVIDENCE = ev.Evidence(reference="council resolutions of both organisations")


class UnitOfWork(InMemoryUnitOfWork):
    """An in-memory unit of work with the registry's in-memory ports over the same store."""

    def __init__(self, ports: InMemoryPorts, metadata: Metadata = ADMIN) -> None:
        super().__init__(ports.store, metadata, NOW)
        self.ports = ports


@pytest.fixture
def ports() -> InMemoryPorts:
    return InMemoryPorts(InMemoryEventStore())


async def run(ports: InMemoryPorts, command: Command, **meta: Any) -> Any:
    return await HANDLERS.handle(command, UnitOfWork(ports, Metadata(**meta) if meta else ADMIN))


def registration(slug: str, name: str, **extra: Any) -> commands.RegisterOrganisation:
    distinct = extra.pop("distinct", False)
    return commands.RegisterOrganisation(
        domain.RegisterOrganisation(
            organisation_id=slug,
            name=name,
            kind=domain.OrganisationKind.MUNICIPALITY,
            country=extra.pop("country", "UA"),
            **extra,
        ),
        distinct=distinct,
    )


async def events(ports: InMemoryPorts, stream_id: str) -> list[RecordedEvent]:
    return await ports.store.read_stream(stream_id)


def test_every_command_has_its_named_handler() -> None:
    assert {c.__name__ for c in HANDLERS.commands()} == {
        "RegisterOrganisation",
        "RenameOrganisation",
        "AddAlias",
        "CorrectOrganisation",
        "ChangeContacts",
        "ProposePartnership",
        "ChangePartnershipStatus",
        "IssueApiKey",
        "RotateApiKey",
        "RevokeApiKey",
    }


async def test_a_registration_is_recorded_projected_and_answered_with_its_version(
    ports: InMemoryPorts,
) -> None:
    uow = UnitOfWork(ports)
    answer = await HANDLERS.handle(registration("kharkiv", "Kharkiv", aliases=("Charkiw",)), uow)
    assert answer == {"organisation_id": "kharkiv", "version": 1}
    [registered] = await events(ports, "organisation-kharkiv")
    assert registered.event_type == ev.ORGANISATION_REGISTERED
    assert registered.metadata.actor == "admin"
    assert [e.event_id for e in uow.projected] == [registered.event_id]
    assert ports.locked == [
        f"organisation-name:UA:{k}"
        for k in sorted(set(domain.name_keys("Kharkiv")) | set(domain.name_keys("Charkiw")))
    ]


async def test_a_taken_id_or_a_namesake_in_the_country_is_refused_unless_distinct(
    ports: InMemoryPorts,
) -> None:
    await run(ports, registration("kharkiv", "Kharkiv"))
    with pytest.raises(Conflict, match="already registered"):
        await run(ports, registration("kharkiv", "Somewhere else"))
    with pytest.raises(Conflict) as namesake:
        await run(ports, registration("kharkiv-2", "KHARKIV"))
    assert namesake.value.extra["existing_organisation_id"] == "kharkiv"
    # another country's Kharkiv is no namesake; `distinct` registers one anyway
    assert (await run(ports, registration("kharkiv-us", "Kharkiv", country="US")))["version"] == 1
    assert (await run(ports, registration("kharkiv-2", "KHARKIV", distinct=True)))["version"] == 1
    assert await events(ports, "organisation-kharkiv-3") == []


async def test_an_unknown_parent_or_country_refuses_the_registration(ports: InMemoryPorts) -> None:
    with pytest.raises(ValidationFailed, match="parent organisation"):
        await run(ports, registration("oblast", "Kharkiv Oblast", parent_id="kharkiv"))
    with pytest.raises(ValidationFailed, match="country code"):
        await run(ports, registration("atlantis", "Atlantis", country="XX"))
    await run(ports, registration("kharkiv", "Kharkiv"))
    answer = await run(ports, registration("oblast", "Kharkiv Oblast", parent_id="kharkiv"))
    assert answer == {"organisation_id": "oblast", "version": 1}


async def test_a_rename_keeps_the_old_name_and_honours_if_match(ports: InMemoryPorts) -> None:
    await run(ports, registration("kyiv", "Kiev"))
    rename = domain.RenameOrganisation(name="Kyiv", reason="official transliteration")
    with pytest.raises(PreconditionFailed):
        await run(ports, commands.RenameOrganisation("kyiv", rename, if_match=7))
    assert await run(ports, commands.RenameOrganisation("kyiv", rename, if_match=1)) == {
        "organisation_id": "kyiv",
        "version": 2,
    }
    state = await ORGANISATIONS.load(UnitOfWork(ports), "kyiv")
    assert (state.name, state.aliases) == ("Kyiv", ("Kiev",))
    # the same name again, or an alias it is known by: nothing happened, the version stays
    assert (await run(ports, commands.RenameOrganisation("kyiv", rename)))["version"] == 2
    alias = commands.AddAlias("kyiv", domain.AddAlias(alias="KIEV"))
    assert (await run(ports, alias))["version"] == 2
    with pytest.raises(NotFound):
        await run(ports, commands.RenameOrganisation("lviv", rename))


async def test_a_correction_checks_its_fields_and_its_parent(ports: InMemoryPorts) -> None:
    await run(ports, registration("bucha", "Bucha"))
    correct = commands.CorrectOrganisation(
        "bucha", domain.CorrectOrganisation(changes={"region": "Kyiv Oblast"}, reason="surveyed")
    )
    assert (await run(ports, correct))["version"] == 2
    assert (await ORGANISATIONS.load(UnitOfWork(ports), "bucha")).region == "Kyiv Oblast"
    orphan = commands.CorrectOrganisation(
        "bucha", domain.CorrectOrganisation(changes={"parent_id": "nowhere"}, reason="x")
    )
    with pytest.raises(ValidationFailed, match="parent organisation nowhere"):
        await run(ports, orphan)


async def test_contacts_are_sealed_and_the_same_people_change_nothing(
    ports: InMemoryPorts,
) -> None:
    await run(ports, registration("lille", "Lille", country="FR"))
    people = ({"role": "international relations", "name": "Marc Leroy"},)
    change = commands.ChangeContacts("lille", people)
    assert (await run(ports, change))["version"] == 2
    [*_, changed] = await events(ports, "organisation-lille")
    assert changed.schema_version == 2
    assert "Marc Leroy" not in str(changed.data)
    assert (await run(ports, change))["version"] == 2, "the same people: no event"


async def test_a_stale_version_loses_to_a_concurrent_writer(ports: InMemoryPorts) -> None:
    """Two renames that both load version 1: the second to append finds the stream moved on."""
    await run(ports, registration("odesa", "Odessa"))

    class Interleaving(InMemoryEventStore):
        async def read_stream(self, stream_id: str, **kw: Any) -> list[RecordedEvent]:
            found = await ports.store.read_stream(stream_id, **kw)
            await asyncio.sleep(0)  # the other writer loads too before anyone appends
            return found

        async def append(self, **kw: Any) -> list[RecordedEvent]:
            return await ports.store.append(**kw)

    racing = InMemoryPorts(Interleaving())
    renames = [
        commands.RenameOrganisation("odesa", domain.RenameOrganisation(name=name))
        for name in ("Odesa", "Odesa city")
    ]
    outcomes = await asyncio.gather(*(run(racing, c) for c in renames), return_exceptions=True)
    assert outcomes[0] == {"organisation_id": "odesa", "version": 2}
    assert isinstance(outcomes[1], ConcurrencyConflict)
    assert len(await events(ports, "organisation-odesa")) == 2


async def partnership(ports: InMemoryPorts) -> None:
    await run(ports, registration("lille", "Lille", country="FR"))
    await run(ports, registration("kharkiv", "Kharkiv"))
    proposal = domain.ProposePartnership(
        partnership_id="lille-kharkiv",
        organisations=("lille", "kharkiv"),
        kind=domain.PartnershipKind.TWINNING,
        occurred_at=NOW - timedelta(days=30),
    )
    await run(ports, commands.ProposePartnership(proposal, acting_for="lille"))


async def test_a_member_proposes_only_partnerships_of_its_own_organisation(
    ports: InMemoryPorts,
) -> None:
    await partnership(ports)
    proposal = domain.ProposePartnership(
        partnership_id="other",
        organisations=("lille", "kharkiv"),
        kind=domain.PartnershipKind.FRIENDSHIP,
        occurred_at=NOW,
    )
    with pytest.raises(Forbidden):
        await run(ports, commands.ProposePartnership(proposal, acting_for="leeds"))
    with pytest.raises(Conflict, match="already exists"):
        await run(
            ports,
            commands.ProposePartnership(
                domain.ProposePartnership(
                    partnership_id="lille-kharkiv",
                    organisations=("lille", "kharkiv"),
                    kind=domain.PartnershipKind.TWINNING,
                    occurred_at=NOW,
                ),
                acting_for=None,
            ),
        )


async def test_signing_takes_both_organisations_and_refuses_a_second_signed_twin(
    ports: InMemoryPorts,
) -> None:
    await partnership(ports)
    sign = domain.ChangeStatus(to=domain.PartnershipStatus.SIGNED, occurred_at=NOW)
    first = await run(ports, commands.ChangePartnershipStatus("lille-kharkiv", sign, "lille"))
    assert first == {
        "partnership_id": "lille-kharkiv",
        "status": "proposed",
        "version": 2,
        "agreed": ["lille"],
        "awaiting_agreement_of": ["kharkiv"],
    }
    second = await run(ports, commands.ChangePartnershipStatus("lille-kharkiv", sign, "kharkiv"))
    assert second == {"partnership_id": "lille-kharkiv", "status": "signed", "version": 4}
    assert "partnership:kharkiv:lille:twinning" in ports.locked
    # a second twinning of the pair cannot be signed while this one is
    twin = domain.ProposePartnership(
        partnership_id="again",
        organisations=("kharkiv", "lille"),
        kind=domain.PartnershipKind.TWINNING,
        occurred_at=NOW,
    )
    await run(ports, commands.ProposePartnership(twin, acting_for=None))
    with_evidence = domain.ChangeStatus(
        to=domain.PartnershipStatus.SIGNED, occurred_at=NOW, evidence=EVIDENCE
    )
    with pytest.raises(Conflict) as refused:
        await run(ports, commands.ChangePartnershipStatus("again", with_evidence, None))
    assert refused.value.extra["active_partnership_id"] == "lille-kharkiv"


def manager(organisation: str, *roles: Role) -> keys.Manager:
    return keys.Manager(key_id="k0", organisation=organisation, roles=frozenset(roles))


async def test_an_organisation_admin_issues_rotates_and_revokes_its_own_keys(
    ports: InMemoryPorts,
) -> None:
    await run(ports, registration("lille", "Lille", country="FR"))
    admin = manager("lille", Role.ORG_ADMIN)
    issue = commands.IssueApiKey(
        organisation_id="lille", roles=[Role.MEMBER], label="ERP", expires_at=None, manager=admin
    )
    issued = await run(ports, issue)
    key_id, token = issued["key_id"], issued["token"]
    assert token.startswith(f"twa_{key_id}_")
    assert ports.keys[key_id].expires_at == NOW + timedelta(days=90)
    rotated = await run(ports, commands.RotateApiKey("lille", key_id, None, admin))
    assert rotated["token"] != token
    revoke = commands.RevokeApiKey("lille", key_id, "stolen laptop", admin)
    assert (await run(ports, revoke))["revoked"] is True
    with pytest.raises(Conflict, match="already revoked"):
        await run(ports, revoke)
    stream = [e.event_type for e in await events(ports, f"api_key-{key_id}")]
    assert stream == [ev.API_KEY_ISSUED, ev.API_KEY_ROTATED, ev.API_KEY_REVOKED]


async def test_keys_are_refused_to_other_organisations_and_unknown_ones(
    ports: InMemoryPorts,
) -> None:
    await run(ports, registration("lille", "Lille", country="FR"))
    issue = commands.IssueApiKey(
        organisation_id="lille",
        roles=[Role.MEMBER],
        label="ERP",
        expires_at=None,
        manager=manager("leeds", Role.ORG_ADMIN),
    )
    with pytest.raises(Forbidden):
        await run(ports, issue)
    with pytest.raises(Forbidden):  # an org_admin grants no registry_admin
        await run(
            ports,
            commands.IssueApiKey(
                organisation_id="lille",
                roles=[Role.REGISTRY_ADMIN],
                label="x",
                expires_at=None,
                manager=manager("lille", Role.ORG_ADMIN),
            ),
        )
    with pytest.raises(NotFound):
        await run(
            ports,
            commands.IssueApiKey(
                organisation_id="atlantis",
                roles=[Role.MEMBER],
                label="x",
                expires_at=None,
                manager=manager("twinaid", Role.REGISTRY_ADMIN),
            ),
        )
    with pytest.raises(NotFound):
        await run(
            ports, commands.RevokeApiKey("lille", "abc", None, manager("lille", Role.ORG_ADMIN))
        )
    assert ports.keys == {}
