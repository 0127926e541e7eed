"""The PostgreSQL log: append-only in the database, commit-safe global order, tamper evidence."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import UTC, datetime

import asyncpg
import pytest

from shared import chain, chain_walk
from shared import db as dbmod
from shared.event_store import PostgresEventStore
from shared.events import Metadata, NewEvent
from shared.testing import fresh_database, seal_everything

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
META = Metadata(actor="k", organisation="kharkiv", correlation_id="c")


async def append(conn: asyncpg.Connection, stream: str, expected: int, n: int = 1) -> None:
    await PostgresEventStore(conn).append(
        stream_type="test",
        stream_id=stream,
        expected_version=expected,
        events=[NewEvent("test.happened", {"n": i, "stream": stream}) for i in range(n)],
        metadata=META,
        now=NOW,
    )


@pytest.fixture
async def conn(db_url: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(db_url)
    yield connection
    await connection.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET data = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
        "UPDATE event_chain SET hash = '\\x00'",
        "DELETE FROM event_chain",
        "TRUNCATE event_chain CASCADE",
    ],
)
async def test_the_database_refuses_to_change_or_remove_logged_rows(
    conn: asyncpg.Connection,
    statement: str,
) -> None:
    await append(conn, "s", 0, 2)
    await seal_everything(conn)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute(statement)
    assert await conn.fetchval("SELECT count(*) FROM events") == 2
    assert await conn.fetchval("SELECT count(*) FROM event_chain") == 2


async def test_a_tailing_reader_sees_every_event_of_eight_concurrent_writers_once_in_order(
    db_url: str,
) -> None:
    writers, per_writer = 8, 60
    pool = await asyncpg.create_pool(db_url, min_size=10, max_size=12)
    seen: list[tuple[int, str, int]] = []
    done = asyncio.Event()

    async def writer(w: int) -> None:
        rng = random.Random(w)
        for i in range(per_writer):
            async with pool.acquire() as c, c.transaction():
                await append(c, f"w{w}-{i}", 0)
                # hold some transactions open so commits land out of position order
                await asyncio.sleep(rng.choice([0, 0, 0.001, 0.02]))

    async def sealer() -> None:
        while not done.is_set():
            async with pool.acquire() as c:
                await PostgresEventStore(c).seal(limit=50)
            await asyncio.sleep(0.002)

    async def reader() -> None:
        after = 0
        while True:
            async with pool.acquire() as c:
                page = await PostgresEventStore(c).read_all(after=after, limit=37)
            for e in page:
                assert e.position is not None
                seen.append((e.position, e.stream_id, e.stream_version))
                after = e.position
            if done.is_set() and not page and len(seen) >= writers * per_writer:
                return
            await asyncio.sleep(0.001)

    async def writers_then_done() -> None:
        await asyncio.gather(*(writer(w) for w in range(writers)))
        async with pool.acquire() as c:
            await seal_everything(c)
        done.set()

    try:
        await asyncio.wait_for(asyncio.gather(writers_then_done(), sealer(), reader()), 120)
        total = writers * per_writer
        positions = [p for p, _, _ in seen]
        assert positions == list(range(1, total + 1)), "skipped, repeated or reordered positions"
        assert len({s for _, s, _ in seen}) == total
        async with pool.acquire() as c:
            assert await c.fetchval("SELECT count(*) FROM events") == total
            verdict = await PostgresEventStore(c).verify()
        assert verdict.intact and verdict.head_position == total
    finally:
        await pool.close()


async def test_sealing_waits_for_a_transaction_that_is_still_open(db_url: str) -> None:
    slow = await asyncpg.connect(db_url)
    fast = await asyncpg.connect(db_url)
    try:
        tx = slow.transaction()
        await tx.start()
        await append(slow, "slow", 0)  # earlier transaction id, commits last
        await append(fast, "fast", 0)
        assert await PostgresEventStore(fast).seal() == 0, "sealed past an open transaction"
        await tx.commit()
        assert await seal_everything(fast) == 2
        events = await PostgresEventStore(fast).read_all(after=0, limit=10)
        assert [e.stream_id for e in events] == ["slow", "fast"]
    finally:
        await slow.close()
        await fast.close()


async def tampered(conn: asyncpg.Connection, sql: str) -> None:
    """Change the log as a superuser would, with the append-only triggers disabled."""
    async with conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
        await conn.execute("ALTER TABLE event_chain DISABLE TRIGGER USER")
        await conn.execute(sql)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
        await conn.execute("ALTER TABLE event_chain ENABLE TRIGGER USER")


async def verified(conn: asyncpg.Connection) -> chain.Verdict:
    """Verify both ways, rendering each event's canonical body from its columns (the default)
    and canonicalising every event again (deep): the verdicts must be the same."""
    rendered = await PostgresEventStore(conn).verify()
    deep = await PostgresEventStore(conn).verify(deep=True)
    same = dataclasses.replace(deep, recanonicalised=rendered.recanonicalised)
    assert rendered == same, f"rendered {rendered} but deep {deep}"
    return rendered


async def seeded(conn: asyncpg.Connection, n: int = 10) -> None:
    for i in range(n):
        await append(conn, f"s{i}", 0)
    assert await seal_everything(conn) == n
    assert (await PostgresEventStore(conn).verify()).intact


async def event_at(conn: asyncpg.Connection, position: int) -> str:
    return str(
        await conn.fetchval("SELECT event_id FROM event_chain WHERE position = $1", position)
    )


async def test_verify_names_the_position_of_a_modified_row(conn: asyncpg.Connection) -> None:
    await seeded(conn)
    eid = await event_at(conn, 4)
    await tampered(conn, f"UPDATE events SET data = '{{\"n\": 99}}' WHERE event_id = '{eid}'")
    verdict = await verified(conn)
    assert not verdict.intact
    assert verdict.bad_position == 4 and verdict.head_position == 3
    assert "modified" in (verdict.problem or "")


async def test_verify_names_the_position_of_a_deleted_row(conn: asyncpg.Connection) -> None:
    await seeded(conn)
    eid = await event_at(conn, 6)
    await tampered(conn, f"DELETE FROM events WHERE event_id = '{eid}'")
    verdict = await verified(conn)
    assert (verdict.intact, verdict.bad_position) == (False, 6)
    assert "deleted" in (verdict.problem or "")


async def test_verify_names_the_position_of_a_deleted_row_and_its_chain_entry(
    conn: asyncpg.Connection,
) -> None:
    await seeded(conn)
    eid = await event_at(conn, 5)
    await tampered(
        conn,
        f"DELETE FROM event_chain WHERE position = 5; DELETE FROM events WHERE event_id = '{eid}'",
    )
    verdict = await verified(conn)
    assert (verdict.intact, verdict.bad_position) == (False, 5)


async def test_verify_names_the_position_of_a_row_inserted_behind_the_sealer(
    conn: asyncpg.Connection,
) -> None:
    await seeded(conn)
    # a forged event slotted into history: it claims the transaction of position 3's event
    await tampered(
        conn,
        """
        INSERT INTO events (tx_id, event_id, stream_type, stream_id, stream_version,
                            event_type, schema_version, occurred_at, recorded_at, data, metadata)
        SELECT e.tx_id, gen_random_uuid(), 'test', 'forged', 1, 'test.happened', 1,
               e.occurred_at, e.recorded_at, '{"n": 1}', e.metadata
        FROM events e JOIN event_chain c ON c.event_id = e.event_id WHERE c.position = 3
    """,
    )
    verdict = await verified(conn)
    assert not verdict.intact
    assert "inserted" in (verdict.problem or "")
    # it sorts after every sealed event of that transaction: reported where it would sit
    assert verdict.bad_position == 4


async def test_verify_names_the_position_of_a_forged_chain_row_appended(
    conn: asyncpg.Connection,
) -> None:
    await seeded(conn)
    await tampered(
        conn,
        """
        INSERT INTO events (event_id, stream_type, stream_id, stream_version, event_type,
                            schema_version, occurred_at, recorded_at, data, metadata)
        VALUES ('00000000-0000-4000-8000-000000000001', 'test', 'forged', 1, 'test.happened', 1,
                now(), now(), '{}', '{}');
        INSERT INTO event_chain (position, event_id, hash)
        VALUES (11, '00000000-0000-4000-8000-000000000001', '\\x01');
    """,
    )
    verdict = await verified(conn)
    assert (verdict.intact, verdict.bad_position) == (False, 11)


async def test_verify_names_the_position_of_swapped_rows(conn: asyncpg.Connection) -> None:
    await seeded(conn)
    await tampered(
        conn,
        """
        UPDATE event_chain SET position = -1 WHERE position = 7;
        UPDATE event_chain SET position = 7 WHERE position = 8;
        UPDATE event_chain SET position = 8 WHERE position = -1;
    """,
    )
    verdict = await verified(conn)
    assert (verdict.intact, verdict.bad_position) == (False, 7)
    assert verdict.head_position == 6


async def test_verify_names_a_truncated_tail(conn: asyncpg.Connection) -> None:
    await seeded(conn)
    await tampered(conn, "DELETE FROM event_chain WHERE position > 8")
    verdict = await verified(conn)
    assert (verdict.intact, verdict.bad_position) == (False, 9)


async def test_an_untouched_log_verifies_without_canonicalising_any_event_again(
    conn: asyncpg.Connection,
) -> None:
    await seeded(conn, 12)
    rendered = await PostgresEventStore(conn).verify()
    deep = await PostgresEventStore(conn).verify(deep=True)
    assert rendered.intact and rendered.head_position == 12
    assert (rendered.head_hash, rendered.recanonicalised) == (deep.head_hash, 0)
    assert deep.recanonicalised == 12


async def test_events_stored_in_another_json_form_are_canonicalised_again_and_verify(
    conn: asyncpg.Connection,
) -> None:
    """Rows written before data was stored as RFC 8785 text (or by hand, in any JSON spelling):
    the sealer hashed their canonical form, so their rendering cannot match; verify falls back
    to rfc8785 for exactly those rows and finds the log intact."""
    await append(conn, "a", 0, 2)
    await conn.execute(
        """
        INSERT INTO events (event_id, stream_type, stream_id, stream_version, event_type,
                            schema_version, occurred_at, recorded_at, data, metadata)
        VALUES (gen_random_uuid(), 'test', 'b', 1, 'test.happened', 1, now(), now(),
                '{ "z": [1.0, 2.50, "\u00e9"],  "a": {"y": 1e2, "x": null} }',
                '{"organisation": "kharkiv", "actor": "k"}')
        """
    )
    await append(conn, "c", 0)
    assert await seal_everything(conn) == 4
    verdict = await verified(conn)
    assert verdict.intact and verdict.head_position == 4
    assert verdict.recanonicalised == 1


async def test_verify_walks_page_after_page_while_the_next_is_in_flight(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk asks for the next page before checking the current one; a row that must be
    canonicalised again (the connection's one query at a time) and a tampered row, both past
    the first pages, are still found at their positions."""
    monkeypatch.setattr(chain_walk, "PAGE", 3)
    for i in range(7):
        await append(conn, f"p{i}", 0)
    await conn.execute(
        """
        INSERT INTO events (event_id, stream_type, stream_id, stream_version, event_type,
                            schema_version, occurred_at, recorded_at, data, metadata)
        VALUES (gen_random_uuid(), 'test', 'spelled', 1, 'test.happened', 1, now(), now(),
                '{ "b": 1.50,  "a": 2 }', '{"organisation": "kharkiv", "actor": "k"}')
        """
    )
    for i in range(6):
        await append(conn, f"q{i}", 0)
    assert await seal_everything(conn) == 14
    intact = await verified(conn)
    assert (intact.intact, intact.head_position, intact.recanonicalised) == (True, 14, 1)

    eid = await event_at(conn, 11)
    await tampered(conn, f"UPDATE events SET data = '{{\"n\": 99}}' WHERE event_id = '{eid}'")
    broken = await verified(conn)
    assert (broken.intact, broken.bad_position, broken.head_position) == (False, 11, 10)
    assert broken.recanonicalised == 2, "the respelled row, then the tampered one"
    # the connection is left usable: no fetch still in flight
    assert await conn.fetchval("SELECT count(*) FROM event_chain") == 14


