"""Shipments events -> read-model rows, in the same transaction as the events.

A convoy's row is its folded state up to the event being projected (views.document), so the read
model says exactly what the rules decide on, however late and out of order road entries came.
"""

from __future__ import annotations

import json

import asyncpg

from services.shipments import domain, views
from services.shipments import events as ev
from shared.event_store import PostgresEventStore, fold
from shared.events import RecordedEvent
from shared.projections import Projection


async def _state_at(conn: asyncpg.Connection, event: RecordedEvent) -> domain.Convoy:
    history = await PostgresEventStore(conn).read_stream(event.stream_id)
    upto = [e for e in history if e.stream_version <= event.stream_version]
    return fold(upto, domain.Convoy(event.data["convoy_id"]), domain.evolve)


async def _convoy(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    state = await _state_at(conn, event)
    news = state.last_news
    await conn.execute(
        """
        INSERT INTO convoys (convoy_id, reference, status, origin_id, destination_id, carrier_id,
                             donors, pledges, planned_departure, dispatched_at, last_news_at,
                             last_recorded_at, document, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14)
        ON CONFLICT (convoy_id) DO UPDATE SET
            status = excluded.status, donors = excluded.donors, pledges = excluded.pledges,
            dispatched_at = excluded.dispatched_at, last_news_at = excluded.last_news_at,
            last_recorded_at = excluded.last_recorded_at, document = excluded.document,
            version = excluded.version
        WHERE convoys.version < excluded.version
        """,
        state.convoy_id,
        state.reference,
        state.status.value,
        state.origin_id,
        state.destination_id,
        state.carrier_id,
        sorted(state.donors),
        sorted({x.pledge_id for x in state.loaded}),
        state.planned_departure,
        state.dispatched_at,
        news.occurred_at if news else None,
        max((e.recorded_at for e in state.entries), default=None),
        json.dumps(views.document(state)),
        state.version,
    )
    await conn.executemany(
        """
        INSERT INTO manifest_lines (convoy_id, manifest_line_id, pledge_id, line_id, donor_id,
                                    item, unit, quantity, weight_kg, vehicle, state, loaded_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        ON CONFLICT (convoy_id, manifest_line_id) DO UPDATE SET state = excluded.state
        """,
        [
            (
                state.convoy_id,
                x.manifest_line_id,
                x.pledge_id,
                x.line_id,
                x.donor_id,
                x.item,
                x.unit,
                x.quantity,
                x.weight_kg,
                x.vehicle,
                x.state.value,
                x.loaded_at,
            )
            for x in state.lines
        ],
    )
    await conn.execute(
        """
        INSERT INTO convoy_timeline (event_id, convoy_id, stream_version, event_type, entry_id,
                                     occurred_at, recorded_at, data)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
        ON CONFLICT (event_id) DO NOTHING
        """,
        event.event_id,
        state.convoy_id,
        event.stream_version,
        event.event_type,
        event.data.get("entry_id"),
        event.occurred_at,
        event.recorded_at,
        json.dumps(event.data),
    )


CONVOYS = Projection(
    name="convoys",
    tables=("convoys", "manifest_lines", "convoy_timeline"),
    handlers=dict.fromkeys(ev.SCHEMAS, _convoy),
)

ALL = (CONVOYS,)
