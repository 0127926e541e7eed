"""Audit of what crossed between services: each service's copies of upstream facts, rebuilt
from the upstreams' verified logs and compared with the live copies.

The consumers write these tables from other services' events (their subscriptions), so a
replay of the service's own log cannot rebuild them: a forged message a consumer applied, or a
row changed behind its back, shows only against the upstream's own log. Each copy is rebuilt in
a scratch database by the same handlers the consumer runs, fed with the upstream's events in
position order after their chain (and its checkpoints, against the pinned keys) verified.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar

import asyncpg
from pydantic import Field, ValidationError

from services.audit import replay
from services.pledges import subscriptions as pledges_subscriptions
from services.pledges.subscriptions import partnerships
from services.shipments import subscriptions as shipments_subscriptions
from shared import api_keys, chain, chain_verifier, consumed, directory, published
from shared import db as dbmod
from shared.codec import EventCodec, UndecodableEvent, unchanged
from shared.consumer import Handler, Incoming
from shared.events import RecordedEvent
from shared.incoming import Implausible
from shared.keys import KeyRing

SERVICES_DIR = Path(__file__).resolve().parents[1]
DELIVERY_CONFIRMED = "shipments.delivery-confirmed"
DELIVERY_COLUMNS = ("unit", "loaded", "received", "damaged", "short", "lost")


@dataclass(frozen=True)
class Copy:
    """`table` of a service holds facts of `upstream`, written by `handlers` (event type ->
    handler); rows are matched by `key` (default: the primary key) on `columns` (default:
    all)."""

    upstream: str
    table: str
    handlers: Mapping[str, Handler]
    key: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    # the live table also holds rows written by other means: only the logged ones are compared
    logged_only: bool = False


# The fields of shipments' delivery-confirmed that pledges counts, with the bounds of its
# published schema (services/shipments/events/)
_Id = Annotated[str, Field(max_length=200)]


class _DeliveryLine(consumed.Tolerant):
    manifest_line_id: _Id
    pledge_id: _Id
    line_id: _Id
    unit: str = Field(max_length=20)
    loaded: Decimal
    received: Decimal
    damaged: Decimal = Decimal(0)
    short: Decimal = Decimal(0)
    lost: Decimal = Decimal(0)


class _Delivery(consumed.Tolerant):
    """Version 2 sealed who confirmed (version 1: in clear); the lines stayed as they were."""

    EVENT_TYPE: ClassVar[str] = DELIVERY_CONFIRMED
    SCHEMA_VERSION: ClassVar[int] = 2

    convoy_id: _Id
    lines: list[_DeliveryLine] = Field(max_length=500)


_DELIVERIES = EventCodec([_Delivery], upcasters={(DELIVERY_CONFIRMED, 1): unchanged})


async def _delivered(conn: asyncpg.Connection, event: Incoming) -> None:
    """What pledges must have counted of a confirmed delivery: one row per manifest line (pledges
    records it in its own log, so its deliveries are compared by line, not by event id)."""
    delivery = consumed.read(_DELIVERIES, event, _Delivery)
    for line in delivery.lines:
        await conn.execute(
            "INSERT INTO deliveries (event_id, pledge_id, line_id, convoy_id, manifest_line_id,"
            " unit, loaded, received, damaged, short, lost, occurred_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            " ON CONFLICT (pledge_id, line_id, convoy_id, manifest_line_id) DO NOTHING",
            uuid.uuid4(),
            line.pledge_id,
            line.line_id,
            delivery.convoy_id,
            line.manifest_line_id,
            line.unit,
            line.loaded,
            line.received,
            line.damaged,
            line.short,
            line.lost,
            event.occurred_at,
        )


# The API keys a consumer learned from the registry's api-key events (issued, rotated, revoked
# over HTTP). The same table holds keys an operator issued with `twinaid keys issue`, straight
# into every database and in no log: those are not compared, nor when each key was last used.
_API_KEYS = Copy(
    "registry",
    "api_keys",
    api_keys.HANDLERS,
    columns=(
        "secret_hash",
        "organisation",
        "roles",
        "label",
        "created_at",
        "expires_at",
        "rotated_at",
        "revoked_at",
    ),
    logged_only=True,
)

COPIES: dict[str, tuple[Copy, ...]] = {
    "pledges": (
        Copy("registry", "directory", directory.HANDLERS),
        _API_KEYS,
        Copy("registry", "partnership_directory", partnerships.HANDLERS),
        Copy(
            "shipments",
            "deliveries",
            {DELIVERY_CONFIRMED: _delivered},
            key=("pledge_id", "line_id", "convoy_id", "manifest_line_id"),
            columns=DELIVERY_COLUMNS,
        ),
        Copy(
            "shipments",
            "convoy_lines",
            {
                pledges_subscriptions.MANIFEST_LINE_LOADED: (
                    pledges_subscriptions.manifest_line_loaded
                ),
                pledges_subscriptions.MANIFEST_LINE_UNLOADED: (
                    pledges_subscriptions.manifest_line_unloaded
                ),
                pledges_subscriptions.CONVOY_CANCELLED: pledges_subscriptions.convoy_cancelled,
                pledges_subscriptions.CONVOY_CLOSED: pledges_subscriptions.convoy_closed,
            },
        ),
    ),
    "shipments": (
        Copy("registry", "directory", directory.HANDLERS),
        _API_KEYS,
        Copy(
            "pledges",
            "pledge_lines",
            {
                shipments_subscriptions.PLEDGE_LINE_UPDATED: (
                    shipments_subscriptions.pledge_line_updated
                )
            },
        ),
    ),
}


def incoming(upstream: str, event: RecordedEvent) -> Incoming:
    return Incoming(
        upstream=upstream,
        event_id=event.event_id,
        position=event.position or 0,
        event_type=event.event_type,
        stream_id=event.stream_id,
        stream_version=event.stream_version,
        occurred_at=event.occurred_at,
        data=event.data,
        correlation_id=event.metadata.correlation_id,
        organisation=event.metadata.organisation,
        stream_type=event.stream_type,
        schema_version=event.schema_version,
        recorded_at=event.recorded_at,
        metadata=event.metadata,
        chain_hash=event.hash,
    )


@dataclass
class Copies:
    """The copies of one service: rows rebuilt per table, and every difference found."""

    rows: dict[str, int] = field(default_factory=dict)
    differences: list[dict[str, Any]] = field(default_factory=list)
    # the tables (of a compare that was asked to repair) whose live rows were replaced
    repaired: list[str] = field(default_factory=list)


async def compare(
    service: str,
    *,
    live_url: str,
    scratch_server: str,
    events_of: Callable[[str], AsyncIterator[RecordedEvent]],
    pins: Mapping[str, Sequence[str]],
    upstreams: Collection[str] | None = None,
    repair: bool = False,
) -> Copies:
    """Rebuild `service`'s copies from each upstream's log (`events_of(upstream)`, verified
    against `pins`) and diff them with the live ones (see replay.diff_table; each difference
    also names the upstream). A copy whose upstream log does not verify is not compared: one
    difference says why. Only the copies of `upstreams` (default: all).

    `repair`: each copy that differed is set to the rebuilt one (see _repair), and named in
    `repaired`; except a copy matched on a key of its own (pledges' deliveries, a read model of
    pledges' own log), which is only reported."""
    found = Copies()
    copies = tuple(
        c for c in COPIES.get(service, ()) if upstreams is None or c.upstream in upstreams
    )
    if not copies:
        return found
    scratch = dbmod.with_database(
        scratch_server, f"twinaid_audit_copies_{service}_{uuid.uuid4().hex[:8]}"
    )
    await dbmod.ensure_database(scratch)
    try:
        broken = await _rebuild(service, copies, scratch, events_of, pins)
        live = await replay.reader(live_url)
        rebuilt = await replay.reader(scratch)
        try:
            for copy in copies:
                where = {"service": service, "copy_of": copy.upstream}
                if copy.upstream in broken:
                    found.differences.append(
                        {
                            **where,
                            "table": copy.table,
                            "key": {},
                            "kind": f"not compared: {broken[copy.upstream]}",
                            "column": None,
                            "live": None,
                            "rebuilt": None,
                        }
                    )
                    continue
                found.rows[copy.table] = int(
                    await rebuilt.fetchval(f'SELECT count(*) FROM "{copy.table}"')
                )
                differed = await replay.diff_table(
                    live,
                    rebuilt,
                    where,
                    copy.table,
                    key=copy.key or None,
                    columns=copy.columns or None,
                    logged_only=copy.logged_only,
                )
                found.differences += differed
                if repair and differed and not copy.key:
                    await _repair(live_url, scratch, copy)
                    found.repaired.append(copy.table)
        finally:
            await live.close()
            await rebuilt.close()
    finally:
        await replay.drop(scratch_server, scratch)
    return found


async def _repair(live_url: str, scratch: str, copy: Copy) -> None:
    """The live copy set to the rebuilt one, in one transaction: every row replaced; or, for a
    copy that also holds rows written by other means (`logged_only`), each logged row inserted,
    or its compared columns set (the others, such as when a key was last used, kept)."""
    source = await asyncpg.connect(scratch)
    target = await asyncpg.connect(live_url)
    try:
        rows = await source.fetch(f'SELECT * FROM "{copy.table}"')
        present = {
            r["attname"]
            for r in await target.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0"
                " AND NOT attisdropped",
                f'"{copy.table}"',
            )
        }
        columns = [c for c in (rows[0].keys() if rows else ()) if c in present]
        records = [tuple(r[c] for c in columns) for r in rows]
        async with target.transaction():
            if not copy.logged_only:
                await target.execute(f'DELETE FROM "{copy.table}"')
                if records:
                    await target.copy_records_to_table(copy.table, records=records, columns=columns)
                return
            if not records:
                return
            key = await replay.primary_key(target, copy.table)
            names = ", ".join(f'"{c}"' for c in columns)
            await target.execute(
                f"CREATE TEMP TABLE twinaid_rebuilt_copy ON COMMIT DROP AS SELECT {names}"
                f' FROM "{copy.table}" WITH NO DATA'
            )
            await target.copy_records_to_table(
                "twinaid_rebuilt_copy", records=records, columns=columns
            )
            chosen = [c for c in (copy.columns or columns) if c in columns and c not in key]
            on_key = ", ".join(f'"{c}"' for c in key)
            update = ", ".join(f'"{c}" = excluded."{c}"' for c in chosen)
            await target.execute(
                f'INSERT INTO "{copy.table}" ({names}) SELECT {names} FROM twinaid_rebuilt_copy'
                f" ON CONFLICT ({on_key}) "
                + (f"DO UPDATE SET {update}" if update else "DO NOTHING")
            )
    finally:
        await source.close()
        await target.close()


