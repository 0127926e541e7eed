"""A consuming service's own copy of the registry's organisations (pledges and shipments).

A tolerant reader of registry events: it reads only the fields it needs. `applied_events`
counts the registry events applied per organisation, so it equals the organisation's stream
version when every event was applied exactly once.
"""

from __future__ import annotations

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
"""


async def registered(conn: asyncpg.Connection, event: Incoming) -> None:
    """A new organisation. One the directory already holds is registered again only with the
    same name, kind and country (a republished event); anything else would overwrite it, and
    is refused (Implausible: the consumer quarantines it)."""
    d = event.data
    values = (str(d["organisation_id"]), str(d["name"]), str(d["kind"]), str(d["country"]))
    held = await conn.fetchrow(
        "SELECT name, kind, country FROM directory WHERE organisation_id = $1", values[0]
    )
    if held is not None and tuple(held) != values[1:]:
        raise Implausible(
            f"organisation {values[0]} is already registered as {held['name']!r}"
            f" ({held['kind']}, {held['country']}): a second registration may not overwrite it"
        )
    await conn.execute(
        "INSERT INTO directory (organisation_id, name, kind, country, aliases, source_position)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (organisation_id) DO UPDATE"
        " SET aliases = excluded.aliases, source_position = excluded.source_position,"
        " applied_events = directory.applied_events + 1",
        *values,
        [str(a) for a in d.get("aliases", [])],
        event.position,
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
    changes = event.data.get("changes", {})
    await _update(
        conn,
        event,
        "kind = coalesce($3, kind), country = coalesce($4, country)",
        changes.get("kind"),
        changes.get("country"),
    )


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
