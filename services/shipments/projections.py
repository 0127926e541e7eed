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
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC
from typing import Any

import asyncpg

from services.shipments import domain, privacy, views
from services.shipments import events as ev
from services.shipments.handlers.repositories import CONVOYS as REPOSITORY
from shared import snapshots
from shared.codec import Event
from shared.events import RecordedEvent
from shared.projections import ApplyBatch, Projection, write_rows

CONVOY_COLUMNS = {
    "convoy_id": "text",
    "reference": "text",
    "status": "text",
    "origin_id": "text",
    "destination_id": "text",
    "carrier_id": "text",
    "donors": "text[]",
    "pledges": "text[]",
    "planned_departure": "timestamptz",
    "dispatched_at": "timestamptz",
    "last_news_at": "timestamptz",
    "last_recorded_at": "timestamptz",
    "document": "jsonb",
    "version": "int",
}
LINE_COLUMNS = {
    "convoy_id": "text",
    "manifest_line_id": "text",
    "pledge_id": "text",
    "line_id": "text",
    "donor_id": "text",
    "item": "text",
    "unit": "text",
    "quantity": "numeric",
    "weight_kg": "numeric",
    "vehicle": "text",
    "state": "text",
    "loaded_at": "timestamptz",
}
TIMELINE_COLUMNS = {
    "event_id": "uuid",
    "convoy_id": "text",
    "stream_version": "int",
    "event_type": "text",
    "entry_id": "text",
    "occurred_at": "timestamptz",
    "recorded_at": "timestamptz",
    "data": "jsonb",
}


def _as_stored(event: Event[Any]) -> Event[Any]:
    """The event with its instants in UTC, as the log gives them back: an append hands its
    projection the instants it was given, and the state folded here must be the one folded
    from the log (handlers/common.py as_recorded does the same for the handlers' states)."""
    r = event.recorded
    if r.occurred_at.tzinfo is UTC and r.recorded_at.tzinfo is UTC:
        return event
    at = replace(
        r, occurred_at=r.occurred_at.astimezone(UTC), recorded_at=r.recorded_at.astimezone(UTC)
    )
    return Event(at, event.payload)


async def _states(
    conn: asyncpg.Connection,
    events: Sequence[Event[Any]],
    held: Mapping[str, domain.Convoy] | None = None,
) -> tuple[dict[str, domain.Convoy], dict[str, domain.Convoy]]:
    """Each convoy's state after the last of `events` (decoded, in order) that touch it, and
    those of them folded here (their snapshots are not saved yet). The state its handler kept
    (handlers/common.py record: its snapshot is saved already); else the state a rebuild
    `held` or the convoy's snapshot, with the events after it folded in, from `events`
    themselves when they start right after it (a rebuild's or a replay's pages: each convoy
    folded and rendered once per page); else folded from the log (Repository.load_many)."""
    mine: dict[str, list[Event[Any]]] = {}
    for e in events:
        mine.setdefault(REPOSITORY.record_id(e.stream_id), []).append(e)
    kept: dict[str, domain.Convoy] = {}
    for convoy, its in mine.items():
        state = REPOSITORY.recall(its[-1].event_id)
        if state is not None:
            kept[convoy] = state
    held = held or {}
    starts = {c: (held[c], held[c].version) for c in mine if c not in kept and c in held}
    rest = [c for c in mine if c not in kept and c not in starts]
    if rest:
        assert REPOSITORY.snapshot is not None
        fmt = REPOSITORY.snapshot
        found = await snapshots.PostgresSnapshots(conn).get(
            [REPOSITORY.stream_id(c) for c in rest], fmt.format
        )
        for convoy in rest:
            snapshot = found.get(REPOSITORY.stream_id(convoy))
            starts[convoy] = (
                (REPOSITORY.initial(convoy), 0)
                if snapshot is None
                else (fmt.decode(snapshot.state), snapshot.stream_version)
            )
    folded: dict[str, domain.Convoy] = {}
    behind: dict[str, int] = {}
    for convoy, (state, after) in starts.items():
        its = mine[convoy]
        first, last = its[0].stream_version, its[-1].stream_version
        if after < first - 1 or after > last:  # events missing in between, or ahead
            behind[convoy] = last
            continue
        for e in its:
            if e.stream_version > after:
                state = REPOSITORY.evolve(state, _as_stored(e))
        folded[convoy] = state
    if behind:
        folded |= await REPOSITORY.load_many(conn, behind)
    return {c: kept[c] if c in kept else folded[c] for c in mine}, folded


