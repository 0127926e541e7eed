"""Replay a service's history: verify its chain and rebuild its read models elsewhere."""

from __future__ import annotations

import importlib
import importlib.util
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from shared import chain, directory
from shared import db as dbmod
from shared import projections as proj
from shared.events import RecordedEvent
from shared.projections import Projection

BATCH = 2000


def projections_of(service: str) -> tuple[Projection, ...]:
    """The read models a service derives from its own log (none if it has no module yet)."""
    name = f"services.{service}.projections"
    if importlib.util.find_spec(name) is None:
        return ()
    found: tuple[Projection, ...] = getattr(importlib.import_module(name), "ALL", ())
    return found


def schema_of(service: str) -> str:
    return dbmod.schema_text(f"services.{service}")


@dataclass
class Replay:
    service: str
    events: int = 0
    seconds: float = 0.0
    verdict: chain.Verdict | None = None
    rows: dict[str, int] = field(default_factory=dict)
    differences: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events / self.seconds) if self.seconds else None,
            "chain": self.verdict.as_dict() if self.verdict else None,
            "rows": self.rows,
            "differences": self.differences,
        }


async def replay(
    service: str,
    events: AsyncIterator[RecordedEvent],
    *,
    scratch_server: str | None,
    held_checkpoints: Sequence[dict[str, Any]] = (),
    progress: Callable[[int], None] = print,
) -> tuple[Replay, str | None]:
    """Verify the chain while folding every event into fresh read models in a scratch
    database on `scratch_server` (skipped when None). Returns the report and the scratch
    database URL (the caller drops it)."""
    report = Replay(service)
    projections = projections_of(service)
    verifier = chain.Verifier()
    started = time.perf_counter()
    scratch_url = None
    conn = None
    if scratch_server is not None and projections:
        scratch_url = dbmod.with_database(
            scratch_server, f"twinaid_audit_{service}_{uuid.uuid4().hex[:8]}"
        )
        await dbmod.ensure_database(scratch_url)
        conn = await asyncpg.connect(scratch_url)
        # the log's own tables too: some projections fold a stream's history from them
        await dbmod.apply_schema(
            conn, dbmod.schema_text("shared"), directory.SCHEMA, schema_of(service)
        )
    try:
        batch: list[RecordedEvent] = []
        async for event in events:
            verifier.add(
                chain.ChainEntry(
                    position=event.position or 0,
                    event_id=str(event.event_id),
                    hash=event.hash or b"",
                    event=event,
                )
            )
            report.events += 1
            if conn is not None:
                batch.append(event)
                if len(batch) >= BATCH:
                    await _project(conn, projections, batch)
                    batch = []
            if report.events % 10_000 == 0:
                progress(report.events)
        if conn is not None and batch:
            await _project(conn, projections, batch)
        report.verdict = verifier.finish(held_checkpoints=held_checkpoints)
        report.seconds = time.perf_counter() - started
        if conn is not None:
            report.rows = {
                t: int(await conn.fetchval(f'SELECT count(*) FROM "{t}"'))
                for p in projections
                for t in p.tables
            }
    finally:
        if conn is not None:
            await conn.close()
    return report, scratch_url


async def _project(
    conn: asyncpg.Connection, projections: Sequence[Projection], events: list[RecordedEvent]
) -> None:
    """Write the replayed events into the scratch log, then fold them into the read models."""
    async with conn.transaction():
        await conn.executemany(
            "INSERT INTO events (event_id, stream_type, stream_id, stream_version, event_type,"
            " schema_version, occurred_at, recorded_at, data, metadata)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::json, $10::json)",
            [
                (
                    e.event_id,
                    e.stream_type,
                    e.stream_id,
                    e.stream_version,
                    e.event_type,
                    e.schema_version,
                    e.occurred_at,
                    e.recorded_at,
                    chain.encode(e.data),
                    chain.encode(e.metadata.as_dict()),
                )
                for e in events
            ],
        )
        await proj.project(conn, projections, events)


async def compare(service: str, *, live_url: str, rebuilt_url: str) -> list[dict[str, Any]]:
    """Every row that differs between the live read models and the rebuilt ones."""
    differences: list[dict[str, Any]] = []
    live = await asyncpg.connect(live_url)
    rebuilt = await asyncpg.connect(rebuilt_url)
    try:
        for table in (t for p in projections_of(service) for t in p.tables):
            query = f'SELECT * FROM "{table}" ORDER BY 1'
            ours = {r[0]: dict(r) for r in await rebuilt.fetch(query)}
            theirs = {r[0]: dict(r) for r in await live.fetch(query)}
            for key in sorted(set(ours) | set(theirs), key=str):
                a, b = theirs.get(key), ours.get(key)
                if a == b:
                    continue
                kind = (
                    "missing from live"
                    if a is None
                    else ("not in the log" if b is None else "differs")
                )
                changed = sorted(k for k in (a or b or {}) if a and b and a[k] != b[k])
                differences.append(
                    {
                        "service": service,
                        "table": table,
                        "key": str(key),
                        "kind": kind,
                        "columns": changed,
                    }
                )
    finally:
        await live.close()
        await rebuilt.close()
    return differences


async def drop(server: str, url: str) -> None:
    admin = await asyncpg.connect(dbmod.with_database(server, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbmod.database_name(url)}" WITH (FORCE)')
    finally:
        await admin.close()
