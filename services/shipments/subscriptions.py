"""Reactions to other services' events: {upstream: {event type: handler}}.

Each handler reads only the fields it needs (a tolerant reader), so producers can evolve.
"""

from __future__ import annotations

import asyncpg

from shared.consumer import Handler, Incoming


async def organisation_registered(conn: asyncpg.Connection, event: Incoming) -> None:
    d = event.data
    await conn.execute(
        "INSERT INTO directory (organisation_id, name, kind, country, source_position)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organisation_id) DO UPDATE"
        " SET name = excluded.name, kind = excluded.kind, country = excluded.country,"
        " source_position = excluded.source_position,"
        " applied_events = directory.applied_events + 1",
        str(d["organisation_id"]),
        str(d["name"]),
        str(d["kind"]),
        str(d["country"]),
        event.position,
    )


HANDLERS: dict[str, dict[str, Handler]] = {
    "registry": {"registry.organisation-registered": organisation_registered},
    "pledges": {},
}
