"""Signed checkpoints: a rewrite of the whole database no longer matches what was signed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from services.audit import signing_keys
from shared import chain, signing
from shared.db import Database
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.keys import KeyRing
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


def pinned(*signers: signing.Signer) -> KeyRing:
    return KeyRing.pinned({"registry": [s.public_key for s in signers]})


async def verdicts(conn: asyncpg.Connection, ring: KeyRing | None) -> list[chain.Verdict]:
    """The rendered walk and the deep walk, each with a ring of its own."""
    pins = {"registry": list(ring.keys("registry"))} if ring else None
    return [
        await PostgresEventStore(conn).verify(
            deep=deep, service="registry", keys=KeyRing.pinned(pins) if pins else None
        )
        for deep in (False, True)
    ]


async def test_a_database_rewritten_and_resigned_with_a_new_key_fails_against_the_pinned_key(
    conn: asyncpg.Connection,
    db_url: str,
) -> None:
    owner = signing.Signer.generate()
    await append(conn, 4)
    await seal_everything(conn)
    await checkpoint(db_url, owner)
    await seal_everything(conn)
    await rewrite_history(
        conn,
        sql=f"""
        UPDATE events SET data = '{{"i": 999}}' WHERE event_id =
            (SELECT event_id FROM event_chain WHERE position = 2);
        DELETE FROM event_chain WHERE event_id IN
            (SELECT event_id FROM events WHERE event_type = '{signing.CHECKPOINT}');
        DELETE FROM events WHERE event_type = '{signing.CHECKPOINT}'""",
    )
    forger = signing.Signer.generate()
    await checkpoint(db_url, forger)
    await seal_everything(conn)

    for verdict in await verdicts(conn, None):
        assert verdict.intact and verdict.checkpoints_checked == 1, "fools an unpinned verify"
        assert "no pinned key for registry" in (verdict.warning or "")
    for verdict in await verdicts(conn, pinned(owner)):
        assert (verdict.intact, verdict.bad_position) == (False, 4)
        assert verdict.problem == (
            f"checkpoint at 4 signed by key {forger.public_key}, which is neither pinned nor"
            " announced"
        )
        assert verdict.warning is None


async def test_a_key_change_announced_by_the_pinned_key_lets_the_new_key_sign(
    conn: asyncpg.Connection,
    db_url: str,
) -> None:
    old, new = signing.Signer.generate(), signing.Signer.generate()
    await append(conn, 2)
    await seal_everything(conn)
    await checkpoint(db_url, old)
    async with conn.transaction():
        await signing_keys.announce(conn, service="registry", previous=old, new=new, now=NOW)
    await append(conn, 2, prefix="later")
    await seal_everything(conn)
    await checkpoint(db_url, new)
    await seal_everything(conn)

    for verdict in await verdicts(conn, pinned(old)):
        assert verdict.intact and verdict.checkpoints_checked == 2, verdict.problem
        assert verdict.warning is None
    # a checkpoint an auditor kept, signed by the new key, is checked after the announcement
    held = await held_checkpoints(conn)
    verdict = await PostgresEventStore(conn).verify(
        held_checkpoints=held, service="registry", keys=pinned(old)
    )
    assert verdict.intact and verdict.checkpoints_checked == 4
    # the pins decide: pinned to the new key only, the old key's checkpoint is a stranger's
    for verdict in await verdicts(conn, pinned(new)):
        assert (verdict.intact, verdict.bad_position) == (False, 2)
        assert f"signed by key {old.public_key}, which is neither pinned" in (verdict.problem or "")


async def test_a_key_change_signed_by_an_untrusted_key_fails_and_trusts_nothing(
    conn: asyncpg.Connection,
    db_url: str,
) -> None:
    owner, intruder, theirs = (signing.Signer.generate() for _ in range(3))
    await append(conn, 2)
    await seal_everything(conn)
    async with conn.transaction():
        await signing_keys.announce(
            conn, service="registry", previous=intruder, new=theirs, now=NOW
        )
    await seal_everything(conn)
    await checkpoint(db_url, theirs)
    await seal_everything(conn)

    for verdict in await verdicts(conn, pinned(owner)):
        assert (verdict.intact, verdict.bad_position) == (False, 3)
        assert verdict.problem == (
            f"key change at 3 to key {theirs.public_key} is not signed by a key trusted for"
            f" registry: key {intruder.public_key} is neither pinned nor announced for registry"
        )
    # with the intruder's key pinned, its change is followed; a checkpoint of another service
    # is still refused in this log, even signed by a trusted key
    other = owner.checkpoint(service="pledges", position=2, head=bytes(32), at=NOW)
    verdict = await PostgresEventStore(conn).verify(
        held_checkpoints=[other], service="registry", keys=pinned(owner, intruder)
    )
    assert verdict.checkpoints_checked == 1
    assert verdict.problem == "checkpoint at 2 is of pledges, in registry's log"


async def test_no_checkpoint_is_signed_while_sealing_is_refused(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """A head the sealer refuses (a cut tail: shared/sealer.py ChainCut) is never signed."""
    from shared import sealer

    await append(conn, 3)
    await seal_everything(conn)
    db = Database(db_url, max_size=2)
    await db.open()
    try:
        relay = Relay(
            service="registry",
            settings=settings_for(db_url, checkpoint_interval=0.01),
            db=db,
            metrics=Metrics("registry"),
            signer=signing.Signer.generate(),
        )
        await asyncio.sleep(0.02)
        relay.sealing.failed(sealer.ChainCut(head=3, published=5))
        assert not await relay.checkpoint_if_due()
        assert await held_checkpoints(conn) == []
        relay.sealing.passed()  # sealing goes through again: the head is signed
        assert await relay.checkpoint_if_due()
        assert len(await held_checkpoints(conn)) == 1
    finally:
        await db.close()
