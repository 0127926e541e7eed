"""The sealer: dense global positions and the hash chain, and their verification.

Run by the relay leader. Only events whose transaction is older than every transaction still
running anywhere on the server (transaction ids are server-wide) are sealed, in (transaction
id, row id) order, so a reader that follows sealed positions never passes an event that could
still commit behind it. See shared/event_store.py for the trade-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from shared import chain, chain_verifier
from shared import db as dbmod
from shared.keys import KeyRing
from shared.metrics import Metrics
from shared.rows import COLUMNS, from_row

log = logging.getLogger("twinaid.sealer")
PAGE = 5000
SLICE = 500  # rows checked between two looks at the socket

# The canonical body of chain.canonical (keys in RFC 8785 order), rendered by PostgreSQL from
# the stored columns: data and metadata are stored as their RFC 8785 text (chain.encode), strings
# go through to_json, instants through to_char in chain._instant's format. The rendering is
# never trusted: a row is accepted only if it hashes to exactly what was sealed, and any row
# that does not (an older row stored in another form, or a tampered one) is canonicalised
# again from its parsed values with rfc8785, as the sealer did.
_INSTANT = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_RENDERED_BODY = (
    """'{"data":' || e.data::text || ',"event_id":"' || e.event_id::text"""
    """ || '","event_type":' || to_json(e.event_type)::text"""
    """ || ',"metadata":' || e.metadata::text"""
    """ || ',"occurred_at":"' || """
    + _INSTANT.format("e.occurred_at")
    + """ || '","position":' || c.position::text"""
    """ || ',"recorded_at":"' || """
    + _INSTANT.format("e.recorded_at")
    + """ || '","schema_version":' || e.schema_version::text"""
    """ || ',"stream_id":' || to_json(e.stream_id)::text"""
    """ || ',"stream_type":' || to_json(e.stream_type)::text"""
    """ || ',"stream_version":' || e.stream_version::text || '}'"""
)
# PostgreSQL renders each body and hashes it (sha256 of its UTF-8 bytes, as chain.link_content
# does): the verifier chains 32-byte digests instead of receiving and hashing whole bodies, and
# the server's rendering runs on its own core meanwhile. Bodies travel only for checkpoints and
# key changes, whose signatures the verifier checks ($1: chain.SIGNED).
_RENDERED_SQL = f"""
SELECT c.position, c.hash, e.stream_type, e.stream_id, e.stream_version, e.event_type,
       sha256(convert_to(r.body, 'UTF8')) AS digest,
       CASE WHEN e.event_type = ANY($1::text[]) THEN r.body END AS body
