"""Registry use cases: load, decide, append, project. The caller owns the transaction.

Every use case loads what it decides on before its first write (see shared/event_store.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg

from services.registry import domain, privacy, projections
from services.registry import events as ev
from services.registry.handlers import registrations
from services.registry.handlers.registrations import (
    Registration as Registration,
)
from services.registry.handlers.registrations import (
    prepare_registration as prepare_registration,
)
from services.registry.handlers.registrations import (
    register_in_one_statement as register_in_one_statement,
)
from services.registry.handlers.registrations import (
    register_together as register_together,
)
from shared import errors
from shared import projections as proj
from shared.errors import NotFound
from shared.event_store import PostgresEventStore, fold
from shared.events import Metadata, NewEvent


async def load_organisation(
    conn: asyncpg.Connection, organisation_id: str, *, as_of: datetime | None = None
) -> domain.Organisation:
    history = await PostgresEventStore(conn).read_stream(
        f"organisation-{organisation_id}", as_of=as_of
    )
    return fold(history, domain.Organisation(organisation_id), domain.evolve_organisation)


async def load_partnership(
    conn: asyncpg.Connection, partnership_id: str, *, as_of: datetime | None = None
) -> domain.Partnership:
    history = await PostgresEventStore(conn).read_stream(
        f"partnership-{partnership_id}", as_of=as_of
    )
    return fold(history, domain.Partnership(partnership_id), domain.evolve_partnership)


async def _record(
    conn: asyncpg.Connection,
    *,
    stream_type: str,
    stream_id: str,
    version: int,
    events: Sequence[NewEvent],
    metadata: Metadata,
    now: datetime,
) -> int:
    """Append after `version` and project; returns the stream's new version."""
    recorded = await proj.record(
        conn,
        projections.ALL,
        stream_type=stream_type,
        stream_id=stream_id,
        expected_version=version,
        events=events,
        metadata=metadata,
        now=now,
    )
    return recorded[-1].stream_version if recorded else version


