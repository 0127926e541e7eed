-- Per-key rate-limit buckets shared by every replica of an API (974482e, shared/ratelimit.py).
-- depends: shared_0001_baseline

-- Each API key's rate-limit bucket, shared by every replica of the API (shared/ratelimit.py):
-- `tokens` left when last spent from, `at` then (the database's clock). One row per key, so
-- bounded by the number of keys issued, whatever the traffic. UNLOGGED: a request's commit
-- waits for no WAL flush; after a crash (or on a promoted standby) every bucket starts full.
CREATE UNLOGGED TABLE IF NOT EXISTS rate_limits (
    key_id text PRIMARY KEY,
    tokens double precision NOT NULL,
    at     timestamptz NOT NULL
);
