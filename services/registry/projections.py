"""Registry events -> read-model rows (idempotent upserts keyed by stream and version).

Each projection takes any number of events at once (one, a batch of registrations, a rebuild's
page of thousands): it reads the rows they touch in one statement, folds the events into them
in order as one event at a time would, and writes the rows that changed in one statement."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.registry import domain, privacy
from services.registry import events as ev
from services.registry.domain.organisations import CORRECTABLE, renamed_aliases, with_alias
from shared.events import RecordedEvent
from shared.projections import Projection, fold_rows, write_rows


def _search_names(names: list[str]) -> list[str]:
    return sorted({domain.fold_name(n) for n in names})


def name_skeletons(names: list[str]) -> list[str]:
    """The name_skeletons column: every key of every name (domain.name_keys)."""
    return sorted({k for n in names for k in domain.name_keys(n)})


# the organisations row, column -> type (shared.projections.write_rows)
ORGANISATION_COLUMNS = {
    "organisation_id": "text",
    "name": "text",
    "name_folded": "text",
    "kind": "text",
    "country": "text",
    "region": "text",
    "aliases": "text[]",
    "search_names": "text[]",
    "coordinates": "jsonb",
    "parent_id": "text",
    "version": "int",
    "registered_at": "timestamptz",
    "updated_at": "timestamptz",
    "name_skeletons": "text[]",
    "contacts": "jsonb",
}
# what an organisation's later events set besides its names: the correctable fields, contacts
_SETTABLE = frozenset(CORRECTABLE) | {"contacts"}
_UPSERT = (
    "ON CONFLICT (organisation_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in ORGANISATION_COLUMNS if c != "organisation_id")
    + " WHERE organisations.version < excluded.version"
)


def _registered(event: RecordedEvent, d: Any) -> dict[str, Any] | None:
    """The row an organisation's registration makes (its names' columns: `_named`)."""
    if not isinstance(d, ev.OrganisationRegistered):
        return None
    return {
        "organisation_id": d.organisation_id,
        "name": d.name,
        "kind": d.kind,
        "country": d.country,
        "region": d.region,
        "aliases": list(d.aliases),
        "coordinates": json.dumps(d.coordinates.model_dump() if d.coordinates else None),
        "parent_id": d.parent_id,
        "version": event.stream_version,
        "registered_at": event.recorded_at,
        "updated_at": event.recorded_at,
        "contacts": "[]",
    }


def _contacts(
    payload: ev.OrganisationContactsChanged | ev.OrganisationContactsChangedV1,
) -> list[dict[str, Any]]:
    """As recorded: sealed, or in clear in a log older than sealing."""
    return [c.model_dump(mode="json", exclude_unset=True) for c in payload.contacts]


def _changed(row: dict[str, Any], event: RecordedEvent, payload: Any) -> None:
    """Every later organisation event, into the row as it stood before it."""
    match payload:
        case ev.OrganisationRenamed():
            row["aliases"] = list(
                renamed_aliases(row["aliases"], payload.previous_name, payload.name)
            )
            row["name"] = payload.name
        case ev.OrganisationAliasAdded():
            row["aliases"] = list(with_alias(row["aliases"], payload.alias, row["name"]))
        case ev.OrganisationCorrected():
            unknown = set(payload.changes) - _SETTABLE
            if unknown:
                raise ValueError(f"{event.event_id}: no column for {sorted(unknown)}")
            for column, value in payload.changes.items():
                row[column] = json.dumps(value) if column == "coordinates" else value
        case ev.OrganisationContactsChanged() | ev.OrganisationContactsChangedV1():
            row["contacts"] = json.dumps(_contacts(payload))
    row["version"] = event.stream_version
    row["updated_at"] = event.recorded_at


def _named(row: dict[str, Any]) -> tuple[object, ...]:
    """The row in ORGANISATION_COLUMNS' order, its names' columns computed from its name and
    aliases."""
    names = [row["name"], *row["aliases"]]
    row["name_folded"] = domain.fold_name(row["name"])
    row["search_names"] = _search_names(names)
    row["name_skeletons"] = name_skeletons(names)
    return tuple(row[c] for c in ORGANISATION_COLUMNS)


async def _directory(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    """The organisations' events in order (shared.projections.fold_rows): each organisation's
    row read once, every event of it folded in (a registration makes the row unless it exists;
    a later event applies only to a row older than it), and the rows that changed written in
    one statement. The same rows as one event at a time, in two statements however many
    events: a batch of registrations (shared/group_commit.py), a rebuild's page."""
    rows = await fold_rows(
        conn,
        [(e, ev.CODEC.decode(e).payload) for e in events],
        key=lambda payload: payload.organisation_id,
        read="SELECT organisation_id, name, kind, country, region, aliases,"
        " coordinates::text AS coordinates, parent_id, version, registered_at, updated_at,"
        " contacts::text AS contacts"
        " FROM organisations WHERE organisation_id = ANY($1::text[])",
        opened=_registered,
        evolve=_changed,
    )
    await write_rows(
        conn, "organisations", ORGANISATION_COLUMNS, [_named(r) for r in rows], _UPSERT
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


PARTNERSHIP_COLUMNS = {
    "partnership_id": "text",
    "org_a": "text",
    "org_b": "text",
    "kind": "text",
    "programme": "text",
    "phase": "text",
    "fields": "text[]",
    "status": "text",
    "proposed_at": "timestamptz",
    "signed_at": "timestamptz",
    "changed_at": "timestamptz",
    "version": "int",
    "history": "jsonb",  # a row already written: the entries to add to it
    "agreements": "jsonb",  # the same
}
_PARTNERSHIP_UPSERT = """
    ON CONFLICT (partnership_id) DO UPDATE SET
        status = excluded.status, signed_at = excluded.signed_at,
        changed_at = excluded.changed_at, version = excluded.version,
        history = partnerships.history || excluded.history,
        agreements = partnerships.agreements || excluded.agreements
    WHERE partnerships.version < excluded.version
"""


def _proposed(event: RecordedEvent, d: Any) -> dict[str, Any] | None:
    """The row a partnership's proposal makes (its history and agreements as lists)."""
    if not isinstance(d, ev.PartnershipProposed):
        return None
    return {
        "partnership_id": d.partnership_id,
        "org_a": d.organisations[0],
        "org_b": d.organisations[1],
        "kind": d.kind,
        "programme": d.programme,
        "phase": d.phase,
        "fields": d.fields,
        "status": "proposed",
        "proposed_at": event.occurred_at,
        "signed_at": None,
        "changed_at": event.occurred_at,
        "version": event.stream_version,
        "history": [_entry(event, d.evidence, status="proposed")],
        "agreements": [],
    }


def _partnership_changed(row: dict[str, Any], event: RecordedEvent, d: Any) -> None:
    match d:
        case ev.PartnershipStatusChanged():
            row["status"] = d.to_status
            row["changed_at"] = event.occurred_at
            if d.to_status == "signed" and row["signed_at"] is None:
                row["signed_at"] = event.occurred_at
            row["history"].append(_entry(event, d.evidence, status=d.to_status))
        case ev.PartnershipAgreementRecorded():
            row["agreements"].append(
                _entry(event, d.evidence, organisation_id=d.organisation_id, to_status=d.to_status)
            )
    row["version"] = event.stream_version


async def _partnerships(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    """The partnerships' events in order, as `_directory` takes the organisations': each row
    read once (its history and agreements are only added to, so not read), the events folded
    in, the rows that changed written in one statement."""
    rows = await fold_rows(
        conn,
        [(e, ev.CODEC.decode(e).payload) for e in events],
        key=lambda payload: payload.partnership_id,
        read="SELECT partnership_id, org_a, org_b, kind, programme, phase, fields, status,"
        " proposed_at, signed_at, changed_at, version"
        " FROM partnerships WHERE partnership_id = ANY($1::text[])",
        opened=_proposed,
        evolve=_partnership_changed,
        start=lambda r: dict(r) | {"history": [], "agreements": []},
    )
    await write_rows(
        conn,
        "partnerships",
        PARTNERSHIP_COLUMNS,
        [
            tuple(
                json.dumps(row[c]) if c in ("history", "agreements") else row[c]
                for c in PARTNERSHIP_COLUMNS
            )
            for row in rows
        ],
        _PARTNERSHIP_UPSERT,
    )


DIRECTORY = Projection.batched(
    "organisations",
    ("organisations",),
    (
        ev.ORGANISATION_REGISTERED,
        ev.ORGANISATION_RENAMED,
        ev.ORGANISATION_ALIAS_ADDED,
        ev.ORGANISATION_CORRECTED,
        ev.ORGANISATION_CONTACTS_CHANGED,
    ),
    _directory,
)

PARTNERSHIPS = Projection.batched(
    "partnerships",
    ("partnerships",),
    (ev.PARTNERSHIP_PROPOSED, ev.PARTNERSHIP_STATUS_CHANGED, ev.PARTNERSHIP_AGREEMENT_RECORDED),
    _partnerships,
)

# which events hold each person (privacy_occurrences): access requests, retention
PRIVACY = privacy.projection()

ALL = (DIRECTORY, PARTNERSHIPS, PRIVACY)