FROM event_chain c LEFT JOIN events e ON e.event_id = c.event_id
CROSS JOIN LATERAL (SELECT {_RENDERED_BODY} AS body) r
ORDER BY c.position
"""
_ENTRY_SQL = f"""
SELECT c.position, c.event_id AS sealed_id, c.hash AS sealed_hash, {COLUMNS}
FROM event_chain c LEFT JOIN events e ON e.event_id = c.event_id
WHERE c.position = $1
"""


async def head(conn: asyncpg.Connection) -> tuple[int, bytes]:
    row = await conn.fetchrow("SELECT position, hash FROM sealer_state")
    return int(row["position"]), bytes(row["hash"])


class Unsealable(Exception):
    """A committed row the chain cannot seal: one written before the database refused such rows
    (events_sealable_v1 in shared/schema.sql). Nothing after it can be sealed until it is dealt
    with; every row before it was sealed."""

    def __init__(self, *, position: int, row_id: int, event_id: str, reason: str) -> None:
        super().__init__(f"the event at position {position} cannot be sealed: {reason}")
        self.position = position  # the chain position it would take
        self.row_id = row_id  # events.id
        self.event_id = event_id
        self.reason = reason

    def at(self, position: int) -> Unsealable:
        return Unsealable(
            position=position, row_id=self.row_id, event_id=self.event_id, reason=self.reason
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "row_id": self.row_id,
            "event_id": self.event_id,
            "reason": self.reason,
        }


# What reading or canonicalising a row the chain cannot seal raises (asyncpg's decoding of an
# instant before year 1, a naive infinity, JSON with no canonical form, metadata that is not
# an object); a lost connection or a database error is not among them.
_ROW_FAILURES = (
    ValueError,
    ArithmeticError,
    TypeError,
    AttributeError,
    LookupError,
    RecursionError,
)


async def seal(conn: asyncpg.Connection, *, limit: int = 1000) -> int:
    """Seal up to `limit` committed events; returns how many. Raises Unsealable when the next
    event in commit order cannot be sealed (the events before it are sealed first)."""
    async with conn.transaction():  # a savepoint when the caller has a transaction
        return await _seal(conn, limit)


async def _seal(conn: asyncpg.Connection, limit: int) -> int:
    state = await conn.fetchrow(
        "SELECT last_tx, last_id, position, hash FROM sealer_state FOR UPDATE"
    )
    # Only transactions older than every one still running: none of them can commit an
    # event that sorts before what we seal now.
    args = (state["last_tx"], state["last_id"], limit)
    unreadable: Unsealable | None = None
    try:
        rows: list[asyncpg.Record] = await conn.fetch(_NEXT_SQL.format(COLUMNS), *args)
    except _ROW_FAILURES:
        # a row that cannot even be read: find it, reading the rows one by one
        rows, unreadable = await _readable_rows(conn, args)
    position = int(state["position"])
    previous = bytes(state["hash"])
    positions: list[int] = []
    ids: list[Any] = []
    hashes: list[bytes] = []
    for row in rows:
        try:
            digest = chain.link(previous, from_row(row), position=position + 1)
        except _ROW_FAILURES as exc:
            unreadable = Unsealable(
                position=0, row_id=row["id"], event_id=str(row["event_id"]), reason=_why(exc)
            )
            break
        position += 1
        previous = digest
        positions.append(position)
        ids.append(row["event_id"])
        hashes.append(previous)
    if not positions:
        if unreadable is not None:
            raise unreadable.at(position + 1)
        return 0
    # the rows before one that cannot be sealed are sealed; the next round reports that one
    await conn.execute(
        "INSERT INTO event_chain (position, event_id, hash)"
        " SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bytea[])",
        positions,
        ids,
        hashes,
    )
    last = rows[len(positions) - 1]
    await conn.execute(
        "UPDATE sealer_state SET last_tx = $1, last_id = $2, position = $3, hash = $4",
        last["tx_id"],
        last["id"],
        position,
        previous,
    )
    return len(positions)


_NEXT_SQL = """
SELECT e.id, e.tx_id, {} FROM events e
WHERE (e.tx_id, e.id) > ($1::xid8, $2::bigint)
  AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY e.tx_id, e.id LIMIT $3