async def register_organisation(
    conn: asyncpg.Connection,
    command: domain.RegisterOrganisation,
    *,
    distinct: bool = False,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    # the contacts sealed in this transaction, before the domain decides (shared/privacy.py)
    contacts = await privacy.seal_contacts(conn, command.organisation_id, command.contacts, now=now)
    command = replace(command, contacts=contacts)
    keys = _name_keys(command)
    for lock in registrations.name_locks(command.country, keys):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", lock)
    state = await load_organisation(conn, command.organisation_id)
    parent = (
        await load_organisation(conn, command.parent_id) if command.parent_id is not None else None
    )
    namesake = None if distinct else await _namesake(conn, command.country, keys)
    events = domain.register(state, command, now=now, parent=parent, namesake=namesake)
    version = await _record(
        conn,
        stream_type=ev.STREAM_ORGANISATION,
        stream_id=command.organisation_id,
        version=0,
        events=events,
        metadata=metadata,
        now=now,
    )
    return {"organisation_id": command.organisation_id, "version": version}


def _name_keys(command: domain.RegisterOrganisation) -> list[str]:
    """The keys of its name and aliases (domain.name_keys): a namesake shares one of them."""
    return projections.name_skeletons([command.name, *command.aliases])


async def _namesake(
    conn: asyncpg.Connection, country: str, keys: list[str]
) -> domain.Organisation | None:
    """The first organisation of `country` one of whose names shares one of `keys`."""
    # Only the GIN index: with `country = $1` in the same scan the (generic, prepared) plan
    # ANDs in the country index, which walks every organisation of the country (all of them
    # in a one-country registry: slower with every registration). No ORDER BY/LIMIT either:
    # the planner would walk the primary key.
    found = await conn.fetch(
        "WITH named AS MATERIALIZED ("
        " SELECT organisation_id, country FROM organisations WHERE name_skeletons && $2"
        ") SELECT organisation_id FROM named WHERE country = $1",
        country,
        keys,
    )
    if not found:
        return None
    return await load_organisation(conn, min(r["organisation_id"] for r in found))


async def change_organisation(
    conn: asyncpg.Connection,
    organisation_id: str,
    decide: Callable[[domain.Organisation], list[NewEvent]],
    *,
    if_match: int | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    state = domain.require_existing(await load_organisation(conn, organisation_id))
    errors.check_if_match(state.version, if_match)
    version = await _record(
        conn,
        stream_type=ev.STREAM_ORGANISATION,
        stream_id=organisation_id,
        version=state.version,
        events=decide(state),
        metadata=metadata,
        now=now,
    )
    return {"organisation_id": organisation_id, "version": version}


async def change_contacts(
    conn: asyncpg.Connection,
    organisation_id: str,
    contacts: Sequence[dict[str, Any]],
    *,
    if_match: int | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    """Replace the contacts (given in clear): sealed here, in the write's transaction; the
    same people as now change nothing (no event)."""

    async def decide(state: domain.Organisation) -> list[NewEvent]:
        held = state.contacts
        if not await privacy.same_people(conn, held, contacts):
            held = await privacy.seal_contacts(conn, organisation_id, contacts, now=now)
        return domain.change_contacts(state, domain.ChangeContacts(contacts=held), now=now)

    state = domain.require_existing(await load_organisation(conn, organisation_id))
    errors.check_if_match(state.version, if_match)
    events = await decide(state)
    version = await _record(
        conn,
        stream_type=ev.STREAM_ORGANISATION,
        stream_id=organisation_id,
        version=state.version,
        events=events,
        metadata=metadata,
        now=now,
    )
    return {"organisation_id": organisation_id, "version": version}


async def correct_organisation(
    conn: asyncpg.Connection,
    organisation_id: str,
    command: domain.CorrectOrganisation,
    *,
    if_match: int | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    parent_id = command.changes.get("parent_id")
    parent = await load_organisation(conn, str(parent_id)) if parent_id else None
    return await change_organisation(
        conn,
        organisation_id,
        lambda s: domain.correct(s, command, now=now, parent=parent),
        if_match=if_match,
        metadata=metadata,
        now=now,
    )


async def propose_partnership(
    conn: asyncpg.Connection,
    command: domain.ProposePartnership,
    *,
    acting_for: str | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    state = await load_partnership(conn, command.partnership_id)
    a, b = command.organisations
    parties = (await load_organisation(conn, a), await load_organisation(conn, b))
    events = domain.propose(state, command, now=now, acting_for=acting_for, parties=parties)
    version = await _record(
        conn,
        stream_type=ev.STREAM_PARTNERSHIP,
        stream_id=command.partnership_id,
        version=0,
        events=events,
        metadata=metadata,
        now=now,
    )
    return {"partnership_id": command.partnership_id, "status": "proposed", "version": version}


async def change_partnership_status(
    conn: asyncpg.Connection,
    partnership_id: str,
    command: domain.ChangeStatus,
    *,
    acting_for: str | None,
    if_match: int | None,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    """The partnership's status and version after the command. A member's move to agreed or
    signed that waits for the other organisation's agreement answers the unchanged status with
    `awaiting_agreement_of` (the other organisation) and `agreed` (the caller's)."""
    state = await load_partnership(conn, partnership_id)
    if not state.exists:
        raise NotFound(f"partnership {partnership_id} does not exist")
    errors.check_if_match(state.version, if_match)
    twin = None
    if command.to is domain.PartnershipStatus.SIGNED:
        low, high = domain.pair_key(*state.organisations)
        # one signing per pair and kind at a time: the check below cannot race
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))", f"partnership:{low}:{high}:{state.kind}"
        )
        twin = await conn.fetchval(
            "SELECT partnership_id FROM partnerships WHERE least(org_a, org_b) = $1"
            " AND greatest(org_a, org_b) = $2 AND kind = $3 AND status = 'signed'"
            " AND partnership_id <> $4",
            low,
            high,
            state.kind,
            partnership_id,
        )
    events = domain.change_status(state, command, now=now, acting_for=acting_for, active_twin=twin)
    version = await _record(
        conn,
        stream_type=ev.STREAM_PARTNERSHIP,
        stream_id=partnership_id,
        version=state.version,
        events=events,
        metadata=metadata,
        now=now,
    )
    if acting_for is not None and not any(
        e.event_type == ev.PARTNERSHIP_STATUS_CHANGED for e in events
    ):
        if command.to in domain.CONSENTED:
            return {
                "partnership_id": partnership_id,
                "status": state.status.value,
                "version": version,
                "agreed": [acting_for],
                "awaiting_agreement_of": [state.other(acting_for)],
            }
    return {"partnership_id": partnership_id, "status": command.to.value, "version": version}
