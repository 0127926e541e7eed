"""A per-key rate limit: a token bucket per API key, shared by every replica of an API.

The buckets live in the service's own database (`rate_limits`,
shared/migrations/shared_0002_rate_limits.sql), so N replicas of an API admit what ONE bucket
allows, not N times it. Each request spends its token with one statement on a pooled connection (no
explicit transaction): an upsert that refills the key's bucket by the time elapsed on the database's
clock and spends a token only if a whole one is there. The row is locked for that statement alone,
so two replicas cannot both spend the last token; a refused request changes nothing.

The table is UNLOGGED: no WAL, so a statement's commit waits for no disk flush, and the row
lock that serialises one key's requests is held for microseconds (a logged table doubled the
statement's cost and held the lock through the flush). What that gives up is harmless: after
a crash of PostgreSQL (or on a promoted standby) the table starts empty, every bucket full.

A bucket is a row per key (`tokens`, `at`: its level and the time of that level), so the table
holds at most one row per API key ever issued: it does not grow with traffic."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

from shared.db import Database
from shared.errors import TooManyRequests

# $1 key, $2 rate (tokens a second), $3 burst (capacity), $4 the time (NULL: the database's).
# `spent` refills and spends in one upsert, its WHERE leaving the row alone when less than a
# token is there; only then does the second branch read the level, for Retry-After. That read
# sees the statement's snapshot: a replica that spent from the bucket meanwhile may not show,
# which can only make Retry-After short (never a wrong admission); take() keeps it in bounds.
TAKE = """
WITH clock AS (SELECT coalesce($4::timestamptz, clock_timestamp()) AS t),
spent AS (
    INSERT INTO rate_limits AS b (key_id, tokens, at)
    SELECT $1::text, $3::float8 - 1, t FROM clock
    ON CONFLICT (key_id) DO UPDATE
    SET tokens = least($3, b.tokens + $2::float8
                       * greatest(date_part('epoch', excluded.at - b.at), 0)) - 1,
        at = greatest(b.at, excluded.at)
    WHERE least($3, b.tokens + $2 * greatest(date_part('epoch', excluded.at - b.at), 0)) >= 1
    RETURNING tokens
)
SELECT true AS admitted, tokens FROM spent
UNION ALL
SELECT false, least($3, b.tokens + $2 * greatest(date_part('epoch', clock.t - b.at), 0))
FROM rate_limits b, clock
WHERE b.key_id = $1 AND NOT EXISTS (SELECT FROM spent)
"""


class RateLimiter:
    """`rate` requests a second on average, bursts up to `burst`, per key across every
    process on `database`; `rate <= 0` turns it off (and never touches the database).

    `clock` (seconds) replaces the database's clock: tests drive it by hand, so what a test
    sees does not depend on how fast the machine runs it. None (production): every replica
    reads the one clock of the database, so their own clocks' skew does not matter."""

    def __init__(
        self,
        database: Database | None = None,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.database = database
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock

    async def take(self, key: str) -> None:
        """Spend one token of `key`'s bucket; raises TooManyRequests with Retry-After."""
        if self.rate <= 0:
            return
        assert self.database is not None, "a rate limit needs the database its buckets are in"
        at = None if self.clock is None else datetime.fromtimestamp(self.clock(), UTC)
        async with self.database.connection() as conn:
            row = await conn.fetchrow(TAKE, key, self.rate, float(self.burst), at)
        if row is not None and row["admitted"]:
            return
        # Refused: less than one token is there, so the wait is at most 1/rate. No row: the
        # bucket was made by a concurrent request this statement's snapshot does not show.
        tokens = 0.0 if row is None else row["tokens"]
        wait = max(1, math.ceil(min(1 - tokens, 1) / self.rate))
        raise TooManyRequests(
            f"this key sent more than {self.rate:g} requests a second; retry in {wait} s",
            retry_after=wait,
        )