"""


async def _readable_rows(
    conn: asyncpg.Connection, args: tuple[Any, ...]
) -> tuple[list[asyncpg.Record], Unsealable | None]:
    """The next rows up to the first that cannot be read, and that one."""
    keys = await conn.fetch(_NEXT_SQL.format("e.event_id"), *args)
    found: list[asyncpg.Record] = []
    for key in keys:
        try:
            row = await conn.fetchrow(
                f"SELECT e.id, e.tx_id, {COLUMNS} FROM events e WHERE e.id = $1", key["id"]
            )
        except _ROW_FAILURES as exc:
            reason = _why(exc)
            return found, Unsealable(
                position=0, row_id=key["id"], event_id=str(key["event_id"]), reason=reason
            )
        found.append(row)
    return found, None


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


async def _chain_entries(conn: asyncpg.Connection) -> AsyncIterator[chain.ChainEntry]:
    async for row in conn.cursor(
        f"""
        SELECT c.position, c.event_id AS sealed_id, c.hash AS sealed_hash,
               {COLUMNS}
        FROM event_chain c LEFT JOIN events e ON e.event_id = c.event_id
        ORDER BY c.position
        """,
        prefetch=PAGE,
    ):
        yield _entry(row)


def _entry(row: asyncpg.Record) -> chain.ChainEntry:
    return chain.ChainEntry(
        position=row["position"],
        event_id=str(row["sealed_id"]),
        hash=bytes(row["sealed_hash"]),
        event=from_row(row) if row["event_id"] is not None else None,
    )


Observer = Callable[[Sequence[asyncpg.Record]], None]


async def verify(
    conn: asyncpg.Connection,
    *,
    held_checkpoints: Sequence[Mapping[str, Any]] = (),
    deep: bool = False,
    observe: Observer | None = None,
    service: str | None = None,
    keys: KeyRing | None = None,
) -> chain.Verdict:
    """Recompute the chain from the stored rows; reports the first bad position.

    `held_checkpoints` are signed checkpoints an auditor kept: the log must still match.
    Checkpoints count only if signed by a key `keys` pins for `service` or one the log
    announced since (chain_verifier.Verifier; without a pinned key the verdict warns).
    By default each event's canonical body is rendered from its stored columns and hashed (see
    _RENDERED_BODY); an event whose rendering does not hash to its sealed hash is canonicalised
    again with rfc8785 before anything is reported. `deep` canonicalises every event again.
    The verdicts are the same either way. Events rewritten by a redaction (log_redactions,
    shared/privacy_migration.py) are checked against the signed statement that covers them
    (chain_verifier.Verifier). `observe` (not with `deep`) sees each slice of rows
    (position, hash, stream_type, stream_id, stream_version, event_type, digest, and body for
    checkpoints and key changes only) once it has been checked, e.g. to fold the log in the
    same pass."""
    if conn.is_in_transaction():
        async with conn.transaction():
            walker = chain_verifier.Verifier(
                service=service, keys=keys, redactions=await redactions(conn)
            )
            return await _verify(conn, walker, held_checkpoints, deep, observe)
    # one snapshot for the whole walk, however long the log
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        walker = chain_verifier.Verifier(
            service=service, keys=keys, redactions=await redactions(conn)
        )
        return await _verify(conn, walker, held_checkpoints, deep, observe)


async def redactions(conn: asyncpg.Connection) -> dict[int, chain.Redaction]:
    """The redactions recorded in log_redactions (shared/privacy_migration.py), by position:
    claims only, each checked against the signed statement in the log (chain_verifier.Verifier).
    None in a database made before that table."""
    if await conn.fetchval("SELECT to_regclass('log_redactions')") is None:
        return {}
    rows = await conn.fetch(
        "SELECT position, event_id, before_sha256, after_sha256 FROM log_redactions"
    )
    return {
        int(r["position"]): chain.Redaction(
            position=int(r["position"]),
            event_id=str(r["event_id"]),
            before=bytes(r["before_sha256"]),
            after=bytes(r["after_sha256"]),
        )
        for r in rows
    }


async def _walk_rendered(
    conn: asyncpg.Connection, walker: chain_verifier.Verifier, observe: Observer | None
) -> None:
    add_digest = walker.add_digest
    signed = chain.SIGNED
    cursor = await conn.cursor(_RENDERED_SQL, list(signed))
    pending = asyncio.ensure_future(cursor.fetch(PAGE))
    try:
        while page := await pending:
            # ask for the next page before checking this one: the server renders and hashes it
            # meanwhile, on its own core (sleep(0) lets the request go out, and after each
            # slice lets the rows that arrived meanwhile be read, so the server never waits on
            # a full socket)
            pending = asyncio.ensure_future(cursor.fetch(PAGE))
            for start in range(0, len(page), SLICE):
                await asyncio.sleep(0)
                rows = page[start : start + SLICE]
                for position, stored_hash, _, _, _, event_type, digest, body in rows:
                    if add_digest(position, stored_hash, digest):
                        if event_type in signed:
                            if walker.signed(event_type, json.loads(body)["data"]) is not None:
                                break
                        continue
                    # not byte for byte what was sealed: canonicalise it again, as the sealer
                    # did (once the page in flight has arrived: one query at a time on a
                    # connection)
                    await asyncio.wait([pending])
                    try:
                        entry = _entry(await conn.fetchrow(_ENTRY_SQL, position))
                    except _ROW_FAILURES as exc:
                        walker.unreadable(position, _why(exc))
                        break
                    if walker.add(entry) is not None:
                        break
                if observe is not None:
                    observe(rows)
                if walker.failure is not None:
                    return
    finally:
        if not pending.done():
            pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, *dbmod.CONNECTION_LOST):
            await pending


async def _walk_one_by_one(conn: asyncpg.Connection, walker: chain_verifier.Verifier) -> None:
    position = len(walker.hashes) + 1
    while walker.failure is None:
        try:
            row = await conn.fetchrow(_ENTRY_SQL, position)
        except _ROW_FAILURES as exc:
            walker.unreadable(position, _why(exc))
            return
        if row is None:
            return
        walker.add(_entry(row))
        position += 1


async def _verify(
    conn: asyncpg.Connection,
    walker: chain_verifier.Verifier,
    held_checkpoints: Sequence[Mapping[str, Any]],
    deep: bool,
    observe: Observer | None,
) -> chain.Verdict:
    state = await conn.fetchrow("SELECT last_tx, last_id, position FROM sealer_state")
    # Events the sealer already passed but never sealed were inserted behind its back;
    # report the position of the first sealed event that follows each of them.
    inserted = await conn.fetch(
        """
        SELECT coalesce((SELECT min(c2.position) FROM event_chain c2
                         JOIN events e2 ON e2.event_id = c2.event_id
                         WHERE (e2.tx_id, e2.id) > (e.tx_id, e.id)), $3 + 1) AS position
        FROM events e LEFT JOIN event_chain c ON c.event_id = e.event_id
        WHERE c.event_id IS NULL AND (e.tx_id, e.id) <= ($1::xid8, $2::bigint)
        """,
        state["last_tx"],
        state["last_id"],
        state["position"],
    )
    if deep:
        try:
            async for entry in _chain_entries(conn):
                if walker.add(entry) is not None:
                    break
        except _ROW_FAILURES:  # a page holds a row asyncpg cannot read: find it
            await _walk_one_by_one(conn, walker)
    else:
        await _walk_rendered(conn, walker, observe)
    return walker.finish(
        unsealed_behind=[r["position"] for r in inserted],
        sealed_head=int(state["position"]),
        held_checkpoints=held_checkpoints,
    )


class Watch:
    """The relay's view of the sealer: the event it cannot seal, if any, reported in the logs,
    in the metrics (twinaid_sealer_blocked*) and in the worker's health answer. Sealing is then
    retried after a backoff (RETRY_FIRST doubling to RETRY_MAX seconds) while what was sealed
    before it goes on being published; the process never exits on a row."""

    RETRY_FIRST = 1.0
    RETRY_MAX = 60.0

    def __init__(self, metrics: Metrics, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.clock = clock
        self.blocked: Unsealable | None = None
        self.since: datetime | None = None
        self.attempts = 0
        self._delay = self.RETRY_FIRST
        self._retry_at = 0.0

    def due(self) -> bool:
        return self.blocked is None or self.clock() >= self._retry_at

    def failed(self, exc: Unsealable) -> None:
        again = self.blocked is not None and self.blocked.event_id == exc.event_id
        if not again:
            self.since = datetime.now(UTC)
            self.attempts = 0
            self._delay = self.RETRY_FIRST
            self.metrics.sealer_blocked.clear()
            self.metrics.sealer_blocked.labels(
                service=self.metrics.service,
                position=str(exc.position),
                event_id=exc.event_id,
                reason=exc.reason[:200],
            ).set(1)
        self.blocked = exc
        self.attempts += 1
        self.metrics.sealer_blocked_position.set(exc.position)
        self.metrics.sealer_failures.inc()
        (log.warning if again else log.error)(
            "cannot seal the event at position %d (events.id %d, event %s): %s; nothing after"
            " it is sealed or published until it is dealt with; attempt %d, next in %.0f s",
            exc.position,
            exc.row_id,
            exc.event_id,
            exc.reason,
            self.attempts,
            self._delay,
        )
        self._retry_at = self.clock() + self._delay
        self._delay = min(self._delay * 2, self.RETRY_MAX)

    def passed(self) -> None:
        """A round of sealing went through: the event that blocked it, if any, is sealed."""
        if self.blocked is None:
            return
        log.warning(
            "the event at position %d (event %s) was sealed after %d failed attempts",
            self.blocked.position,
            self.blocked.event_id,
            self.attempts,
        )
        self.blocked = None
        self.since = None
        self.attempts = 0
        self.metrics.sealer_blocked.clear()
        self.metrics.sealer_blocked_position.set(0)

    def as_dict(self) -> dict[str, Any]:
        if self.blocked is None:
            return {"blocked": False}
        return {
            "blocked": True,
            **self.blocked.as_dict(),
            "since": self.since.isoformat() if self.since else None,
            "attempts": self.attempts,
            "next_attempt_in_seconds": round(max(0.0, self._retry_at - self.clock()), 1),
        }
