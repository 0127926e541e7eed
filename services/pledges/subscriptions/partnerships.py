"""The pledges service's own copy of the registry's partnerships: enough to check a pledge made
under one and to filter reports by partnership or programme. A tolerant reader of registry
events, kept by the consumer (like shared/directory.py); not rebuilt from this service's log."""

from __future__ import annotations

import asyncpg

from shared.consumer import Handler, Incoming


async def proposed(conn: asyncpg.Connection, event: Incoming) -> None:
    d = event.data
    a, b = (str(o) for o in d["organisations"])
    await conn.execute(
        "INSERT INTO partnership_directory (partnership_id, org_a, org_b, kind, programme,"
        " status, source_position) VALUES ($1, $2, $3, $4, $5, 'proposed', $6)"
        # a later status change may have arrived first: keep its status, add the programme
        " ON CONFLICT (partnership_id) DO UPDATE SET programme = excluded.programme",
        str(d["partnership_id"]),
        a,
        b,
        str(d["kind"]),
        d.get("programme"),
        event.position,
    )


async def status_changed(conn: asyncpg.Connection, event: Incoming) -> None:
    d = event.data
    a, b = (str(o) for o in d["organisations"])
    # a change may overtake its proposal (catching up from the feed): the row starts from it
    await conn.execute(
        "INSERT INTO partnership_directory (partnership_id, org_a, org_b, kind, status,"
        " source_position) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (partnership_id) DO UPDATE SET status = excluded.status,"
        " source_position = excluded.source_position"
        " WHERE partnership_directory.source_position < excluded.source_position",
        str(d["partnership_id"]),
        a,
        b,
        str(d["kind"]),
        str(d["to_status"]),
        event.position,
    )


HANDLERS: dict[str, Handler] = {
    "registry.partnership-proposed": proposed,
    "registry.partnership-status-changed": status_changed,
}
