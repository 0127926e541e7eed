"""A consuming service's own copy of the registry's organisations (pledges and shipments).

A tolerant reader of registry events: its own models of the fields it reads
(shared/consumed.py), decoded by (type, version) through CODEC, so a new version of a registry
event needs only its upcaster there. `applied_events` counts the registry events applied per
organisation, so it equals the organisation's stream version when every event was applied
exactly once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, ClassVar, Final

import asyncpg
from pydantic import BeforeValidator, Field

from shared import consumed, migrations
from shared.codec import EventCodec, unchanged
from shared.consumer import Handler, Incoming
from shared.errors import ValidationFailed
from shared.incoming import Implausible

# The directory's tables as one text, read from their migrations (shared/migrations/directory/,
# in the order yoyo applies them): what a scratch database of a consuming service applies after
# the shared schema (db.schema_text("shared")), as tests and the audit build theirs.
SCHEMA: Final[str] = migrations.source_sql(migrations.DIRECTORY)


def _coordinates(value: object) -> tuple[float, float] | None:
    """(lat, lon) of the registry's `{"lat", "lon"}`, None for null. Anything else (a string,
    a boolean, NaN, out of range, another key) is Implausible, raised through the model (an
    exception pydantic does not wrap): the registry never sends it, and the consumer
    quarantines the event."""
    if value is None:
        return None
    if isinstance(value, Mapping) and set(value) == {"lat", "lon"}:
        lat, lon = value["lat"], value["lon"]
        if (
            all(isinstance(x, int | float) and not isinstance(x, bool) for x in (lat, lon))
            and -90 <= lat <= 90
            and -180 <= lon <= 180
        ):
            return float(lat), float(lon)
    raise Implausible(f"coordinates {value!r} are not a latitude and longitude in range")


# The fields of the registry's organisation events the directory reads, with the bounds of the
# registry's published schemas (services/registry/events.py)
Id = Annotated[str, Field(max_length=200)]
Name = Annotated[str, Field(max_length=200)]
Label = Annotated[str, Field(max_length=100)]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
Located = Annotated[tuple[float, float] | None, BeforeValidator(_coordinates)]


class Registered(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "registry.organisation-registered"

    organisation_id: Id
    name: Name
    kind: Label
    country: Country
    aliases: list[Name] = Field(default=[], max_length=50)
    coordinates: Located = None


class Renamed(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "registry.organisation-renamed"

    organisation_id: Id
    name: Name
    previous_name: Name


class AliasAdded(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "registry.organisation-alias-added"

    organisation_id: Id
    alias: Name


class Changes(consumed.Tolerant):
    """What a correction changed that the directory keeps; `coordinates` given as null: no
    longer known (left out: unchanged)."""

    kind: Label | None = None
    country: Country | None = None
    coordinates: Located = None


class Corrected(consumed.Tolerant):
    EVENT_TYPE: ClassVar[str] = "registry.organisation-corrected"

    organisation_id: Id
    changes: Changes = Changes()


class ContactsChanged(consumed.Tolerant):
    """Version 2 sealed the contacts (version 1: in clear); the directory keeps neither."""

    EVENT_TYPE: ClassVar[str] = "registry.organisation-contacts-changed"
    SCHEMA_VERSION: ClassVar[int] = 2

    organisation_id: Id


CODEC = EventCodec(
    [Registered, Renamed, AliasAdded, Corrected, ContactsChanged],
    upcasters={(ContactsChanged.EVENT_TYPE, 1): unchanged},  # only the contacts' form changed
)


async def registered(conn: asyncpg.Connection, event: Incoming) -> None:
    """A new organisation. One the directory already holds is registered again only with the
    same name, kind and country (a republished event); anything else would overwrite it, and
    is refused (Implausible: the consumer quarantines it)."""
    org = consumed.read(CODEC, event, Registered)
    values = (org.organisation_id, org.name, org.kind, org.country)
    lat, lon = org.coordinates or (None, None)
    # one statement: a new organisation, or the same one republished; nothing when it would
    # overwrite another (then, rarely, a second to say what the directory holds)
    applied = await conn.fetchval(
        "INSERT INTO directory (organisation_id, name, kind, country, aliases, source_position,"
        " lat, lon) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (organisation_id)"
        " DO UPDATE SET aliases = excluded.aliases, source_position = excluded.source_position,"
        " applied_events = directory.applied_events + 1"
        " WHERE (directory.name, directory.kind, directory.country)"
        " = (excluded.name, excluded.kind, excluded.country)"
        " RETURNING true",
        *values,
        org.aliases,
        event.position,
        lat,
        lon,
    )
    if applied is None:
        held = await conn.fetchrow(
            "SELECT name, kind, country FROM directory WHERE organisation_id = $1", values[0]
        )
        assert held is not None  # the conflict was on its row
        raise Implausible(
            f"organisation {values[0]} is already registered as {held['name']!r}"
            f" ({held['kind']}, {held['country']}): a second registration may not overwrite it"
        )


async def _update(
    conn: asyncpg.Connection,
    event: Incoming,
    organisation_id: str,
    assignments: str,
    *values: object,
) -> None:
    await conn.execute(
        f"UPDATE directory SET {assignments}, source_position = $2,"
        " applied_events = applied_events + 1 WHERE organisation_id = $1",
        organisation_id,
        event.position,
        *values,
    )


async def renamed(conn: asyncpg.Connection, event: Incoming) -> None:
    org = consumed.read(CODEC, event, Renamed)
    await _update(
        conn,
        event,
        org.organisation_id,
        "name = $3, aliases = array_append(aliases, $4)",
        org.name,
        org.previous_name,
    )


async def alias_added(conn: asyncpg.Connection, event: Incoming) -> None:
    org = consumed.read(CODEC, event, AliasAdded)
    await _update(
        conn, event, org.organisation_id, "aliases = array_append(aliases, $3)", org.alias
    )


async def corrected(conn: asyncpg.Connection, event: Incoming) -> None:
    """Kind, country and coordinates as corrected (coordinates null: no longer known)."""
    org = consumed.read(CODEC, event, Corrected)
    changes = org.changes
    located = "coordinates" in changes.model_fields_set
    lat, lon = changes.coordinates or (None, None)
    await _update(
        conn,
        event,
        org.organisation_id,
        "kind = coalesce($3, kind), country = coalesce($4, country),"
        " lat = CASE WHEN $5 THEN $6 ELSE lat END, lon = CASE WHEN $5 THEN $7 ELSE lon END",
        changes.kind,
        changes.country,
        located,
        lat,
        lon,
    )


async def locations(
    conn: asyncpg.Connection, organisation_ids: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Where the registry says each of these organisations is, `{"lat", "lon"}`; one it gives
    no coordinates for (or never announced) is not in the answer."""
    rows = await conn.fetch(
        "SELECT organisation_id, lat, lon FROM directory"
        " WHERE organisation_id = ANY($1::text[]) AND lat IS NOT NULL AND lon IS NOT NULL",
        list(organisation_ids),
    )
    return {r["organisation_id"]: {"lat": r["lat"], "lon": r["lon"]} for r in rows}


