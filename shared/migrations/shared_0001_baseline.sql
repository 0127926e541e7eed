-- The event log every service keeps in its own database, as shared/schema.sql held it when
-- versioned migrations began (unchanged from 1664b66 through c885eab). Idempotent like that
-- script, so it also brings a database made by an earlier release (which applied the script at
-- every start) to this schema. Never edit it: a change to the event log's schema is a new
-- migration here (shared_0007_..., depending on the last one); shared/schema.sql is gone.

-- The event log every service keeps in its own database. Idempotent: applied at every start.

CREATE TABLE IF NOT EXISTS events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the writing transaction: readers order by (tx_id, id) and never pass a transaction
    -- that may still commit (pg_snapshot_xmin), so no event is ever skipped
    tx_id          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id       uuid NOT NULL UNIQUE,
    stream_type    text NOT NULL,
    stream_id      text NOT NULL,
    stream_version integer NOT NULL CHECK (stream_version > 0),
    event_type     text NOT NULL,
    schema_version integer NOT NULL CHECK (schema_version > 0),
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    -- RFC 8785 text, kept as written (json, not jsonb): the sealed canonical body can be
    -- rendered from the columns byte for byte (shared/chain.py, shared/sealer.py)
    data           json NOT NULL,
    metadata       json NOT NULL,
    UNIQUE (stream_id, stream_version)
);
-- Logs created when these columns were jsonb keep their rows; those are verified by
-- canonicalising them again (rfc8785) rather than by rendering.
DO $$
BEGIN
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'events'
          AND column_name = 'data') = 'jsonb' THEN
        ALTER TABLE events ALTER COLUMN data TYPE json USING data::json,
                           ALTER COLUMN metadata TYPE json USING metadata::json;
    END IF;
END $$;
-- What the chain can seal, refused at append whoever writes (shared/chain.py, shared/instants.py
-- hold the same rules for the stores): instants in [1900-01-01, 2200-01-01) UTC (never
-- -infinity or infinity, which asyncpg reads as naive datetimes), data and metadata JSON
-- objects whose numbers lie within +-(2^53 - 1), with no NUL character, nested at most 64 deep.
-- IMMUTABLE: the answer depends on the value only. plpgsql, with cheap looks at the text first
-- (the JSON walks only run when a long number, an exponent or deep nesting may be there): a
-- SQL function is not inlined in a CHECK constraint and cost a sixth of an append.
CREATE OR REPLACE FUNCTION twinaid_sealable_json(j json) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    t text := j::text;
    b jsonb;
BEGIN
    IF json_typeof(j) IS DISTINCT FROM 'object' THEN
        RETURN false;
    END IF;
    -- \u0000 not itself escaped: checked before the cast to jsonb, which cannot hold it
    IF strpos(t, '\u0000') > 0 AND t ~ '(^|[^\\])(\\\\)*\\u0000' THEN
        RETURN false;
    END IF;
    -- a long number, an exponent, deep nesting or a surrogate escape may be there: look closer
    IF t !~ '[0-9]{16}|[0-9][eE][-+]?[0-9]|\\u[dD][89abAB]'
       AND length(t) - length(translate(t, '[{', '')) <= 64 THEN
        RETURN true;
    END IF;
    b := t::jsonb;  -- a lone surrogate fails here: a data error, the row is refused
    RETURN NOT jsonb_path_exists(b, 'strict $.**{65 to last}')
       AND NOT jsonb_path_exists(b, 'strict $.** ? (@.type() == "number"
               && (@ > 9007199254740991 || @ < -9007199254740991))');
END $$;
-- NOT VALID: a database that holds a row written before this rule (which the sealer reports
-- and waits on, see shared/sealer.py) still starts; every new row is checked.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'events'::regclass AND conname = 'events_sealable_v1') THEN
        ALTER TABLE events ADD CONSTRAINT events_sealable_v1 CHECK (
            occurred_at >= '1900-01-01 00:00:00+00' AND occurred_at < '2200-01-01 00:00:00+00'
            AND recorded_at >= '1900-01-01 00:00:00+00' AND recorded_at < '2200-01-01 00:00:00+00'
            -- (::json: a log created with jsonb columns gets them turned into json above)
            AND twinaid_sealable_json(data::json) AND twinaid_sealable_json(metadata::json)
        ) NOT VALID;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS events_commit_order ON events (tx_id, id);
CREATE INDEX IF NOT EXISTS events_correlation ON events ((metadata ->> 'correlation_id'));

