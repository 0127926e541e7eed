"""Registry events -> read-model rows (idempotent upserts)."""

from __future__ import annotations

import asyncpg

from services.registry import domain
from services.registry import events as ev
from shared.events import RecordedEvent
from shared.projections import Projection


async def _registered(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    d = event.data
    names = [d["name"], *d.get("aliases", [])]
    await conn.execute(
        """
        INSERT INTO organisations (organisation_id, name, kind, country, region, aliases,
                                   search_names, version, registered_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
        ON CONFLICT (organisation_id) DO UPDATE SET
            name = excluded.name, kind = excluded.kind, country = excluded.country,
            region = excluded.region, aliases = excluded.aliases,
            search_names = excluded.search_names, version = excluded.version,
            updated_at = excluded.updated_at
        """,
        d["organisation_id"],
        d["name"],
        d["kind"],
        d["country"],
        d.get("region"),
        d.get("aliases", []),
        [domain.fold_name(n) for n in names],
        event.stream_version,
        event.occurred_at,
    )


ORGANISATIONS = Projection(
    name="organisations",
    tables=("organisations",),
    handlers={ev.ORGANISATION_REGISTERED: _registered},
)

ALL = (ORGANISATIONS,)