async def _rebuild(
    service: str,
    copies: Sequence[Copy],
    scratch: str,
    events_of: Callable[[str], AsyncIterator[RecordedEvent]],
    pins: Mapping[str, Sequence[str]],
) -> dict[str, str]:
    """Fill the scratch copies; returns {upstream: why its log was not used}."""
    broken: dict[str, str] = {}
    conn = await asyncpg.connect(scratch)
    try:
        await dbmod.apply_schema(
            conn, dbmod.schema_text("shared"), directory.SCHEMA, replay.schema_of(service)
        )
        for upstream in dict.fromkeys(c.upstream for c in copies):
            handlers = {
                t: h for c in copies if c.upstream == upstream for t, h in c.handlers.items()
            }
            verifier = chain_verifier.Verifier(service=upstream, keys=KeyRing.pinned(pins))
            # the schemas the upstream publishes, which the live consumer holds events to
            contract = published.Contract(SERVICES_DIR / upstream / "schemas")
            async for event in events_of(upstream):
                if verifier.add(chain.ChainEntry.of(event)) is not None:
                    break
                handler = handlers.get(event.event_type)
                if handler is None:
                    continue
                if contract.problem(event.event_type, event.schema_version, event.data):
                    continue  # the live consumer parks it in quarantine: it is in no copy
                try:
                    async with conn.transaction():
                        await handler(conn, incoming(upstream, event))
                except (
                    Implausible,
                    UndecodableEvent,
                    ValidationError,
                    KeyError,
                    ValueError,
                    TypeError,
                ):
                    # the live consumer quarantines it too: it is in no copy
                    continue
            verdict = verifier.finish()
            if not verdict.intact:
                broken[upstream] = (
                    f"{upstream}'s log is broken at position {verdict.bad_position}:"
                    f" {verdict.problem}"
                )
    finally:
        await conn.close()
    return broken
