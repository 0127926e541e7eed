"""The people a convoy names, sealed (shared/privacy.py): drivers, persons holding the goods,
who signed for the delivery.

Each is sealed in the write path (handlers/sealing.py), in the transaction, before the domain
decides, as recorded by the organisation whose key typed them (services/shipments/auth.py
`recorder`: the origin's or the carrier's logistics key planning the drivers, any road writer
naming the persons of a custody at dispatch or hand-off, the recipient the receiver who
confirmed the delivery); that organisation finds, exports and erases them. A registry
administrator acting for others records drivers and custody persons as the carrier's, the
receiver as the recipient's. Names, phones and licence numbers are personal; a driver's
vehicle and a person's role stay in clear. Version 1 events, persons in clear, are sealed the
same way by the privacy migration (seal_v1, here: it depends on the handlers' sealing and the
convoys' repository, never the other way round).

Retention (`RETENTION_DUE`, the worker's): a person is erased once every convoy naming them was
closed or cancelled longer ago than the retention period.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from services.shipments import auth, domain
from services.shipments import events as ev
from services.shipments.handlers import CONVOYS
from services.shipments.handlers.sealing import (
    PARTIES,
    in_clear,
    seal_drivers,
    seal_parties,
    seal_receiver,
)
from shared import privacy, service_retention

# the road entries naming persons: their kind and the fields sent (services/shipments/requests.py)
ENTRIES = {
    ev.CONVOY_DISPATCHED: ("dispatch", ("note", "custody")),
    ev.CUSTODY_HANDED_OFF: ("custody_handoff", ("note", "from_party", "to_party")),
}

# The event types that carry persons (privacy_occurrences, the export, retention)
PERSONAL_TYPES = ev.PERSONAL_TYPES
PROJECTION = privacy.projection(PERSONAL_TYPES)

# Due: persons named only in convoys closed or cancelled before the cut-off
# (shared/service_retention.py)
RETENTION_DUE = service_retention.due_once_ended(
    joins=f"LEFT JOIN convoys c ON o.stream_id = '{ev.STREAM_CONVOY}-' || c.convoy_id",
    still_held="""(c.convoy_id IS NULL OR c.status NOT IN ('closed', 'cancelled')
             OR coalesce((c.document ->> 'closed_at')::timestamptz,
                         (c.document ->> 'cancelled_at')::timestamptz) IS NULL
             OR coalesce((c.document ->> 'closed_at')::timestamptz,
                         (c.document ->> 'cancelled_at')::timestamptz) >= $1)""",
)


async def _written(
    conn: asyncpg.Connection, convoy_id: str, event_type: str, entry_id: str | None = None
) -> asyncpg.Record | None:
    """The first event of `event_type` of the convoy (the road entry `entry_id`'s): its data,
    the organisation of the key that wrote it and when it occurred."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT data, metadata ->> 'organisation' AS organisation, occurred_at FROM events"
        " WHERE stream_id = $1 AND event_type = $2"
        " AND ($3::text IS NULL OR data ->> 'entry_id' = $3) ORDER BY id LIMIT 1",
        CONVOYS.stream_id(convoy_id),
        event_type,
        entry_id,
    )
    return row


async def _parties(conn: asyncpg.Connection, convoy_id: str) -> auth.Parties:
    row = await _written(conn, convoy_id, ev.CONVOY_PLANNED)
    if row is None:
        raise ValueError(f"convoy {convoy_id} has no plan in this log: no carrier to record by")
    plan = json.loads(row["data"])
    return auth.Parties(plan["origin_id"], plan["destination_id"], plan["carrier_id"])


def _entry_digest(event_type: str, data: Mapping[str, Any], *, occurred_at: datetime) -> str:
    """The digest a road entry recorded with `data` (its persons sealed) has as new entries
    have it: the entry as the device sent it (its kind, instant and fields), each person
    counted by their subject (domain.FieldEntry.digest)."""
    kind, fields = ENTRIES[event_type]
    entry = domain.FieldEntry(
        entry_id=str(data["entry_id"]),
        kind=kind,
        occurred_at=occurred_at,
        details={k: data.get(k) for k in fields},
    )
    return entry.digest


async def seal_v1(
    conn: asyncpg.Connection, event_type: str, data: Mapping[str, Any], *, now: datetime
) -> dict[str, Any] | None:
    """The version 2 payload of a version 1 event holding persons in clear: each sealed as the
    organisation that recorded them (that of the key that wrote the event, as new writes do;
    for a registry administrator's: the carrier for drivers and custody persons; the receiver:
    the recipient), everything else as it was, but a road entry's digest: version 1
    computed it over the names in clear (shown to every reader of the timeline, it would
    confirm a guessed name); it is computed again as new entries compute it, over the sealed
    persons' subjects, so a re-sent entry is still recognised. None when the event holds no
    person in clear. Raises ValueError for a payload its version 1 schema refuses, or a road
    entry this log does not hold."""
    if event_type not in PERSONAL_TYPES:
        return None
    out = dict(data)
    if event_type == ev.CONVOY_PLANNED:
        drivers = list(out.get("drivers") or [])
        if not any(in_clear(d) for d in drivers):
            return None
        planned = await _written(conn, str(out["convoy_id"]), event_type)
        recorder = auth.recorder(
            planned["organisation"] if planned else None,
            (out["origin_id"], out["carrier_id"]),
            default=out["carrier_id"],
        )
        out["drivers"] = list(await seal_drivers(conn, drivers, recorder=recorder, now=now))
    elif event_type == ev.DELIVERY_CONFIRMED:
        if not in_clear(out.get("confirmed_by")):
            return None
        out["confirmed_by"] = await seal_receiver(
            conn, out["confirmed_by"], recorder=out["recipient_id"], now=now
        )
    else:
        if not any(in_clear((out.get(k) or {}).get("person")) for k in PARTIES):
            return None
        convoy_id, entry_id = str(out["convoy_id"]), str(out["entry_id"])
        written = await _written(conn, convoy_id, event_type, entry_id)
        if written is None:
            raise ValueError(f"{event_type}: entry {entry_id} is not in this log")
        recorder = auth.road_recorder(written["organisation"], await _parties(conn, convoy_id))
        out = await seal_parties(conn, out, recorder=recorder, now=now)
        out["entry_sha256"] = _entry_digest(event_type, out, occurred_at=written["occurred_at"])
    try:
        return ev.payload(ev.SEALED[event_type].model_validate(out))
    except ValueError as exc:  # pydantic's ValidationError is one
        raise ValueError(f"{event_type}: not a version 1 payload: {exc}") from exc