async def test_a_log_kept_in_jsonb_columns_is_migrated_and_still_verifies(pg_server: str) -> None:
    """Databases created when data and metadata were jsonb: applying the schema turns the
    columns into json, and the chain sealed over them still verifies."""
    current = dbmod.schema_text("shared")
    start = current.index("-- Logs created when these columns were jsonb")
    end = current.index("END $$;", start) + len("END $$;")
    old = (
        (current[:start] + current[end:])
        .replace("data           json NOT NULL", "data           jsonb NOT NULL")
        .replace("metadata       json NOT NULL", "metadata       jsonb NOT NULL")
    )
    assert "jsonb NOT NULL" in old
    async with fresh_database(pg_server) as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("DROP TABLE events, event_chain, sealer_state CASCADE")
            await conn.execute("DROP TABLE twinaid_schema_applied")
            await dbmod.apply_schema(conn, old)
            column = "SELECT data_type FROM information_schema.columns WHERE table_name = 'events'"
            assert await conn.fetchval(column + " AND column_name = 'data'") == "jsonb"
            for i in range(5):
                await append(conn, f"old{i}", 0)
            assert await seal_everything(conn) == 5
            before = await PostgresEventStore(conn).verify()

            await dbmod.apply_schema(conn, dbmod.schema_text("shared"))
            # as a service restarting on the new code: statements prepared before are stale
            await conn.close()
            conn = await asyncpg.connect(url)
            assert await conn.fetchval(column + " AND column_name = 'data'") == "json"
            assert await conn.fetchval(column + " AND column_name = 'metadata'") == "json"
            await append(conn, "new", 0)
            assert await seal_everything(conn) == 1
            after = await verified(conn)
            assert after.intact and after.head_position == 6
            assert after.recanonicalised == 5, "jsonb's spelling is not RFC 8785: all 5 again"
            assert before.intact and before.head_position == 5
        finally:
            await conn.close()
