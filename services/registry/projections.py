"""Registry events -> read-model rows (idempotent upserts keyed by stream and version)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.registry import domain, privacy
from services.registry import events as ev
from shared.events import RecordedEvent
from shared.projections import Projection


def _search_names(names: list[str]) -> list[str]:
    return sorted({domain.fold_name(n) for n in names})


def name_skeletons(names: list[str]) -> list[str]:
    """The name_skeletons column: every key of every name (domain.name_keys)."""
    return sorted({k for n in names for k in domain.name_keys(n)})


REGISTERED_SQL = """
    INSERT INTO organisations (organisation_id, name, name_folded, kind, country, region,
                               aliases, search_names, coordinates, parent_id, version,
                               registered_at, updated_at, name_skeletons)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $12, $13)
    ON CONFLICT (organisation_id) DO NOTHING
"""


def _registered_values(event: RecordedEvent) -> tuple[Any, ...]:
    """$1 .. $13 of REGISTERED_SQL."""
    d: ev.OrganisationRegistered = ev.CODEC.decode(event).payload
    names = [d.name, *d.aliases]
    return (
        d.organisation_id,
        d.name,
        domain.fold_name(d.name),
        d.kind,
        d.country,
        d.region,
        d.aliases,
        _search_names(names),
        json.dumps(d.coordinates.model_dump() if d.coordinates else None),
        d.parent_id,
        event.stream_version,
        event.recorded_at,
        name_skeletons(names),
    )


async def _registered(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await conn.execute(REGISTERED_SQL, *_registered_values(event))


async def _directory(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    """The organisations' events in order, each as its handler applies it, but the
    registrations next to each other in one round trip (a batch of them: shared/group_commit.py;
    a rebuild)."""
    runs = itertools.groupby(events, key=lambda e: e.event_type == ev.ORGANISATION_REGISTERED)
    for registrations, run in runs:
        if registrations:
            await conn.executemany(REGISTERED_SQL, [_registered_values(e) for e in run])
        else:
            for event in run:
                await _changed(conn, event)


def _contacts(
    payload: ev.OrganisationContactsChanged | ev.OrganisationContactsChangedV1,
) -> list[dict[str, Any]]:
    """As recorded: sealed, or in clear in a log older than sealing."""
    return [c.model_dump(mode="json", exclude_unset=True) for c in payload.contacts]


async def _changed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    """Every later organisation event: recompute the row from the event's own facts."""
    payload = ev.CODEC.decode(event).payload
    row = await conn.fetchrow(
        "SELECT name, aliases, version FROM organisations WHERE organisation_id = $1",
        payload.organisation_id,
    )
    if row is None or row["version"] >= event.stream_version:
        return  # already applied
    name, aliases = row["name"], list(row["aliases"])
    sets: dict[str, object] = {}
    match payload:
        case ev.OrganisationRenamed():
            name, aliases = payload.name, [*aliases, payload.previous_name]
        case ev.OrganisationAliasAdded():
            aliases = [*aliases, payload.alias]
        case ev.OrganisationCorrected():
            sets = dict(payload.changes)
            if "coordinates" in sets:
                sets["coordinates"] = json.dumps(sets["coordinates"])
        case ev.OrganisationContactsChanged() | ev.OrganisationContactsChangedV1():
            sets = {"contacts": json.dumps(_contacts(payload))}
    columns = [
        "name",
        "name_folded",
        "aliases",
        "search_names",
        "name_skeletons",
        "version",
        "updated_at",
        *sets,
    ]
    values = [
        name,
        domain.fold_name(name),
        aliases,
        _search_names([name, *aliases]),
        name_skeletons([name, *aliases]),
        event.stream_version,
        event.recorded_at,
        *sets.values(),
    ]
    assignments = ", ".join(
        f"{c} = ${i + 2}" + ("::jsonb" if c in ("coordinates", "contacts") else "")
        for i, c in enumerate(columns)
    )
    await conn.execute(
        f"UPDATE organisations SET {assignments} WHERE organisation_id = $1",
        payload.organisation_id,
        *values,
    )


