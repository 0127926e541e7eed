"""Registrations that arrive together, as one statement (registry_register_organisations)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.registry import domain, projections
from services.registry import events as ev
from shared import errors
from shared.db import CONNECTION_LOST
from shared.event_store import append_arguments, recorded
from shared.events import Metadata


def name_locks(country: str, keys: list[str]) -> list[str]:
    """One registration per name key and country at a time (two namesakes cannot slip in
    together); locks taken in a fixed order (`keys` sorted), so registrations sharing keys
    cannot deadlock."""
    return [f"organisation-name:{country}:{key}" for key in keys]


@dataclass(frozen=True, slots=True)
class Registration:
    """A registration ready for registry_register_organisations: its arguments (one
    registry_registration, services/registry/schema.sql) and the answer once registered."""

    arguments: tuple[Any, ...]
    answer: dict[str, Any]
    organisation_id: str
    country: str
    names: frozenset[str]  # its name keys: what makes a later registration its namesake
    namesakes: frozenset[str] | None  # the name keys it must not share (None: `distinct`)


def prepare_registration(
    command: domain.RegisterOrganisation,
    *,
    distinct: bool = False,
    metadata: Metadata,
    now: datetime,
) -> Registration | None:
    """What the ordinary path decides when the id is new and there is no namesake, as the
    arguments of one statement; None when that cannot be decided without reading (a parent to
    check, contacts to seal) or the domain refuses the command: the ordinary path decides and
    explains."""
    if command.parent_id is not None or command.contacts:
        return None  # a parent to check, contacts to seal in the transaction
    stream_id = f"{ev.STREAM_ORGANISATION}-{command.organisation_id}"
    try:
        events = domain.register(domain.Organisation(command.organisation_id), command, now=now)
        append = append_arguments(
            stream_type=ev.STREAM_ORGANISATION,
            stream_id=stream_id,
            expected_version=0,
            events=events,
            metadata=metadata,
            now=now,
        )
    except errors.TwinaidError:
        return None  # the ordinary path raises it, after its own checks
    row = projections.new_organisation_row(
        recorded(
            stream_type=ev.STREAM_ORGANISATION,
            stream_id=stream_id,
            expected_version=0,
            events=events,
            metadata=metadata,
            now=now,
        )
    )
    if row is None:
        return None
    names: list[str] = row[-1]  # its name_skeletons: _name_keys(command), computed once
    namesakes = None if distinct else names
    return Registration(
        arguments=(name_locks(command.country, names), command.country, namesakes, *append, *row),
        answer={"organisation_id": command.organisation_id, "version": len(events)},
        organisation_id=command.organisation_id,
        country=command.country,
        names=frozenset(names),
        namesakes=None if namesakes is None else frozenset(namesakes),
    )


async def register_together(
    conn: asyncpg.Connection, registrations: Sequence[Registration]
) -> list[dict[str, Any] | None]:
    """Registrations as one statement (registry_register_organisations): the same locks,
    checks, events and read-model rows as each would have alone, one round trip and one commit
    for all. Each gets its answer, or None when it could not be decided here (a namesake, the
    id taken, or a namesake or repeated id of an earlier item of the same call) and wrote
    nothing. When the statement fails on the server (a concurrent registration of the same id,
    a deadlock) nothing is written and every one gets None; a lost connection is raised, as
    the statement may have committed."""
    # Within one statement no item may be another's namesake or repeat its id: a later one
    # stays out (None) and decides on the ordinary path, after this statement committed.
    together: list[int] = []
    ids: set[str] = set()
    names: set[tuple[str, str]] = set()
    for index, r in enumerate(registrations):
        if r.organisation_id in ids or (
            r.namesakes is not None and any((r.country, n) in names for n in r.namesakes)
        ):
            continue
        together.append(index)
        ids.add(r.organisation_id)
        names.update((r.country, n) for n in r.names)
    answers: list[dict[str, Any] | None] = [None] * len(registrations)
    try:
        outcomes = await conn.fetchval(
            "SELECT registry_register_organisations($1::registry_registration[])",
            [registrations[i].arguments for i in together],
        )
    except asyncpg.PostgresError as exc:
        if isinstance(exc, CONNECTION_LOST):
            raise
        return answers
    for index, outcome in zip(together, outcomes, strict=True):
        if outcome is None:
            answers[index] = registrations[index].answer
    return answers


async def register_in_one_statement(
    conn: asyncpg.Connection,
    command: domain.RegisterOrganisation,
    *,
    distinct: bool = False,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any] | None:
    """`register_organisation` as one statement, atomic without a transaction around it: the
    usual registration is one round trip instead of eight. Same locks, checks, events and
    read-model row. None when it cannot decide alone (a parent to check, a namesake, the id
    taken, a command the domain refuses) and then nothing was written: run
    `register_organisation`, which decides and explains."""
    registration = prepare_registration(command, distinct=distinct, metadata=metadata, now=now)
    if registration is None:
        return None
    return (await register_together(conn, [registration]))[0]
