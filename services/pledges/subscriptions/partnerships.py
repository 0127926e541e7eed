"""The pledges service's own copy of the registry's partnerships: enough to check a pledge made
under one and to filter reports by partnership or programme. A tolerant reader of registry
events, kept by the consumer (like shared/directory.py); not rebuilt from this service's log."""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel, ConfigDict

from shared.consumer import Handler, Incoming


class _Partnership(BaseModel):
    """The fields of `registry.partnership-proposed` (and -status-changed) pledges reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    partnership_id: str
    organisations: tuple[str, str]
    kind: str
    programme: str | None = None
    to_status: str = ""


async def _keep(
    conn: asyncpg.Connection, event: Incoming, *, update: str, status: str | None = None
) -> None:
    """The partnership's row as the event gives it (`status`, else the one it changed to), or
    `update` (SQL) of the row already kept."""
    p = _Partnership.model_validate(event.data)
    await conn.execute(
        "INSERT INTO partnership_directory (partnership_id, org_a, org_b, kind, programme,"
        " status, source_position) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        f" ON CONFLICT (partnership_id) DO UPDATE SET {update}",
        p.partnership_id,
        *p.organisations,
        p.kind,
        p.programme,
        status or p.to_status,
        event.position,
    )


async def proposed(conn: asyncpg.Connection, event: Incoming) -> None:
    # a later status change may have arrived first: keep its status, add the programme
    await _keep(conn, event, update="programme = excluded.programme", status="proposed")


async def status_changed(conn: asyncpg.Connection, event: Incoming) -> None:
    # a change may overtake its proposal (catching up from the feed): the row starts from it
    await _keep(
        conn,
        event,
        update="status = excluded.status, source_position = excluded.source_position"
        " WHERE partnership_directory.source_position < excluded.source_position",
    )


HANDLERS: dict[str, Handler] = {
    "registry.partnership-proposed": proposed,
    "registry.partnership-status-changed": status_changed,
}
