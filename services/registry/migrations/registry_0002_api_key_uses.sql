-- When each key was last used at each other service, as the workers of pledges and shipments
-- report it (issue 21 point 4).
-- depends: registry_0001_baseline

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
