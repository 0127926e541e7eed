"""Organisations' handlers: register, rename, add an alias, correct, change the contacts.

Each loads what it decides on before its first write (see shared/event_store.py), decides in
the domain, appends through ORGANISATIONS (which projects), and answers with the
organisation's id and version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from services.registry import commands, domain
from services.registry.handlers import ports
from services.registry.handlers.common import HANDLERS, ORGANISATIONS
from shared import errors
from shared.events import NewEvent
from shared.repository import UnitOfWork


def name_keys(registration: domain.RegisterOrganisation) -> list[str]:
    """The keys of its name and aliases (domain.name_keys), sorted: a namesake shares one."""
    return sorted(
        {k for n in (registration.name, *registration.aliases) for k in domain.name_keys(n)}
    )


def name_locks(country: str, keys: list[str]) -> list[str]:
    """One registration per name key and country at a time (two namesakes cannot slip in
    together); taken in a fixed order (`keys` sorted), so registrations sharing keys cannot
    deadlock."""
    return [f"organisation-name:{country}:{key}" for key in keys]


@HANDLERS.register(commands.RegisterOrganisation)
async def register_organisation(
    command: commands.RegisterOrganisation, uow: UnitOfWork
) -> dict[str, Any]:
    """Conflict for an id taken or a namesake in the same country (unless `distinct`)."""
    found = ports.of(uow)
    registration = command.registration
    # the contacts sealed in this transaction, before the domain decides (shared/privacy.py)
    sealed = await found.seal_contacts(registration.organisation_id, registration.contacts)
    registration = replace(registration, contacts=sealed)
    keys = name_keys(registration)
    await found.lock(name_locks(registration.country, keys))
    state = await ORGANISATIONS.load(uow, registration.organisation_id)
    parent = None
    if registration.parent_id is not None:
        parent = await ORGANISATIONS.load(uow, registration.parent_id)
    namesake = None
    if not command.distinct and (other := await found.namesake(registration.country, keys)):
        namesake = await ORGANISATIONS.load(uow, other)
    events = domain.register(state, registration, now=uow.now, parent=parent, namesake=namesake)
    return await _changed(uow, state, events)


@HANDLERS.register(commands.RenameOrganisation)
async def rename_organisation(
    command: commands.RenameOrganisation, uow: UnitOfWork
) -> dict[str, Any]:
    """Conflict for a namesake of the new name in the country (unless `distinct`)."""
    state = await _existing(uow, command.organisation_id, command.if_match)
    namesake = await _namesake(uow, state, [command.rename.name], distinct=command.distinct)
    events = domain.rename(state, command.rename, now=uow.now, namesake=namesake)
    return await _changed(uow, state, events)


@HANDLERS.register(commands.AddAlias)
async def add_alias(command: commands.AddAlias, uow: UnitOfWork) -> dict[str, Any]:
    """Conflict for a namesake of the alias in the country (unless `distinct`)."""
    state = await _existing(uow, command.organisation_id, command.if_match)
    namesake = await _namesake(uow, state, [command.alias.alias], distinct=command.distinct)
    events = domain.add_alias(state, command.alias, now=uow.now, namesake=namesake)
    return await _changed(uow, state, events)


async def _namesake(
    uow: UnitOfWork,
    state: domain.Organisation,
    names: Sequence[str],
    *,
    distinct: bool,
    country: str | None = None,
) -> domain.Organisation | None:
    """Another organisation of `country` (by default `state`'s) known by a look-alike of one of
    `names` (None when `distinct`; the organisation itself is no namesake of its own names).
    The names' locks are taken as a registration takes them, and held to the commit, even when
    `distinct`: a registration or another change of the same look in the country waits, then
    sees it."""
    country = state.country if country is None else country
    keys = sorted({k for name in names for k in domain.name_keys(name)})
    found = ports.of(uow)
    await found.lock(name_locks(country, keys))
    if distinct:
        return None
    other = await found.namesake(country, keys, other_than=state.organisation_id)
    return None if other is None else await ORGANISATIONS.load(uow, other)


# one correction of a parent at a time: two that would close a cycle together (a under b, b
# under a) cannot both miss it; the second waits, then walks the first's parent
PARENTS_LOCK = "organisation-parents"


@HANDLERS.register(commands.CorrectOrganisation)
async def correct_organisation(
    command: commands.CorrectOrganisation, uow: UnitOfWork
) -> dict[str, Any]:
    """Conflict for a namesake of any of its names in a new country (unless `distinct`); a new
    parent is refused if the organisation is above it (a cycle)."""
    changes = command.correction.changes
    parent_id = changes.get("parent_id")
    parent = await ORGANISATIONS.load(uow, str(parent_id)) if parent_id else None
    state = await _existing(uow, command.organisation_id, command.if_match)
    found = ports.of(uow)
    namesake = None
    country = changes.get("country")
    if isinstance(country, str) and country != state.country:
        namesake = await _namesake(
            uow, state, state.names, distinct=command.distinct, country=country
        )
    above: list[str] = []
    if parent is not None and parent.exists and parent_id != state.parent_id:
        await found.lock([PARENTS_LOCK])
        above = await found.parents(parent.organisation_id, limit=domain.MAX_PARENT_CHAIN)
    events = domain.correct(
        state,
        command.correction,
        now=uow.now,
        parent=parent,
        above_parent=above,
        namesake=namesake,
    )
    return await _changed(uow, state, events)


@HANDLERS.register(commands.ChangeContacts)
async def change_contacts(command: commands.ChangeContacts, uow: UnitOfWork) -> dict[str, Any]:
    """The contacts (given in clear) sealed here, in the write's transaction; the same people
    as now change nothing (no event)."""
    state = await _existing(uow, command.organisation_id, command.if_match)
    held = state.contacts
    found = ports.of(uow)
    if not await found.same_people(held, command.contacts):
        held = await found.seal_contacts(command.organisation_id, command.contacts)
    events = domain.change_contacts(state, domain.ChangeContacts(contacts=held), now=uow.now)
    return await _changed(uow, state, events)


async def _existing(
    uow: UnitOfWork, organisation_id: str, if_match: int | None
) -> domain.Organisation:
    """NotFound, or PreconditionFailed when `if_match` is not its version."""
    state = domain.require_existing(await ORGANISATIONS.load(uow, organisation_id))
    errors.check_if_match(state.version, if_match)
    return state


async def _changed(
    uow: UnitOfWork, state: domain.Organisation, events: list[NewEvent]
) -> dict[str, Any]:
    """`events` appended after `state` (none: nothing happened); the id and version after."""
    recorded = await ORGANISATIONS.append(
        uow, state.organisation_id, expected_version=state.version, events=events
    )
    return {"organisation_id": state.organisation_id, "version": state.version + len(recorded)}
