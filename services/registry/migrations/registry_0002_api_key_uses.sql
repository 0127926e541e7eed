-- When each key was last used at each other service, as the workers of pledges and shipments
-- report it (issue 21 point 4; services/registry/schema.sql says more).
-- depends: registry_0001_baseline

CREATE TABLE IF NOT EXISTS api_key_uses (
    key_id       text NOT NULL,
    service      text NOT NULL,
    last_used_at timestamptz NOT NULL,
    PRIMARY KEY (key_id, service)
);