async def counted(conn: asyncpg.Connection, event: Incoming) -> None:
    """Events of an organisation the directory keeps nothing of (contacts: personal data)."""
    org = consumed.read(CODEC, event, ContactsChanged)
    await _update(conn, event, org.organisation_id, "name = name")


HANDLERS: dict[str, Handler] = {
    Registered.EVENT_TYPE: registered,
    Renamed.EVENT_TYPE: renamed,
    AliasAdded.EVENT_TYPE: alias_added,
    Corrected.EVENT_TYPE: corrected,
    ContactsChanged.EVENT_TYPE: counted,
}


def unknown_organisation(organisation_id: str, field: str) -> ValidationFailed:
    """422 naming `field`: the registry never announced the organisation it names."""
    return ValidationFailed(
        f"organisation {organisation_id} is not in the registry",
        extra={"invalid_params": [{"name": field, "reason": "unknown organisation"}]},
    )


def check_known(organisations: Mapping[str, str], known: Collection[str]) -> None:
    """ValidationFailed for the first field, in the mapping's order, whose organisation is
    not among `known`."""
    for field, organisation_id in organisations.items():
        if organisation_id not in known:
            raise unknown_organisation(organisation_id, field)


async def known(conn: asyncpg.Connection, organisation_ids: Collection[str]) -> set[str]:
    """Those of the organisations the registry announced, in one query."""
    rows = await conn.fetch(
        "SELECT organisation_id FROM directory WHERE organisation_id = ANY($1::text[])",
        sorted(set(organisation_ids)),
    )
    return {r["organisation_id"] for r in rows}


async def require(conn: asyncpg.Connection, organisations: Mapping[str, str]) -> None:
    """Each field's organisation announced by the registry (one query for them all), else
    ValidationFailed naming the first field that names one it never announced."""
    check_known(organisations, await known(conn, organisations.values()))
