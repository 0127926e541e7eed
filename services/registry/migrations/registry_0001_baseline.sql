-- The registry's read models and functions, as services/registry/schema.sql held it when
-- versioned migrations began. Never edit it: a change to the registry's schema is a new
-- migration here (registry_<next number>_..., depending on the last one).
-- depends: shared_0001_baseline

-- Registry read models: derived from the log in the same transaction; `twinaid rebuild registry`
-- drops and replays them. Columns added later are added with ADD COLUMN IF NOT EXISTS below.
CREATE TABLE IF NOT EXISTS organisations (
    organisation_id text PRIMARY KEY,
    name            text NOT NULL,
    kind            text NOT NULL,
    country         text NOT NULL,
    region          text,
    aliases         text[] NOT NULL DEFAULT '{}',
    search_names    text[] NOT NULL DEFAULT '{}',
    version         integer NOT NULL,
    registered_at   timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
ALTER TABLE organisations ADD COLUMN IF NOT EXISTS name_folded text NOT NULL DEFAULT '';
ALTER TABLE organisations ADD COLUMN IF NOT EXISTS coordinates jsonb;
ALTER TABLE organisations ADD COLUMN IF NOT EXISTS parent_id text;
ALTER TABLE organisations ADD COLUMN IF NOT EXISTS contacts jsonb NOT NULL DEFAULT '[]';
-- the keys of every name and alias (domain.name_keys, UTS #39 skeletons): what namesakes share.
-- NULL on rows written before the column existed: the API fills them in at start-up
-- (projections.fill_name_skeletons), as only Python's ICU computes them.
ALTER TABLE organisations ADD COLUMN IF NOT EXISTS name_skeletons text[];
CREATE INDEX IF NOT EXISTS organisations_country ON organisations (country, kind);
-- the namesake probe looks skeletons up, no longer folded names
DROP INDEX IF EXISTS organisations_names;
CREATE INDEX IF NOT EXISTS organisations_skeletons ON organisations USING gin (name_skeletons)
    WITH (fastupdate = off);  -- registrations look names up at once: no pending list
CREATE INDEX IF NOT EXISTS organisations_order ON organisations (name_folded, organisation_id);

CREATE TABLE IF NOT EXISTS partnerships (
    partnership_id text PRIMARY KEY,
    org_a          text NOT NULL,
    org_b          text NOT NULL,
    kind           text NOT NULL,
    programme      text,
    phase          text,
    fields         text[] NOT NULL DEFAULT '{}',
    status         text NOT NULL,
    proposed_at    timestamptz NOT NULL,
    signed_at      timestamptz,
    changed_at     timestamptz NOT NULL,
    history        jsonb NOT NULL DEFAULT '[]',
    version        integer NOT NULL
);
-- every organisation's recorded agreement to become agreed or signed, in order
ALTER TABLE partnerships ADD COLUMN IF NOT EXISTS agreements jsonb NOT NULL DEFAULT '[]';
CREATE INDEX IF NOT EXISTS partnerships_a ON partnerships (org_a);
CREATE INDEX IF NOT EXISTS partnerships_b ON partnerships (org_b);
CREATE INDEX IF NOT EXISTS partnerships_pair ON partnerships
    (least(org_a, org_b), greatest(org_a, org_b), kind) WHERE status = 'signed';

-- Registrations in one statement (handlers.register_together; several when they arrive
-- together: group commit, shared/batching.py): the ordinary path's name locks, namesake check,
-- append to a new stream and read-model row, for every item at once, with no round trip between
-- them and no transaction around them (one statement is atomic on its own). An item is a
-- registry_registration: the lock keys, the name keys to look for in its country (NULL: no
-- namesake check, `distinct`), twinaid_append's arguments (shared_0001_baseline) and the
-- organisations row (projections.new_organisation_row), its name_skeletons last.
--
-- Every item's locks are taken first, in one order for the whole statement (byte order, as
-- Python sorts them for the ordinary path), so statements and ordinary registrations never wait
-- on each other in a cycle. The checks run after the locks, in a statement of their own with a
-- fresh snapshot: they see what a registration that held one of the locks before us committed.
-- Items of one statement never conflict with each other (handlers.register_together keeps
-- namesakes and repeated ids of one batch apart). Returns each item's outcome: NULL when
-- registered, else why not ('namesake': a namesake in the country; 'taken': the stream is not
-- new), and then that item wrote nothing: the ordinary path decides and explains.
DO $$
BEGIN
    CREATE TYPE registry_registration AS (
        locks text[], country text, namesakes text[],
        stream_type text, stream_id text, expected integer, recorded_at timestamptz,
        metadata text, event_ids uuid[], event_types text[], schema_versions integer[],
        occurred_at timestamptz[], data text[],
        organisation_id text, name text, name_folded text, kind text, org_country text,
        region text, aliases text[], search_names text[], coordinates text,
        parent_id text, version integer, registered_at timestamptz, contacts text,
        name_skeletons text[]
    );
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
-- a type made before name_skeletons existed gets it, last, as above
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = 'registry_registration'::regclass AND attname = 'name_skeletons'
    ) THEN
        ALTER TYPE registry_registration ADD ATTRIBUTE name_skeletons text[];
    END IF;
