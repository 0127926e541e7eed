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
