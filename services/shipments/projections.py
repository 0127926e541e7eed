"""Shipments events -> read-model rows, in the same transaction as the events.

A convoy's row is its folded state up to the event being projected (views.document), so the read
model says exactly what the rules decide on, however late and out of order road entries came.
The state comes from the convoy's snapshot and the events after it (its repository,
handlers/repositories.py), and its new snapshot is saved with the rows: a write costs the same
at any history size. A handler keeps the state after its events as the snapshot before it
appends them (handlers/common.py record): the projection then folds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from services.shipments import domain, privacy, views
from services.shipments import events as ev
from services.shipments.handlers.repositories import CONVOYS as REPOSITORY
from shared import snapshots
from shared.events import RecordedEvent
from shared.projections import Projection


async def _convoys(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    """The rows of every convoy `events` touch, from its state after the last of them (its
    snapshot and the events after it; the new snapshot is saved), and one timeline row per
    event. The same rows as one write per event: a convoy's row keeps its
    latest version, and its manifest lines are only ever added, with only their state changing
    afterwards. A few statements for the whole batch, however many convoys it touches."""
    last: dict[str, RecordedEvent] = {}
    for event in events:
        last[REPOSITORY.record_id(event.stream_id)] = event
    # the state the handler kept after these events (handlers/common.py record: its snapshot
    # is saved already), else from the snapshot and the events after it (a rebuild, a replay)
    kept = {c: s for c, e in last.items() if (s := REPOSITORY.recall(e.event_id)) is not None}
    up_to = {c: e.stream_version for c, e in last.items() if c not in kept}
    folded = await REPOSITORY.load_many(conn, up_to) if up_to else {}
    await REPOSITORY.save_snapshots(snapshots.PostgresSnapshots(conn), folded)
    states = [kept[c] if c in kept else folded[c] for c in last]
    await conn.executemany(
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
        [_convoy_row(state) for state in states],
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
            for state in states
            for x in state.lines
        ],
    )
    await conn.executemany(
        """
        INSERT INTO convoy_timeline (event_id, convoy_id, stream_version, event_type, entry_id,
                                     occurred_at, recorded_at, data)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
        ON CONFLICT (event_id) DO NOTHING
        """,
        [
            (
                e.event_id,
                REPOSITORY.record_id(e.stream_id),
                e.stream_version,
                e.event_type,
                e.payload.entry_id if isinstance(e.payload, ev.EntryPayload) else None,
                e.occurred_at,
                e.recorded_at,
                json.dumps(e.recorded.data),  # the stored form, as the timeline shows it
            )
            for e in REPOSITORY.codec.decode_all(events)
        ],
    )


async def _convoy(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await _convoys(conn, [event])


def _convoy_row(state: domain.Convoy) -> tuple[object, ...]:
    news = state.last_news
    return (
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
        state.last_recorded_at,
        json.dumps(views.document(state)),
        state.version,
    )


CONVOYS = Projection(
    name="convoys",
    # snapshots: a rebuild empties them with the rows and recreates them
    tables=("convoys", "manifest_lines", "convoy_timeline", snapshots.TABLE),
    handlers=dict.fromkeys(ev.CODEC.event_types(), _convoy),
    batch=_convoys,
)

# privacy: which events hold each person (privacy_occurrences), for exports and retention
ALL = (CONVOYS, privacy.PROJECTION)
