-- The consumers' copy of the registry's organisations (pledges and shipments), as
-- shared/directory.py SCHEMA held it when versioned migrations began. Never edit it.
-- depends: shared_0001_baseline

CREATE TABLE IF NOT EXISTS directory (
    organisation_id text PRIMARY KEY,
    name            text NOT NULL,
    kind            text NOT NULL,
    country         text NOT NULL,
    source_position bigint NOT NULL,
    applied_events  integer NOT NULL DEFAULT 1
);
ALTER TABLE directory ADD COLUMN IF NOT EXISTS aliases text[] NOT NULL DEFAULT '{}';
