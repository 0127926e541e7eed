-- pledges read models. The directory is this service's own copy of the registry's organisations.
CREATE TABLE IF NOT EXISTS directory (
    organisation_id text PRIMARY KEY,
    name            text NOT NULL,
    kind            text NOT NULL,
    country         text NOT NULL,
    source_position bigint NOT NULL,
    -- how many registry events of this organisation were applied: equals its stream version
    applied_events  integer NOT NULL DEFAULT 1
);
