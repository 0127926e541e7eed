"""Live convoy updates: what the stream sends (api/updates.py serves it, woken by its signal).

An update's id is the global log position of the convoy event it reports. Positions go only to
committed events, in commit-safe order (the sealer, shared/event_store.py), so a screen that
resumes after position N misses nothing and sees nothing twice. Streams wake on NOTIFY
`twinaid_sealed` and poll anyway, so a lost notification costs a second at most.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.shipments import auth, queries
from services.shipments import events as ev
from shared.auth import Principal


@dataclass(frozen=True, slots=True)
class Filter:
    caller: Principal
    convoy_id: str | None = None
    organisation: str | None = None

    def admits(self, row: asyncpg.Record) -> bool:
        if row["convoy_id"] is None:
            return False
        if self.convoy_id is not None and row["convoy_id"] != self.convoy_id:
            return False
        parties = queries.parties_of(row)
        if self.organisation is not None and self.organisation not in parties.involved:
            return False
        return auth.reads_everything(self.caller) or self.caller.organisation in (parties.involved)


async def head(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT position FROM sealer_state"))


async def updates_after(
    conn: asyncpg.Connection, position: int, who: Filter, *, limit: int = 200
) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """(updates the filter admits, the last position looked at) after `position`."""
    rows = await conn.fetch(
        f"""
        SELECT c.position, e.event_type, e.occurred_at, e.recorded_at, e.data,
               v.convoy_id, v.origin_id, v.destination_id, v.carrier_id, v.donors, v.document
        FROM event_chain c JOIN events e ON e.event_id = c.event_id
        LEFT JOIN convoys v ON e.stream_type = '{ev.STREAM_CONVOY}'
                           AND v.convoy_id = e.data ->> 'convoy_id'
        WHERE c.position > $1 ORDER BY c.position LIMIT $2
        """,
        position,
        limit,
    )
    out = []
    for row in rows:
        if not who.admits(row):
            continue
        parties = queries.parties_of(row)
        document = json.loads(row["document"])
        donors = auth.line_donors(document)
        data = auth.seen_by(who.caller, parties, json.loads(row["data"]), donors=donors)
        convoy = auth.seen_by(who.caller, parties, document, donors=donors)
        out.append(
            (
                row["position"],
                {
                    "position": row["position"],
                    "convoy_id": row["convoy_id"],
                    "event_type": row["event_type"],
                    "occurred_at": row["occurred_at"].isoformat(),
                    "recorded_at": row["recorded_at"].isoformat(),
                    "data": data,
                    "convoy": queries.summary(convoy),
                },
            )
        )
    opened = await auth.revealed(conn, [update for _, update in out])
    out = [(pos, update) for (pos, _), update in zip(out, opened, strict=True)]
    return out, (rows[-1]["position"] if rows else position)
