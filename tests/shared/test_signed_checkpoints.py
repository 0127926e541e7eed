"""Signed checkpoints: a rewrite of the whole database no longer matches what was signed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from shared import chain, signing
from shared.db import Database
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.metrics import Metrics
from shared.outbox import Relay
from shared.rows import from_row
from shared.testing import seal_everything
from tests.conftest import settings_for

NOW = datetime(2026, 11, 24, tzinfo=UTC)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_url)
    yield connection
    await connection.close()


async def append(conn: asyncpg.Connection, n: int, prefix: str = "s") -> None:
    for i in range(n):
        await PostgresEventStore(conn).append(
            stream_type="test",
            stream_id=f"{prefix}{i}",
            expected_version=0,
            events=[NewEvent("test.happened", {"i": i})],
            metadata=Metadata(),
            now=NOW,
        )


async def checkpoint(db_url: str, signer: signing.Signer) -> None:
    """What the relay leader does at each interval."""
    db = Database(db_url, max_size=2)
    await db.open()
    try:
        relay = Relay(
            service="registry",
            settings=settings_for(db_url, checkpoint_interval=0.01),
            db=db,
            metrics=Metrics("registry"),
            signer=signer,
        )
        await asyncio.sleep(0.02)
        assert await relay.checkpoint_if_due()
    finally:
        await db.close()


async def held_checkpoints(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT data FROM events WHERE event_type = $1", signing.CHECKPOINT)
    return [json.loads(r["data"]) for r in rows]


async def rewrite_history(conn: asyncpg.Connection, *, sql: str) -> None:
    """An attacker with superuser rights: change rows, then recompute the whole chain."""
    await conn.execute(
        "ALTER TABLE events DISABLE TRIGGER USER; ALTER TABLE event_chain DISABLE TRIGGER USER"
    )
    await conn.execute(sql)
    rows = await conn.fetch(
        "SELECT c.position, e.* FROM event_chain c JOIN events e ON e.event_id = c.event_id"
        " ORDER BY c.position"
    )
    previous = chain.GENESIS
    for row in rows:
        previous = chain.link(previous, from_row(row), position=row["position"])
        await conn.execute(
            "UPDATE event_chain SET hash = $1 WHERE position = $2", previous, row["position"]
        )
    await conn.execute(
        "UPDATE sealer_state SET hash = $1, position = $2", previous, rows[-1]["position"]
    )
    await conn.execute(
        "ALTER TABLE events ENABLE TRIGGER USER; ALTER TABLE event_chain ENABLE TRIGGER USER"
    )


async def test_the_relay_signs_the_chain_head_and_verify_checks_the_signature(
    conn: asyncpg.Connection,
    db_url: str,
) -> None:
    await append(conn, 5)
    await seal_everything(conn)
    await checkpoint(db_url, signing.Signer.generate())
    await seal_everything(conn)
    [held] = await held_checkpoints(conn)
    assert held["position"] == 5 and signing.signature_valid(held)
    assert not signing.signature_valid({**held, "position": 4})
    verdict = await PostgresEventStore(conn).verify()
    assert verdict.intact and verdict.checkpoints_checked == 1 and verdict.head_position == 6


async def test_a_rewritten_history_with_a_recomputed_chain_fails_the_signed_checkpoint(
    conn: asyncpg.Connection,
    db_url: str,
) -> None:
    await append(conn, 5)
    await seal_everything(conn)
    await checkpoint(db_url, signing.Signer.generate())
    await append(conn, 3, prefix="later")
    await seal_everything(conn)
    held = await held_checkpoints(conn)
    await rewrite_history(
        conn,
        sql="""
        UPDATE events SET data = '{"i": 999}' WHERE event_id =
            (SELECT event_id FROM event_chain WHERE position = 2)""",
    )
    verdict = await PostgresEventStore(conn).verify()
    assert (verdict.intact, verdict.bad_position) == (False, 5)
    assert "checkpoint" in (verdict.problem or "")
    # the attacker also deletes the checkpoint event: the copy the auditor holds still tells
    await rewrite_history(
        conn,
        sql=f"""
        DELETE FROM event_chain WHERE event_id IN
            (SELECT event_id FROM events WHERE event_type = '{signing.CHECKPOINT}');
        DELETE FROM events WHERE event_type = '{signing.CHECKPOINT}';
        UPDATE event_chain SET position = position - 1 WHERE position > 6""",
    )
    assert (await PostgresEventStore(conn).verify()).intact, "the forgery fools a plain verify"
    verdict = await PostgresEventStore(conn).verify(held_checkpoints=held)
    assert (verdict.intact, verdict.bad_position) == (False, 5)


async def test_truncating_the_tail_after_a_checkpoint_is_caught_by_a_held_copy(
    conn: asyncpg.Connection,
    db_url: str,
) -> None:
    await append(conn, 4)
    await seal_everything(conn)
    await checkpoint(db_url, signing.Signer.generate())
    await seal_everything(conn)
    held = await held_checkpoints(conn)
    await rewrite_history(
        conn,
        sql="""
        DELETE FROM events WHERE event_id IN (SELECT event_id FROM event_chain WHERE position > 2);
        DELETE FROM event_chain WHERE position > 2""",
    )
    verdict = await PostgresEventStore(conn).verify(held_checkpoints=held)
    assert (verdict.intact, verdict.bad_position) == (False, 3)
    assert "tail" in (verdict.problem or "")


async def test_a_checkpoint_signed_by_another_key_is_refused(conn: asyncpg.Connection) -> None:
    await append(conn, 2)
    await seal_everything(conn)
    position, head = await PostgresEventStore(conn).head()
    forged = signing.Signer.generate().checkpoint(
        service="registry", position=position, head=head, at=NOW
    )
    forged["public_key"] = signing.Signer.generate().public_key
    verdict = await PostgresEventStore(conn).verify(held_checkpoints=[forged])
    assert (verdict.intact, verdict.bad_position) == (False, 2)
    assert "signature" in (verdict.problem or "")


async def test_the_signing_key_is_kept_in_its_file_across_restarts(tmp_path: Any) -> None:
    path = tmp_path / "keys" / "registry.ed25519"
    first = signing.Signer.from_file(path)
    assert signing.Signer.from_file(path).public_key == first.public_key
    assert oct(path.stat().st_mode & 0o777) == "0o600"