END $$;

-- the one-registration function this replaced
DROP FUNCTION IF EXISTS registry_register_organisation(
    text[], text, text[], text, text, integer, timestamptz, text, uuid[], text[], integer[],
    timestamptz[], text[], text, text, text, text, text, text, text[], text[], text, text,
    integer, timestamptz, text);

-- enable_seqscan off while it runs: every lookup here is by key or name, through an index.
-- Where the table was never analysed (PostgreSQL's autovacuum off), the planner prices the
-- names probe by guesswork, and up to some tens of thousands of organisations a scan of all of
-- them came out cheaper on paper: 1.3 ms of a 2 ms statement at 4,500.
CREATE OR REPLACE FUNCTION registry_register_organisations(p_items registry_registration[])
RETURNS text[] LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    lock_key text;
    names text[];
    outcomes text[];
BEGIN
    FOR lock_key IN
        SELECT DISTINCT k COLLATE "C" FROM unnest(p_items) AS i, unnest(i.locks) AS k
        ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(hashtext(lock_key));
    END LOOP;
    -- Namesakes through the GIN index only, as in handlers._namesake: one probe for the name
    -- keys of every item, then each item's own check among the few organisations found. EXECUTE
    -- plans the probe at each call with the names as values: the planner estimates `&&` from
    -- the column's statistics. Checked item by item against names known only per row, it
    -- guessed that 1% of the table matched and, once ANALYZE had seen a large table, scanned
    -- all of it for every item (tests/registry/test_group_commit.py).
    SELECT array_agg(DISTINCT n) INTO names
    FROM unnest(p_items) AS i, unnest(i.namesakes) AS n;
    EXECUTE $q$
        WITH named AS MATERIALIZED (
            -- OFFSET 0: the names alone, never ANDed with the country index (which would walk
            -- every organisation of the country)
            SELECT o.country, o.name_skeletons FROM organisations o
            WHERE o.name_skeletons && $2 OFFSET 0
        )
        SELECT array_agg(CASE
            WHEN i.namesakes IS NOT NULL AND EXISTS (
                SELECT 1 FROM named
                WHERE named.country = i.country AND named.name_skeletons && i.namesakes)
            THEN 'namesake'
            WHEN EXISTS (SELECT 1 FROM events e WHERE e.stream_id = i.stream_id)
            THEN 'taken'
        END ORDER BY i.ordinality)
        FROM unnest($1) WITH ORDINALITY AS i
    $q$ INTO outcomes USING p_items, coalesce(names, '{}');
    -- what twinaid_append would append, for the items that can be registered, in item order
    INSERT INTO events (event_id, stream_type, stream_id, stream_version, event_type,
                        schema_version, occurred_at, recorded_at, data, metadata)
    SELECT ev.event_id, i.stream_type, i.stream_id, i.expected + ev.ord::integer, ev.event_type,
           ev.schema_version, ev.occurred_at, i.recorded_at, ev.data::json, i.metadata::json
    FROM unnest(p_items) WITH ORDINALITY AS i,
         unnest(i.event_ids, i.event_types, i.schema_versions, i.occurred_at, i.data)
             WITH ORDINALITY AS ev(event_id, event_type, schema_version, occurred_at, data, ord)
    WHERE outcomes[i.ordinality::integer] IS NULL
    ORDER BY i.ordinality, ev.ord;
    INSERT INTO organisations (organisation_id, name, name_folded, kind, country, region,
                               aliases, search_names, coordinates, parent_id, version,
                               registered_at, updated_at, contacts, name_skeletons)
    SELECT i.organisation_id, i.name, i.name_folded, i.kind, i.org_country, i.region,
           i.aliases, i.search_names, i.coordinates::jsonb, i.parent_id, i.version,
           i.registered_at, i.registered_at, i.contacts::jsonb, i.name_skeletons
    FROM unnest(p_items) WITH ORDINALITY AS i
    WHERE outcomes[i.ordinality::integer] IS NULL
    ORDER BY i.ordinality
    ON CONFLICT (organisation_id) DO NOTHING;
    RETURN outcomes;
END $$;
