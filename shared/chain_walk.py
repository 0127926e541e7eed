"""Verifying a service's stored log: its chain recomputed from the rows (shared/sealer.py
seals them), through the pure walker of shared/chain_verifier.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import asyncpg

from shared import chain, chain_verifier
from shared import db as dbmod
from shared.keys import KeyRing
from shared.rows import COLUMNS, from_row

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

# What reading or canonicalising a row the chain cannot seal raises (asyncpg's decoding of an
# instant before year 1, a naive infinity, JSON with no canonical form, metadata that is not
# an object); a lost connection or a database error is not among them.
ROW_FAILURES = (
    ValueError,
    ArithmeticError,
    TypeError,
    AttributeError,
    LookupError,
    RecursionError,
)


def why(exc: BaseException) -> str:
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
                    except ROW_FAILURES as exc:
                        walker.unreadable(position, why(exc))
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
        except ROW_FAILURES as exc:
            walker.unreadable(position, why(exc))
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
        except ROW_FAILURES:  # a page holds a row asyncpg cannot read: find it
            await _walk_one_by_one(conn, walker)
    else:
        await _walk_rendered(conn, walker, observe)
    return walker.finish(
        unsealed_behind=[r["position"] for r in inserted],
        sealed_head=int(state["position"]),
        held_checkpoints=held_checkpoints,
    )
