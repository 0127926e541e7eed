-- Registry read models: rebuilt from the log by `twinaid rebuild registry`.
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
CREATE INDEX IF NOT EXISTS organisations_country ON organisations (country, kind);
