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

-- What a batch of registrations reads before the registration handler decides each of them
-- (services/registry/handlers/registrations.py), in one round trip. First every name lock of
-- the batch, in the order given (the order a registration alone takes its own: sorted), so
-- batches and single registrations never wait on each other in a cycle. Then, in a statement
-- of its own (a fresh snapshot: what a registration that held one of the locks committed is
-- seen), the organisations one of whose names shares a key with `p_names` (through the names
-- index alone: EXECUTE plans it with the names as values, and enable_seqscan is off, so a
-- large directory is never walked; tests/registry/test_group_commit.py), and which of `p_ids`
-- the registry holds. Reads only: every decision is the handler's.
CREATE OR REPLACE FUNCTION registry_batch_reads(p_locks text[], p_names text[], p_ids text[])
RETURNS TABLE (organisation_id text, country text, name_skeletons text[], taken boolean)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    lock_key text;
BEGIN
    FOREACH lock_key IN ARRAY p_locks LOOP
        PERFORM pg_advisory_xact_lock(hashtext(lock_key));
    END LOOP;
    RETURN QUERY EXECUTE
        'WITH named AS MATERIALIZED ('
        '  SELECT o.organisation_id, o.country, o.name_skeletons FROM organisations o'
        '  WHERE o.name_skeletons && $1 OFFSET 0'
        ') SELECT n.organisation_id, n.country, n.name_skeletons, false FROM named n'
        ' UNION ALL SELECT o.organisation_id, o.country, NULL::text[], true FROM organisations o'
        ' WHERE o.organisation_id = ANY($2)'
        USING p_names, p_ids;
END $$;

-- When each key was last used at each other service (issue 21 point 4): the workers of pledges
-- and shipments report the last_used_at of their own api_keys about once a minute (only what
-- changed; shared/worker.py KeyUseReporter, POST /v1/api-key-uses). The registry keeps the
-- latest of each (greatest: a report late or again never moves it back) and lists the latest
-- over every service. Not an event: using a key changes nothing in the domain.
CREATE TABLE IF NOT EXISTS api_key_uses (
    key_id       text NOT NULL,
    service      text NOT NULL,
    last_used_at timestamptz NOT NULL,
    PRIMARY KEY (key_id, service)
);
