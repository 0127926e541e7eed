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
CREATE INDEX IF NOT EXISTS organisations_country ON organisations (country, kind);
CREATE INDEX IF NOT EXISTS organisations_names ON organisations USING gin (search_names)
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
CREATE INDEX IF NOT EXISTS partnerships_a ON partnerships (org_a);
CREATE INDEX IF NOT EXISTS partnerships_b ON partnerships (org_b);
CREATE INDEX IF NOT EXISTS partnerships_pair ON partnerships
    (least(org_a, org_b), greatest(org_a, org_b), kind) WHERE status = 'signed';

-- A registration in one statement (handlers.register_in_one_statement): the ordinary path's
-- name locks, namesake check, append to a new stream and read-model row, with no round trip
-- between them and no transaction around them (one statement is atomic on its own). Each
-- statement of a plpgsql function takes a fresh snapshot, so the namesake check sees what a
-- registration that held one of the locks before us committed. Returns NULL when registered,
-- else why not ('namesake': a namesake in the country; 'taken': the stream is not new), and
-- then nothing was written: the ordinary path decides and explains.
CREATE OR REPLACE FUNCTION registry_register_organisation(
    -- the ordinary path's advisory lock keys, in its order; the folded names to look for in
    -- p_country (NULL: no namesake check, `distinct`)
    p_locks text[], p_country text, p_namesakes text[],
    -- twinaid_append's arguments (shared/schema.sql)
    p_stream_type text, p_stream_id text, p_expected integer, p_recorded_at timestamptz,
    p_metadata text, p_event_ids uuid[], p_event_types text[], p_schema_versions integer[],
    p_occurred_at timestamptz[], p_data text[],
    -- the organisations row (projections.new_organisation_row)
    p_organisation_id text, p_name text, p_name_folded text, p_kind text, p_org_country text,
    p_region text, p_aliases text[], p_search_names text[], p_coordinates text,
    p_parent_id text, p_version integer, p_registered_at timestamptz, p_contacts text
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    lock_key text;
    found boolean;
BEGIN
    FOREACH lock_key IN ARRAY p_locks LOOP
        PERFORM pg_advisory_xact_lock(hashtext(lock_key));
    END LOOP;
    IF p_namesakes IS NOT NULL THEN
        -- Only the GIN index, as in handlers._namesake. EXECUTE: planned at each call for the
        -- table as it is, where a plan cached with the function would keep the sequential
        -- scan it chose while the table was empty (until an ANALYZE), however large it grew.
        EXECUTE 'WITH named AS MATERIALIZED ('
                ' SELECT country FROM organisations WHERE search_names && $1'
                ') SELECT EXISTS (SELECT 1 FROM named WHERE country = $2)'
            INTO found USING p_namesakes, p_country;
        IF found THEN
            RETURN 'namesake';
        END IF;
    END IF;
    IF twinaid_append(p_stream_type, p_stream_id, p_expected, p_recorded_at, p_metadata,
                      p_event_ids, p_event_types, p_schema_versions, p_occurred_at, p_data)
       <> cardinality(p_event_ids) THEN
        RETURN 'taken';
    END IF;
    INSERT INTO organisations (organisation_id, name, name_folded, kind, country, region,
                               aliases, search_names, coordinates, parent_id, version,
                               registered_at, updated_at, contacts)
    VALUES (p_organisation_id, p_name, p_name_folded, p_kind, p_org_country, p_region,
            p_aliases, p_search_names, p_coordinates::jsonb, p_parent_id, p_version,
            p_registered_at, p_registered_at, p_contacts::jsonb)
    ON CONFLICT (organisation_id) DO NOTHING;
    RETURN NULL;
END $$;

-- Registrations that arrive together, as one statement (group commit, shared/batching.py;
-- handlers.register_together): one round trip and one commit for all of them. An item is
-- registry_register_organisation's arguments, in its order. Every item's name locks are taken
-- first, in one order for the whole batch (byte order, as Python sorts them for the ordinary
-- path), so batches and ordinary registrations never wait on each other in a cycle; then each
-- item runs as it would alone, seeing the items before it (a namesake within the batch is a
-- namesake). Returns each item's outcome (NULL: registered); an item with an outcome wrote
-- nothing, and decides again on the ordinary path. If the statement fails, nothing is written.
DO $$
BEGIN
    CREATE TYPE registry_registration AS (
        locks text[], country text, namesakes text[],
        stream_type text, stream_id text, expected integer, recorded_at timestamptz,
        metadata text, event_ids uuid[], event_types text[], schema_versions integer[],
        occurred_at timestamptz[], data text[],
        organisation_id text, name text, name_folded text, kind text, org_country text,
        region text, aliases text[], search_names text[], coordinates text,
        parent_id text, version integer, registered_at timestamptz, contacts text
    );
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE OR REPLACE FUNCTION registry_register_organisations(p_items registry_registration[])
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    lock_key text;
    item registry_registration;
    outcomes text[] := '{}';
BEGIN
    FOR lock_key IN
        SELECT DISTINCT k COLLATE "C" FROM unnest(p_items) AS i, unnest(i.locks) AS k
        ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(hashtext(lock_key));
    END LOOP;
    FOREACH item IN ARRAY p_items LOOP
        outcomes := outcomes || registry_register_organisation(
            item.locks, item.country, item.namesakes,
            item.stream_type, item.stream_id, item.expected, item.recorded_at, item.metadata,
            item.event_ids, item.event_types, item.schema_versions, item.occurred_at, item.data,
            item.organisation_id, item.name, item.name_folded, item.kind, item.org_country,
            item.region, item.aliases, item.search_names, item.coordinates, item.parent_id,
            item.version, item.registered_at, item.contacts);
    END LOOP;
    RETURN outcomes;
END $$;
