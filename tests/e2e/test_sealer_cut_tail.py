"""Events cut from the log's tail after they were sealed and published (events, event_chain
and sealer_state set back, triggers off): verify cannot see it when no kept checkpoint reaches
them, but positions never go back. The sealer seals nothing over the cut head (so nothing is
chained, published or signed on top of it) and says why, as it does for a row it cannot seal:
in the log, the metrics and the worker's health answer (Watch)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg
import pytest

from shared import db as dbmod
from shared import sealer
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.metrics import Metrics
from shared.testing import fresh_database, seal_everything

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


async def _append(conn: asyncpg.Connection, i: int) -> None:
    async with conn.transaction():
        await PostgresEventStore(conn).append(
            stream_type="t",
            stream_id=f"s-{i}",
            expected_version=0,
            events=[NewEvent("t.happened", {"i": i})],
            metadata=Metadata(),
            now=NOW,
        )


async def _cut_tail(conn: asyncpg.Connection, *, keep: int) -> None:
    """What someone holding the database does to drop the last events unseen."""
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        cut = await conn.fetch("SELECT event_id FROM event_chain WHERE position > $1", keep)
        await conn.execute("DELETE FROM event_chain WHERE position > $1", keep)
        await conn.execute(
            "DELETE FROM events WHERE event_id = ANY($1::uuid[])", [r["event_id"] for r in cut]
        )
        await conn.execute(
            """
            UPDATE sealer_state s SET position = c.position, hash = c.hash,
                                      last_tx = e.tx_id, last_id = e.id
            FROM event_chain c JOIN events e USING (event_id) WHERE c.position = $1
            """,
            keep,
        )


async def test_a_head_behind_what_was_published_is_never_sealed_over(
    pg_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        conn = await asyncpg.connect(url)
        try:
            for i in range(5):
                await _append(conn, i)
            assert await seal_everything(conn) == 5
            # the relay published all five
            await conn.execute("INSERT INTO relay_checkpoint (topic, position) VALUES ('t', 5)")
            await _cut_tail(conn, keep=3)
            assert (await PostgresEventStore(conn).verify()).intact  # unseen by verify

            await _append(conn, 5)  # a new write (or the worker's next signed checkpoint)
            with pytest.raises(sealer.ChainCut) as raised:
                await sealer.seal(conn)
            assert (raised.value.head, raised.value.published) == (3, 5)
            assert "position 5 was already published" in raised.value.reason
            assert await conn.fetchval("SELECT max(position) FROM event_chain") == 3
            assert await conn.fetchval("SELECT position FROM sealer_state") == 3

            # reported as a row that cannot be sealed is: log, metrics, health answer
            watch = sealer.Watch(Metrics("registry-cut-test"))
            with caplog.at_level(logging.ERROR, logger="twinaid.sealer"):
                watch.failed(raised.value)
            assert "sealed events were removed from the log's tail" in caplog.text
            assert all(r.levelno < logging.CRITICAL for r in caplog.records)
            said = watch.as_dict()
            assert said["blocked"] and said["position"] == 4, said
            assert "already published" in said["reason"]

            # once dealt with (here: the relay told to publish again from the start), it seals
            await conn.execute("DELETE FROM relay_checkpoint")
            # (seal_everything: one round may seal nothing while another session, anywhere on
            # the server, is mid-transaction)
            assert await seal_everything(conn) == 1
            watch.passed()
            assert watch.as_dict() == {"blocked": False}
            assert (await PostgresEventStore(conn).verify()).head_position == 4
        finally:
            await conn.close()


async def test_a_head_at_or_past_what_was_published_seals_as_before(pg_server: str) -> None:
    async with fresh_database(pg_server, dbmod.schema_text("services.registry")) as url:
        conn = await asyncpg.connect(url)
        try:
            await _append(conn, 0)
            assert await seal_everything(conn) == 1
            await conn.execute("INSERT INTO relay_checkpoint (topic, position) VALUES ('t', 1)")
            await _append(conn, 1)
            assert await seal_everything(conn) == 1
        finally:
            await conn.close()
