"""Replay a service's history: verify its chain and rebuild its read models elsewhere."""

from __future__ import annotations

import importlib
import importlib.util
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from shared import chain, chain_verifier, directory
from shared import db as dbmod
from shared import projections as proj
from shared.events import RecordedEvent
from shared.keys import KeyRing
from shared.projections import Projection

BATCH = 2000
PROGRESS_EVERY = 500  # events between two progress reports


def _quiet(done: int) -> None:
    pass


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
    # copies of upstream facts rebuilt from the upstreams' logs (compare): rows per table
    copies: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events / self.seconds) if self.seconds else None,
            "chain": self.verdict.as_dict() if self.verdict else None,
            "rows": self.rows,
            "copies": self.copies,
            "differences": self.differences,
        }


async def replay(
    service: str,
    events: AsyncIterator[RecordedEvent],
    *,
    scratch_server: str | None,
    held_checkpoints: Sequence[dict[str, Any]] = (),
    keys: KeyRing | None = None,
    progress: Callable[[int], None] = _quiet,
) -> tuple[Replay, str | None]:
    """Verify the chain while folding every event into fresh read models in a scratch
    database on `scratch_server` (skipped when None). Returns the report and the scratch
    database URL (the caller drops it); `progress` hears how many events were read, every
    PROGRESS_EVERY. Checkpoints are checked against the keys `keys` pins
    for `service` and the key changes the log announces (chain_verifier.Verifier)."""
    report = Replay(service)
    projections = projections_of(service)
    verifier = chain_verifier.Verifier(service=service, keys=keys)
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
            verifier.add(chain.ChainEntry.of(event))
            report.events += 1
            if conn is not None:
                batch.append(event)
                if len(batch) >= BATCH:
                    await _project(conn, projections, batch)
                    batch = []
            if report.events % PROGRESS_EVERY == 0:
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
    """Every value that differs between the live read models and the rebuilt ones.

    Rows are matched by their table's primary key (read from the catalog); JSON values are
    compared with their numbers as numbers (23.0 is 23). Each difference names the table,
    the key, the column and both values; a row only one side has is one difference, with the
    whole row on that side."""
    differences: list[dict[str, Any]] = []
    live = await reader(live_url)
    rebuilt = await reader(rebuilt_url)
    try:
        for table in (t for p in projections_of(service) for t in p.tables):
            differences += await diff_table(live, rebuilt, {"service": service}, table)
    finally:
        await live.close()
        await rebuilt.close()
    return differences


async def diff_table(
    live: asyncpg.Connection,
    rebuilt: asyncpg.Connection,
    where: dict[str, Any],
    table: str,
    *,
    key: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    logged_only: bool = False,
) -> list[dict[str, Any]]:
    """The differences of one table (see compare), each starting with `where`. Rows are
    matched by `key` (default: the primary key); only `columns` are compared (default: all);
    `logged_only`: live rows the log does not account for are left out (a table that also
    holds rows written by other means)."""
    key = list(key) if key else await primary_key(rebuilt, table)
    theirs = await _rows(live, table, key, columns)
    ours = await _rows(rebuilt, table, key, columns)
    if logged_only:
        theirs = {k: row for k, row in theirs.items() if k in ours}
    differences: list[dict[str, Any]] = []
    for k in sorted(theirs.keys() | ours.keys(), key=repr):
        a, b = theirs.get(k), ours.get(k)
        found = {
            **where,
            "table": table,
            "key": dict(zip(key, (shown(v) for v in k), strict=True)),
        }
        if a is None or b is None:
            differences.append(
                {
                    **found,
                    "kind": "missing from live" if a is None else "not in the log",
                    "column": None,
                    "live": shown(a),
                    "rebuilt": shown(b),
                }
            )
            continue
        for column in sorted(a.keys() | b.keys()):
            if not same(a.get(column), b.get(column)):
                differences.append(
                    {
                        **found,
                        "kind": "differs",
                        "column": column,
                        "live": shown(a.get(column)),
                        "rebuilt": shown(b.get(column)),
                    }
                )
    return differences


async def reader(url: str) -> asyncpg.Connection:
    """A connection that hands JSON over parsed, every number as a Decimal."""
    conn = await asyncpg.connect(url)
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind,
            schema="pg_catalog",
            encoder=json.dumps,
            decoder=lambda text: json.loads(text, parse_float=Decimal, parse_int=Decimal),
        )
    return conn


async def primary_key(conn: asyncpg.Connection, table: str) -> list[str]:
    """The columns of `table`'s primary key, in key order; every column if it has none."""
    columns: list[str] = [
        r["attname"]
        for r in await conn.fetch(
            """
            SELECT a.attname FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = $1::regclass AND i.indisprimary
            ORDER BY array_position(i.indkey::int2[], a.attnum)
            """,
            f'"{table}"',
        )
    ]
    if columns:
        return columns
    return [
        r["attname"]
        for r in await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0"
            " AND NOT attisdropped ORDER BY attnum",
            f'"{table}"',
        )
    ]


async def _rows(
    conn: asyncpg.Connection, table: str, key: Sequence[str], columns: Sequence[str] | None
) -> dict[tuple[Any, ...], dict[str, Any]]:
    chosen = ", ".join(f'"{c}"' for c in dict.fromkeys([*key, *columns])) if columns else "*"
    rows = await conn.fetch(f'SELECT {chosen} FROM "{table}"')
    return {tuple(_hashable(r[c]) for c in key): dict(r) for r in rows}


def _hashable(value: Any) -> Any:
    return json.dumps(shown(value), sort_keys=True) if isinstance(value, dict | list) else value


def same(a: Any, b: Any) -> bool:
    """Equal as values: numbers by value (Decimal("23.0") is 23), everything else by type and
    value, inside JSON objects and arrays too (true is not 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | Decimal) and isinstance(b, int | Decimal):
        return a == b or (Decimal(a).is_nan() and Decimal(b).is_nan())
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def shown(value: Any) -> Any:
    """`value` as JSON can carry it: numbers as numbers, instants in ISO 8601, ids as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return int(value) if value.is_finite() and value == value.to_integral() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [shown(v) for v in value]
    return str(value)


async def drop(server: str, url: str) -> None:
    admin = await asyncpg.connect(dbmod.with_database(server, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbmod.database_name(url)}" WITH (FORCE)')
    finally:
        await admin.close()
