"""Registry use cases: load the stream, decide, append, project. The caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.registry import domain, projections
from services.registry import events as ev
from shared import projections as proj
from shared.event_store import PostgresEventStore, fold
from shared.events import Metadata


async def load_organisation(
    conn: asyncpg.Connection, organisation_id: str, *, as_of: datetime | None = None
) -> domain.Organisation:
    history = await PostgresEventStore(conn).read_stream(organisation_id, as_of=as_of)
    return fold(history, domain.Organisation(organisation_id), domain.evolve)


async def register_organisation(
    conn: asyncpg.Connection,
    command: domain.RegisterOrganisation,
    *,
    metadata: Metadata,
    now: datetime,
) -> dict[str, Any]:
    state = await load_organisation(conn, command.organisation_id)
    new_events = domain.register(state, command, now=now)
    recorded = await PostgresEventStore(conn).append(
        stream_type=ev.STREAM_ORGANISATION,
        stream_id=command.organisation_id,
        expected_version=state.version,
        events=new_events,
        metadata=metadata,
        now=now,
    )
    await proj.project(conn, projections.ALL, recorded)
    return {"organisation_id": command.organisation_id, "version": recorded[-1].stream_version}