async def fill_name_skeletons(conn: asyncpg.Connection) -> int:
    """Computes name_skeletons where it is NULL (rows written before the column existed);
    returns how many rows it filled. Safe to run by several processes at once."""
    rows = await conn.fetch(
        "SELECT organisation_id, name, aliases FROM organisations WHERE name_skeletons IS NULL"
    )
    if not rows:
        return 0
    keys = {r["organisation_id"]: name_skeletons([r["name"], *r["aliases"]]) for r in rows}
    await conn.execute(
        "UPDATE organisations o"
        " SET name_skeletons = ARRAY(SELECT jsonb_array_elements_text(f.value))"
        " FROM jsonb_each($1::jsonb) AS f"
        " WHERE o.organisation_id = f.key AND o.name_skeletons IS NULL",  # renamed meanwhile
        json.dumps(keys),
    )
    return len(rows)


def _entry(event: RecordedEvent, evidence: ev.Evidence | None, **fields: str) -> dict[str, Any]:
    """A line of a partnership's history or agreements: what, when, on what evidence, by whom."""
    return {
        **fields,
        "occurred_at": event.occurred_at.isoformat(),
        "evidence": None if evidence is None else evidence.model_dump(mode="json"),
        "actor": event.metadata.actor,
    }


async def _proposed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d: ev.PartnershipProposed = ev.CODEC.decode(event).payload
    history = [_entry(event, d.evidence, status="proposed")]
    await conn.execute(
        """
        INSERT INTO partnerships (partnership_id, org_a, org_b, kind, programme, phase, fields,
                                  status, proposed_at, changed_at, history, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, 'proposed', $8, $8, $9::jsonb, $10)
        ON CONFLICT (partnership_id) DO NOTHING
        """,
        d.partnership_id,
        d.organisations[0],
        d.organisations[1],
        d.kind,
        d.programme,
        d.phase,
        d.fields,
        event.occurred_at,
        json.dumps(history),
        event.stream_version,
    )


async def _status_changed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d: ev.PartnershipStatusChanged = ev.CODEC.decode(event).payload
    entry = _entry(event, d.evidence, status=d.to_status)
    await conn.execute(
        """
        UPDATE partnerships SET status = $2, changed_at = $3, version = $4,
            history = history || $5::jsonb,
            signed_at = CASE WHEN $2 = 'signed' THEN coalesce(signed_at, $3) ELSE signed_at END
        WHERE partnership_id = $1 AND version < $4
        """,
        d.partnership_id,
        d.to_status,
        event.occurred_at,
        event.stream_version,
        json.dumps([entry]),
    )


async def _agreement_recorded(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d: ev.PartnershipAgreementRecorded = ev.CODEC.decode(event).payload
    entry = _entry(event, d.evidence, organisation_id=d.organisation_id, to_status=d.to_status)
    await conn.execute(
        "UPDATE partnerships SET agreements = agreements || $2::jsonb, version = $3"
        " WHERE partnership_id = $1 AND version < $3",
        d.partnership_id,
        json.dumps([entry]),
        event.stream_version,
    )


DIRECTORY = Projection(
    name="organisations",
    tables=("organisations",),
    handlers={
        ev.ORGANISATION_REGISTERED: _registered,
        ev.ORGANISATION_RENAMED: _changed,
        ev.ORGANISATION_ALIAS_ADDED: _changed,
        ev.ORGANISATION_CORRECTED: _changed,
        ev.ORGANISATION_CONTACTS_CHANGED: _changed,
    },
    batch=_directory,
)

PARTNERSHIPS = Projection(
    name="partnerships",
    tables=("partnerships",),
    handlers={
        ev.PARTNERSHIP_PROPOSED: _proposed,
        ev.PARTNERSHIP_STATUS_CHANGED: _status_changed,
        ev.PARTNERSHIP_AGREEMENT_RECORDED: _agreement_recorded,
    },
)

# which events hold each person (privacy_occurrences): access requests, retention
PRIVACY = privacy.projection()

ALL = (DIRECTORY, PARTNERSHIPS, PRIVACY)
