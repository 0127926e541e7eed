-- Webhook subscriptions and their delivery log (shared/webhooks.py; issue 21).
-- depends: shared_0002_rate_limits

-- Webhook subscriptions and every delivery attempt (shared/webhooks.py), in each service's
-- database. A subscription keeps its own cursor in the log (`after_position`): the dispatcher
-- reads the log from there, so its cost does not grow with the log's history. `secret` is the
-- signing key (whsec_...), kept to sign with (HMAC), shown once at creation; `key_id` is the
-- API key that subscribed, whose organisation and roles decide what is delivered.
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    subscription_id text PRIMARY KEY,
    organisation    text NOT NULL,
    key_id          text NOT NULL,
    url             text NOT NULL,
    event_types     text[] NOT NULL,
    streams         text[] NOT NULL,
    own_records     boolean NOT NULL,
    description     text NOT NULL,
    secret          text NOT NULL,
    created_at      timestamptz NOT NULL,
    deleted_at      timestamptz,
    after_position  bigint NOT NULL CHECK (after_position >= 0),
    -- bumped by a replay: a dispatcher that read the subscription before it writes nothing
    revision        integer NOT NULL DEFAULT 1,
    status          text NOT NULL CHECK (status IN ('active', 'failing', 'disabled')),
    failing_since   timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    leased_until    timestamptz,
    last_error      text
);
CREATE INDEX IF NOT EXISTS webhook_subscriptions_by_organisation
    ON webhook_subscriptions (organisation, created_at);
CREATE INDEX IF NOT EXISTS webhook_subscriptions_due
    ON webhook_subscriptions (next_attempt_at) WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id text NOT NULL REFERENCES webhook_subscriptions ON DELETE CASCADE,
    position        bigint NOT NULL,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    attempt         integer NOT NULL,
    attempted_at    timestamptz NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('delivered', 'failed')),
    status_code     integer,
    error           text,
    duration_ms     integer NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_subscription
    ON webhook_deliveries (subscription_id, delivery_id);