async def _convoys(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
    """The rows of every convoy `events` touch, from its state after the last of them
    (`_states`; those folded here are saved as the convoys' snapshots), and one timeline row
    per event. The same rows as one write per event: a convoy's row keeps its latest version,
    and its manifest lines are only ever added, with only their state changing afterwards.
    One statement per table however many events and convoys (shared.projections.write_rows)."""
    decoded = REPOSITORY.codec.decode_all(events)
    states, folded = await _states(conn, decoded)
    await REPOSITORY.save_snapshots(snapshots.PostgresSnapshots(conn), folded)
    await _rows(conn, states.values())
    await _timeline(conn, decoded)


# convoys a rebuild keeps folded in memory between its pages, their rows and snapshots not yet
# written; past that, the least recently touched quarter is written and let go
HELD = 2_000


@asynccontextmanager
async def _rebuilding(conn: asyncpg.Connection) -> AsyncIterator[ApplyBatch]:
    """A rebuild's pages, as `_convoys` takes them, but each convoy's state kept from one page
    to the next instead of written and read back: its rows and snapshot are written once it
    has been left alone while HELD others were touched, or at the end. A convoy's rows and
    snapshot are then written about once per rebuild, not once per page; the rows are the
    ones `_convoys` leaves (the same states, rendered by the same code)."""
    held: OrderedDict[str, domain.Convoy] = OrderedDict()

    async def write(states: Mapping[str, domain.Convoy]) -> None:
        await REPOSITORY.save_snapshots(snapshots.PostgresSnapshots(conn), states)
        await _rows(conn, states.values())

    async def page(conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        decoded = REPOSITORY.codec.decode_all(events)
        states, _ = await _states(conn, decoded, held)
        for convoy, state in states.items():
            held[convoy] = state
            held.move_to_end(convoy)
        await _timeline(conn, decoded)
        if len(held) > HELD:
            await write(dict(held.popitem(last=False) for _ in range(len(held) - HELD * 3 // 4)))

    yield page
    await write(held)


async def _rows(conn: asyncpg.Connection, states: Iterable[domain.Convoy]) -> None:
    """The convoys' rows and their manifest lines, from their states."""
    states = list(states)
    await write_rows(
        conn,
        "convoys",
        CONVOY_COLUMNS,
        [_convoy_row(state) for state in states],
        """ON CONFLICT (convoy_id) DO UPDATE SET
            status = excluded.status, donors = excluded.donors, pledges = excluded.pledges,
            dispatched_at = excluded.dispatched_at, last_news_at = excluded.last_news_at,
            last_recorded_at = excluded.last_recorded_at, document = excluded.document,
            version = excluded.version
        WHERE convoys.version < excluded.version""",
    )
    await write_rows(
        conn,
        "manifest_lines",
        LINE_COLUMNS,
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
        "ON CONFLICT (convoy_id, manifest_line_id) DO UPDATE SET state = excluded.state",
    )


async def _timeline(conn: asyncpg.Connection, decoded: Sequence[Event[Any]]) -> None:
    """One timeline row per event, its data as stored."""
    await write_rows(
        conn,
        "convoy_timeline",
        TIMELINE_COLUMNS,
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
            for e in decoded
        ],
        "ON CONFLICT (event_id) DO NOTHING",
    )


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


CONVOYS = Projection.batched(
    "convoys",
    # snapshots: a rebuild empties them with the rows and recreates them
    ("convoys", "manifest_lines", "convoy_timeline", snapshots.TABLE),
    ev.CODEC.event_types(),
    _convoys,
    _rebuilding,
)

# privacy: which events hold each person (privacy_occurrences), for exports and retention
ALL = (CONVOYS, privacy.PROJECTION)
