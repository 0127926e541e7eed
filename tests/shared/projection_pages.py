"""Projections fed one event at a time and in pages of any size leave the same rows: a
service's generated history (bench/replay.py's, the payloads of its events.py) in two scratch
databases, projected one way in each, every read-model row compared."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from bench.replay import generate
from services.audit import replay as audit_replay
from shared import db as dbmod
from shared import signing
from shared.events import RecordedEvent
from shared.projections import Projection, project
from shared.rows import COLUMNS, from_row
from shared.testing import fresh_database


@asynccontextmanager
async def twin_histories(
    server: str, service: str, events: int, seed: int, in_flight: int
) -> AsyncIterator[tuple[str, str]]:
    """Two databases holding the same generated log of `events` events (empty read models)."""
    async with fresh_database(server, audit_replay.schema_of(service)) as first:
        await generate(
            first, service, events, signing.Signer.generate(), seed=seed, in_flight=in_flight
        )
        name = f"{dbmod.database_name(first)}_twin"
        admin = await asyncpg.connect(dbmod.with_database(server, "postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{dbmod.database_name(first)}"')
            yield first, dbmod.with_database(server, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def log(conn: asyncpg.Connection) -> list[RecordedEvent]:
    """The whole log in the order a rebuild reads it."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM events e LEFT JOIN event_chain c ON c.event_id = e.event_id"
        " ORDER BY c.position NULLS LAST, e.tx_id, e.id"
    )
    return [from_row(r) for r in rows]


async def one_at_a_time(
    conn: asyncpg.Connection, projections: Sequence[Projection], events: Sequence[RecordedEvent]
) -> None:
    """Each event through each projection's handler of its type, alone, in order."""
    async with conn.transaction():
        for event in events:
            for p in projections:
                handler = p.handlers.get(event.event_type)
                if handler is not None:
                    await handler(conn, event)


def page_sizes(rng: random.Random, total: int) -> list[int]:
    """Sizes adding up to `total`: single events, a few, dozens, thousands, mixed."""
    sizes: list[int] = []
    while sum(sizes) < total:
        size = rng.choice([1, 2, 3, rng.randint(4, 40), rng.randint(40, 400), rng.randint(1, 3000)])
        sizes.append(min(size, total - sum(sizes)))
    return sizes


async def in_pages(
    conn: asyncpg.Connection,
    projections: Sequence[Projection],
    events: Sequence[RecordedEvent],
    sizes: Sequence[int],
) -> None:
    """The events in order, in pages of these sizes, as a rebuild or a replay hands them."""
    async with conn.transaction():
        start = 0
        for size in sizes:
            await project(conn, projections, events[start : start + size])
            start += size


async def read_models(
    conn: asyncpg.Connection, projections: Sequence[Projection]
) -> dict[str, list[str]]:
    """Every row of every table of the projections, as text, sorted."""
    return {
        t: [r[0] for r in await conn.fetch(f'SELECT r::text FROM "{t}" r ORDER BY 1')]
        for p in projections
        for t in p.tables
    }
