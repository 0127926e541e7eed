"""A consuming service's own copy of the registry's organisations (pledges and shipments).

A tolerant reader of registry events: it reads only the fields it needs. `applied_events`
counts the registry events applied per organisation, so it equals the organisation's stream
version when every event was applied exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from shared.consumer import Handler, Incoming
from shared.errors import ValidationFailed
from shared.incoming import Implausible

SCHEMA = """
CREATE TABLE IF NOT EXISTS directory (
    organisation_id text PRIMARY KEY,
    name            text NOT NULL,
    kind            text NOT NULL,
    country         text NOT NULL,
    source_position bigint NOT NULL,
    applied_events  integer NOT NULL DEFAULT 1
);
ALTER TABLE directory ADD COLUMN IF NOT EXISTS aliases text[] NOT NULL DEFAULT '{}';
-- where the organisation is, WGS 84 degrees (the registry's `coordinates`); both or neither
ALTER TABLE directory ADD COLUMN IF NOT EXISTS lat double precision;
ALTER TABLE directory ADD COLUMN IF NOT EXISTS lon double precision;
"""


def _coordinates(value: object) -> tuple[float | None, float | None]:
    """(lat, lon) of the registry's `{"lat", "lon"}`, (None, None) for null. Anything else
    (a string, a boolean, NaN, out of range) is Implausible: the registry never sends it."""
    if value is None:
        return None, None
    if isinstance(value, Mapping) and set(value) == {"lat", "lon"}:
        lat, lon = value["lat"], value["lon"]
        if (
            all(isinstance(x, int | float) and not isinstance(x, bool) for x in (lat, lon))
            and -90 <= lat <= 90
            and -180 <= lon <= 180
        ):
            return float(lat), float(lon)
    raise Implausible(f"coordinates {value!r} are not a latitude and longitude in range")


async def registered(conn: asyncpg.Connection, event: Incoming) -> None:
    """A new organisation. One the directory already holds is registered again only with the
    same name, kind and country (a republished event); anything else would overwrite it, and
    is refused (Implausible: the consumer quarantines it)."""
    d = event.data
    values = (str(d["organisation_id"]), str(d["name"]), str(d["kind"]), str(d["country"]))
    lat, lon = _coordinates(d.get("coordinates"))
    held = await conn.fetchrow(
        "SELECT name, kind, country FROM directory WHERE organisation_id = $1", values[0]
    )
    if held is not None and tuple(held) != values[1:]:
        raise Implausible(
            f"organisation {values[0]} is already registered as {held['name']!r}"
            f" ({held['kind']}, {held['country']}): a second registration may not overwrite it"
        )
    await conn.execute(
        "INSERT INTO directory (organisation_id, name, kind, country, aliases, source_position,"
        " lat, lon) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (organisation_id)"
        " DO UPDATE SET aliases = excluded.aliases, source_position = excluded.source_position,"
        " applied_events = directory.applied_events + 1",
        *values,
        [str(a) for a in d.get("aliases", [])],
        event.position,
        lat,
        lon,
    )


async def _update(
    conn: asyncpg.Connection, event: Incoming, assignments: str, *values: object
) -> None:
    await conn.execute(
        f"UPDATE directory SET {assignments}, source_position = $2,"
        " applied_events = applied_events + 1 WHERE organisation_id = $1",
        str(event.data["organisation_id"]),
        event.position,
        *values,
    )


async def renamed(conn: asyncpg.Connection, event: Incoming) -> None:
    await _update(
        conn,
        event,
        "name = $3, aliases = array_append(aliases, $4)",
        str(event.data["name"]),
        str(event.data["previous_name"]),
    )


async def alias_added(conn: asyncpg.Connection, event: Incoming) -> None:
    await _update(conn, event, "aliases = array_append(aliases, $3)", str(event.data["alias"]))


async def corrected(conn: asyncpg.Connection, event: Incoming) -> None:
    """Kind, country and coordinates as corrected (coordinates null: no longer known)."""
    changes = event.data.get("changes", {})
    located = "coordinates" in changes
    lat, lon = _coordinates(changes["coordinates"]) if located else (None, None)
    await _update(
        conn,
        event,
        "kind = coalesce($3, kind), country = coalesce($4, country),"
        " lat = CASE WHEN $5 THEN $6 ELSE lat END, lon = CASE WHEN $5 THEN $7 ELSE lon END",
        changes.get("kind"),
        changes.get("country"),
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
    await _update(conn, event, "name = name")


HANDLERS: dict[str, Handler] = {
    "registry.organisation-registered": registered,
    "registry.organisation-renamed": renamed,
    "registry.organisation-alias-added": alias_added,
    "registry.organisation-corrected": corrected,
    "registry.organisation-contacts-changed": counted,
}


async def require(conn: asyncpg.Connection, organisation_id: str, *, field: str) -> str:
    """The organisation's name; ValidationFailed if the registry never announced it."""
    name = await conn.fetchval(
        "SELECT name FROM directory WHERE organisation_id = $1", organisation_id
    )
    if name is None:
        raise ValidationFailed(
            f"organisation {organisation_id} is not in the registry",
            extra={"invalid_params": [{"name": field, "reason": "unknown organisation"}]},
        )
    return str(name)