-- The dense global position and the hash chain, written only by the sealer (one leader).
CREATE TABLE IF NOT EXISTS event_chain (
    position  bigint PRIMARY KEY,
    event_id  uuid NOT NULL UNIQUE,
    hash      bytea NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sealer_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_tx   xid8 NOT NULL,
    last_id   bigint NOT NULL,
    position  bigint NOT NULL,
    hash      bytea NOT NULL
);
INSERT INTO sealer_state (last_tx, last_id, position, hash)
VALUES ('0'::xid8, 0, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION twinaid_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE OR REPLACE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events FOR EACH ROW EXECUTE FUNCTION twinaid_refuse_change();
CREATE OR REPLACE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events FOR EACH STATEMENT EXECUTE FUNCTION twinaid_refuse_change();
CREATE OR REPLACE TRIGGER event_chain_append_only
    BEFORE UPDATE OR DELETE ON event_chain FOR EACH ROW EXECUTE FUNCTION twinaid_refuse_change();
CREATE OR REPLACE TRIGGER event_chain_no_truncate
    BEFORE TRUNCATE ON event_chain FOR EACH STATEMENT EXECUTE FUNCTION twinaid_refuse_change();

CREATE OR REPLACE FUNCTION twinaid_notify_appended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('twinaid_' || TG_ARGV[0], '');
    RETURN NULL;
END $$;
-- No NOTIFY from writers' transactions (it would make them commit one at a time): API
-- processes notify after their commit (shared/notify.py); the relay also polls.
DROP TRIGGER IF EXISTS events_notify ON events;
CREATE OR REPLACE TRIGGER event_chain_notify
    AFTER INSERT ON event_chain FOR EACH STATEMENT EXECUTE FUNCTION twinaid_notify_appended('sealed');

-- Relay progress: the last position published to the topic.
CREATE TABLE IF NOT EXISTS relay_checkpoint (
    topic      text PRIMARY KEY,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A write's Idempotency-Key, stored in the same transaction as the write itself.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    organisation text NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status_code  integer NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation, key)
);
-- the API key that wrote, and its roles: an answer is replayed only to a caller that could
-- have made the write (NULL on rows stored before this was kept)
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS key_id text;
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS roles text[];

-- Consumers: one inbox row per applied upstream event, written with the handler's effect.
CREATE TABLE IF NOT EXISTS inbox (
    consumer   text NOT NULL,
    event_id   uuid NOT NULL,
    upstream   text NOT NULL,
    position   bigint NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id),
    UNIQUE (consumer, upstream, position)
);

-- The contiguous prefix of upstream positions a consumer has applied.
CREATE TABLE IF NOT EXISTS consumer_progress (
    consumer   text NOT NULL,
    upstream   text NOT NULL,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, upstream)
);

-- The chain hash of each applied upstream event: the next one must link to it.
ALTER TABLE inbox ADD COLUMN IF NOT EXISTS hash bytea;

-- Consumers: the key changes (audit.signing-key-changed) each applied of its upstreams, so that
-- a restarted consumer still trusts the keys they announced.
CREATE TABLE IF NOT EXISTS consumer_key_changes (
    consumer     text NOT NULL,
    upstream     text NOT NULL,
    position     bigint NOT NULL,
    announcement jsonb NOT NULL,
    PRIMARY KEY (consumer, upstream, position)
);

-- Consumers: upstream messages that failed a check (not authentic, inconsistent, implausible),
-- kept with the reason. authentic: the upstream did sign it (parked, its position handled);
-- otherwise the authentic event for the position is fetched from the upstream's feed.
CREATE TABLE IF NOT EXISTS quarantine (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer       text NOT NULL,
    upstream       text NOT NULL,
    topic          text NOT NULL,
    partition      integer,
    "offset"       bigint,
    position       bigint,
    event_id       text,
    key            bytea,
    value          bytea,
    headers        jsonb NOT NULL DEFAULT '{}',
    reason         text NOT NULL,
    authentic      boolean NOT NULL DEFAULT false,
    quarantined_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer    text NOT NULL,
    topic       text NOT NULL,
    partition   integer,
    "offset"    bigint,
    key         bytea,
    value       bytea,
    headers     jsonb NOT NULL DEFAULT '{}',
    reason      text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS api_keys (
    key_id       text PRIMARY KEY,
    secret_hash  bytea NOT NULL,
    organisation text NOT NULL,
    roles        text[] NOT NULL,
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- Append to one stream after an expected version: the statement PostgresEventStore.append
-- runs (shared/event_store.py), kept here so that a service's own function can append within
-- one statement too (lock, check, append and project in one round trip: see
-- services/registry/migrations/). Returns how many events it appended: none when the stream is
-- not at p_expected; a concurrent writer that passes the check too is stopped by
-- UNIQUE (stream_id, stream_version). plpgsql, so the plan is cached per connection.
CREATE OR REPLACE FUNCTION twinaid_append(
    p_stream_type text, p_stream_id text, p_expected integer, p_recorded_at timestamptz,
    p_metadata text, p_event_ids uuid[], p_event_types text[], p_schema_versions integer[],
    p_occurred_at timestamptz[], p_data text[]
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    appended integer;
BEGIN
    WITH cur AS (
        SELECT coalesce(max(stream_version), 0) AS v FROM events WHERE stream_id = p_stream_id
    )
    INSERT INTO events (event_id, stream_type, stream_id, stream_version, event_type,
                        schema_version, occurred_at, recorded_at, data, metadata)
    SELECT ev.event_id, p_stream_type, p_stream_id, p_expected + ev.ord::integer, ev.event_type,
           ev.schema_version, ev.occurred_at, p_recorded_at, ev.data::json, p_metadata::json
    FROM unnest(p_event_ids, p_event_types, p_schema_versions, p_occurred_at, p_data)
         WITH ORDINALITY AS ev(event_id, event_type, schema_version, occurred_at, data, ord),
         cur
    WHERE cur.v = p_expected;
    GET DIAGNOSTICS appended = ROW_COUNT;
    RETURN appended;
END $$;
