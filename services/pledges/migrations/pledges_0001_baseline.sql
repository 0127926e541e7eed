-- Pledges' read models and functions, as services/pledges/schema.sql held it when versioned
-- migrations began. Never edit it: a change to the pledges' schema is a new migration here
-- (pledges_<next number>_..., depending on the last one).
-- depends: shared_0001_baseline directory_0001_baseline

-- Pledges read models. `needs`, `pledges`, `pledge_lines`, `receipts` and `deliveries` derive
-- from this service's own log in the same transaction (`twinaid rebuild pledges` replays them).
-- `partnership_directory`, like the shared `directory`, is a local copy of registry events kept
-- by the consumer. Columns added later are added with ADD COLUMN IF NOT EXISTS below.
CREATE TABLE IF NOT EXISTS partnership_directory (
    partnership_id  text PRIMARY KEY,
    org_a           text NOT NULL,
    org_b           text NOT NULL,
    kind            text NOT NULL,
    programme       text,
    status          text NOT NULL,
    source_position bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS needs (
    need_id        text PRIMARY KEY,
    recipient_id   text NOT NULL,
    kind           text NOT NULL,
    category       text NOT NULL,
    description    text NOT NULL,
    unit           text,
    currency       text,
    target         numeric NOT NULL,
    priority       text NOT NULL,
    serves         text[] NOT NULL DEFAULT '{}',
    deadline       date,
    state          text NOT NULL,
    status         text NOT NULL,
    pledged        numeric NOT NULL DEFAULT 0,
    committed      numeric NOT NULL DEFAULT 0,
    delivered      numeric NOT NULL DEFAULT 0,
    gap            numeric NOT NULL,
    internal_note  text,
    contact        jsonb,
    revisions      jsonb NOT NULL DEFAULT '[]',
    end_reason     text,
    correlation_id text,
    posted_at      timestamptz NOT NULL,
    changed_at     timestamptz NOT NULL,
    version        integer NOT NULL
);
CREATE INDEX IF NOT EXISTS needs_recipient ON needs (recipient_id, status);
CREATE INDEX IF NOT EXISTS needs_order ON needs (posted_at, need_id);

CREATE TABLE IF NOT EXISTS pledges (
    pledge_id         text PRIMARY KEY,
    donor_id          text NOT NULL,
    recipient_id      text NOT NULL,
    partnership_id    text,
    description       text,
    internal_note     text,
    contact           jsonb,
    status            text NOT NULL,
    made_at           timestamptz NOT NULL,
    committed_at      timestamptz,
    withdrawn_at      timestamptz,
    withdrawal_reason text,
    correlation_id    text,
    changed_at        timestamptz NOT NULL,
    version           integer NOT NULL
);
CREATE INDEX IF NOT EXISTS pledges_donor ON pledges (donor_id);
CREATE INDEX IF NOT EXISTS pledges_recipient ON pledges (recipient_id);
CREATE INDEX IF NOT EXISTS pledges_order ON pledges (made_at, pledge_id);

-- The first column of every read model is its key: the audit's replay compares rows by it.
CREATE TABLE IF NOT EXISTS pledge_lines (
    line_key        text GENERATED ALWAYS AS (pledge_id || '/' || line_id) STORED PRIMARY KEY,
    pledge_id       text NOT NULL,
    line_id         text NOT NULL,
    ordinal         integer NOT NULL,
    kind            text NOT NULL,
    need_id         text,
    item            text NOT NULL,
    category        text NOT NULL,
    unit            text,
    quantity        numeric,
    weight_kg       numeric,
    value_amount    bigint,
    value_currency  text,
    currency        text,
    amount          bigint,
    delivered       numeric NOT NULL DEFAULT 0,
    loaded          numeric NOT NULL DEFAULT 0,
    damaged         numeric NOT NULL DEFAULT 0,
    short           numeric NOT NULL DEFAULT 0,
    lost            numeric NOT NULL DEFAULT 0,
    received        bigint NOT NULL DEFAULT 0,
    donor_figure    text,
    donor_figure_on date,
    amendments      jsonb NOT NULL DEFAULT '[]',
    UNIQUE (pledge_id, line_id)
);
CREATE INDEX IF NOT EXISTS pledge_lines_need ON pledge_lines (need_id) WHERE need_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS receipts (
    event_id    uuid PRIMARY KEY,
    pledge_id   text NOT NULL,
    line_id     text NOT NULL,
    amount      bigint NOT NULL,
    currency    text NOT NULL,
    received_on date NOT NULL,
    reference   text NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_line ON receipts (pledge_id, line_id);

CREATE TABLE IF NOT EXISTS deliveries (
    event_id         uuid PRIMARY KEY,
    pledge_id        text NOT NULL,
    line_id          text NOT NULL,
    convoy_id        text NOT NULL,
    manifest_line_id text NOT NULL,
    unit             text NOT NULL,
    loaded           numeric NOT NULL,
    received         numeric NOT NULL,
    damaged          numeric NOT NULL,
    short            numeric NOT NULL,
    lost             numeric NOT NULL,
    confirmed_by     jsonb,
    document         jsonb,
    occurred_at      timestamptz NOT NULL,
    UNIQUE (pledge_id, line_id, convoy_id, manifest_line_id)
);

-- The manifest lines shipments loaded on its convoys (shipments.manifest-line-loaded, less what
-- was unloaded): a confirmed delivery counts only for a line loaded on its convoy, and never
-- more than was loaded on it.
CREATE TABLE IF NOT EXISTS convoy_lines (
    convoy_id        text NOT NULL,
    manifest_line_id text NOT NULL,
    pledge_id        text NOT NULL,
    line_id          text NOT NULL,
    unit             text NOT NULL,
    loaded           numeric NOT NULL,
    source_position  bigint NOT NULL,
    PRIMARY KEY (convoy_id, manifest_line_id)
);
