"""The sealer: dense global positions and the hash chain, and their verification.

Run by the relay leader. Only events whose transaction is older than every transaction still
running anywhere on the server (transaction ids are server-wide) are sealed, in (transaction
id, row id) order, so a reader that follows sealed positions never passes an event that could
still commit behind it. See shared/event_store.py for the trade-off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import asyncpg

from shared import chain
from shared.rows import COLUMNS, from_row


async def head(conn: asyncpg.Connection) -> tuple[int, bytes]:
    row = await conn.fetchrow("SELECT position, hash FROM sealer_state")
    return int(row["position"]), bytes(row["hash"])


async def seal(conn: asyncpg.Connection, *, limit: int = 1000) -> int:
    async with conn.transaction():  # a savepoint when the caller has a transaction
        return await _seal(conn, limit)


async def _seal(conn: asyncpg.Connection, limit: int) -> int:
    state = await conn.fetchrow(
        "SELECT last_tx, last_id, position, hash FROM sealer_state FOR UPDATE"
    )
    # Only transactions older than every one still running: none of them can commit an
    # event that sorts before what we seal now.
    rows = await conn.fetch(
        f"""
        SELECT e.id, e.tx_id, {COLUMNS} FROM events e
        WHERE (e.tx_id, e.id) > ($1::xid8, $2::bigint)
          AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY e.tx_id, e.id LIMIT $3
        """,
        state["last_tx"],
        state["last_id"],
        limit,
    )
    if not rows:
        return 0
    position = int(state["position"])
    previous = bytes(state["hash"])
    positions, ids, hashes = [], [], []
    for row in rows:
        position += 1
        previous = chain.link(previous, from_row(row), position=position)
        positions.append(position)
        ids.append(row["event_id"])
        hashes.append(previous)
    await conn.execute(
        "INSERT INTO event_chain (position, event_id, hash)"
        " SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::bytea[])",
        positions,
        ids,
        hashes,
    )
    last = rows[-1]
    await conn.execute(
        "UPDATE sealer_state SET last_tx = $1, last_id = $2, position = $3, hash = $4",
        last["tx_id"],
        last["id"],
        position,
        previous,
    )
    return len(rows)


async def _chain_entries(conn: asyncpg.Connection) -> AsyncIterator[chain.ChainEntry]:
    async for row in conn.cursor(
        f"""
        SELECT c.position, c.event_id AS sealed_id, c.hash AS sealed_hash,
               {COLUMNS}
        FROM event_chain c LEFT JOIN events e ON e.event_id = c.event_id
        ORDER BY c.position
        """,
        prefetch=5000,
    ):
        event = from_row(row) if row["event_id"] is not None else None
        yield chain.ChainEntry(
            position=row["position"],
            event_id=str(row["sealed_id"]),
            hash=bytes(row["sealed_hash"]),
            event=event,
        )


async def verify(
    conn: asyncpg.Connection, *, held_checkpoints: Sequence[Mapping[str, Any]] = ()
) -> chain.Verdict:
    """Recompute the chain from the stored rows; reports the first bad position.

    `held_checkpoints` are signed checkpoints an auditor kept: the log must still match."""
    if conn.is_in_transaction():
        async with conn.transaction():
            return await _verify(conn, held_checkpoints)
    # one snapshot for the whole walk, however long the log
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _verify(conn, held_checkpoints)


async def _verify(
    conn: asyncpg.Connection, held_checkpoints: Sequence[Mapping[str, Any]]
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
    return chain.verify(
        [entry async for entry in _chain_entries(conn)],
        unsealed_behind=[r["position"] for r in inserted],
        sealed_head=int(state["position"]),
        held_checkpoints=held_checkpoints,
    )
