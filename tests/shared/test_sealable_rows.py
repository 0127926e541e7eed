"""The database itself refuses any row the chain cannot seal (events_sealable_v1), whoever
writes it: a plain INSERT or twinaid_append, past every check in Python."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.event_store import REFUSED_BY_DATABASE, PostgresEventStore
from shared.testing import seal_everything

GOOD = ("2022-03-01 09:00:00+00", "{}", "{}")


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


REFUSED = {
    "minus-infinity": ("-infinity", "{}", "{}"),
    "infinity": ("infinity", "{}", "{}"),
    "year-1": ("0001-01-01 00:00:00+00", "{}", "{}"),
    "before-1900": ("1899-12-31 23:59:59.999999+00", "{}", "{}"),
    "year-2200": ("2200-01-01 00:00:00+00", "{}", "{}"),
    "huge-integer": (GOOD[0], '{"n":100000000000000000000}', "{}"),
    "just-past-2**53": (GOOD[0], '{"n":-9007199254740992}', "{}"),
    "float-beyond": (GOOD[0], '{"n":[1e400]}', "{}"),
    "nul": (GOOD[0], '{"a":"x\\u0000"}', "{}"),
    "escaped-backslash-then-nul": (GOOD[0], '{"a":"\\\\\\u0000"}', "{}"),
    "lone-surrogate": (GOOD[0], '{"a":"\\ud800"}', "{}"),
    "nested-65-deep": (GOOD[0], '{"a":' + nested(64) + "}", "{}"),
    "data-not-an-object": (GOOD[0], "[1]", "{}"),
    "metadata-not-an-object": (GOOD[0], "{}", "null"),
    "metadata-huge-number": (GOOD[0], "{}", '{"actor":1e300}'),
}
ACCEPTED = {
    "first-instant": ("1900-01-01 00:00:00+00", "{}", "{}"),
    "last-instant": ("2199-12-31 23:59:59.999999+00", "{}", "{}"),
    "largest-integer": (GOOD[0], '{"n":9007199254740991,"m":-9007199254740991}', "{}"),
    "nested-64-deep": (GOOD[0], '{"a":' + nested(63) + "}", "{}"),
    "an-escaped-backslash-before-u0000": (GOOD[0], '{"a":"\\\\u0000"}', "{}"),
    "a-surrogate-pair": (GOOD[0], '{"a":"\\ud83d\\ude00"}', "{}"),
    "a-tiny-float": (GOOD[0], '{"a":1.5e-300,"b":"1e5 and 12345678901234567 as text"}', "{}"),
}
INSERT = (
    "INSERT INTO events (event_id, stream_type, stream_id, stream_version, event_type,"
    " schema_version, occurred_at, recorded_at, data, metadata)"
    " VALUES ($1, 's', $2, 1, 's.happened', 1, $3::text::timestamptz, $4::text::timestamptz,"
    " $5::text::json, $6::text::json)"
)
APPEND = (
    "SELECT twinaid_append('s', $2, 0, $4::text::timestamptz, $6, ARRAY[$1::uuid],"
    " ARRAY['s.happened'], ARRAY[1], ARRAY[$3::text::timestamptz], ARRAY[$5])"
)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_url)
    try:
        yield connection
    finally:
        await connection.close()


async def write(conn: asyncpg.Connection, sql: str, row: tuple[str, str, str], **at: str) -> None:
    occurred_at, data, metadata = row
    recorded_at = at.get("recorded_at", GOOD[0])
    await conn.execute(
        sql, uuid.uuid4(), f"s-{uuid.uuid4().hex}", occurred_at, recorded_at, data, metadata
    )


@pytest.mark.parametrize("sql", [INSERT, APPEND], ids=["insert", "twinaid_append"])
@pytest.mark.parametrize("row", REFUSED.values(), ids=REFUSED.keys())
async def test_the_database_refuses_a_row_the_chain_cannot_seal(
    conn: asyncpg.Connection, sql: str, row: tuple[str, str, str]
) -> None:
    with pytest.raises(REFUSED_BY_DATABASE):
        await write(conn, sql, row)
    assert await conn.fetchval("SELECT count(*) FROM events") == 0


@pytest.mark.parametrize("recorded_at", ["-infinity", "1899-12-31 23:59:59+00", "2200-01-01Z"])
async def test_the_database_refuses_a_recording_instant_outside_the_log_s_range(
    conn: asyncpg.Connection, recorded_at: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="events_sealable_v1"):
        await write(conn, INSERT, GOOD, recorded_at=recorded_at)
    assert await conn.fetchval("SELECT count(*) FROM events") == 0


async def test_the_database_accepts_the_edges_of_the_log_s_rules_and_they_seal(
    conn: asyncpg.Connection,
) -> None:
    for row in ACCEPTED.values():
        await write(conn, INSERT, row)
    assert await seal_everything(conn) == len(ACCEPTED)
    stored = await conn.fetchval("SELECT count(*) FROM events")
    assert stored == len(ACCEPTED)


TAMPERED = {
    "minus-infinity": ("occurred_at = '-infinity'", "not an instant"),
    "before-year-1": ("occurred_at = '0001-01-01 00:00:00+00 BC'", "cannot be read"),
    "huge-number": ("data = '{\"n\":100000000000000000000}'", "no canonical form"),
}


@pytest.mark.parametrize("deep", [False, True], ids=["rendered", "deep"])
@pytest.mark.parametrize("change", TAMPERED.values(), ids=TAMPERED.keys())
async def test_a_sealed_row_made_unsealable_is_reported_by_verify_not_raised(
    conn: asyncpg.Connection, change: tuple[str, str], deep: bool
) -> None:
    """A superuser who drops the constraint and the trigger can still write anything: verify
    names the position instead of failing on a row it cannot read or canonicalise."""
    for _ in range(3):
        await write(conn, INSERT, GOOD)
    assert await seal_everything(conn) == 3
    second = await conn.fetchval("SELECT event_id FROM event_chain WHERE position = 2")
    assignment, problem = change
    await conn.execute("ALTER TABLE events DROP CONSTRAINT events_sealable_v1")
    await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
    await conn.execute(f"UPDATE events SET {assignment} WHERE event_id = $1", second)
    await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    verdict = await PostgresEventStore(conn).verify(deep=deep)
    assert not verdict.intact and verdict.bad_position == 2
    assert verdict.problem is not None and problem in verdict.problem
