-- Shipments' read models and functions, as services/shipments/schema.sql held it when versioned
-- migrations began. Never edit it: a change to the shipments' schema is a new migration here
-- (shipments_<next number>_..., depending on the last one).
-- depends: shared_0001_baseline directory_0001_baseline

-- Shipments read models (the directory of organisations comes from shared/directory.py).
-- convoys, manifest_lines and convoy_timeline are derived from this service's log in the same
-- transaction as the events (`twinaid rebuild shipments` replays them). pledge_lines is the
-- consumer's copy of pledges.pledge-line-updated: it comes from pledges' log, not ours, so a
-- rebuild leaves it alone.

CREATE TABLE IF NOT EXISTS pledge_lines (
    pledge_id       text NOT NULL,
    line_id         text NOT NULL,
    donor_id        text NOT NULL,
    recipient_id    text NOT NULL,
    partnership_id  text,
    item            text NOT NULL,
    category        text,
    unit            text NOT NULL,
    quantity        numeric NOT NULL,
    weight_kg       numeric,
    delivered       numeric NOT NULL,
    remaining       numeric NOT NULL,
    status          text NOT NULL,
    correlation_id  text,
    source_position bigint NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (pledge_id, line_id)
);
-- when pledges committed the line: the occurred_at of the first announcement saying `committed`
ALTER TABLE pledge_lines ADD COLUMN IF NOT EXISTS committed_at timestamptz;
CREATE INDEX IF NOT EXISTS pledge_lines_recipient ON pledge_lines (recipient_id, status);
CREATE INDEX IF NOT EXISTS pledge_lines_donor ON pledge_lines (donor_id, status);

CREATE TABLE IF NOT EXISTS convoys (
    convoy_id         text PRIMARY KEY,
    reference         text NOT NULL,
    status            text NOT NULL,
    origin_id         text NOT NULL,
    destination_id    text NOT NULL,
    carrier_id        text NOT NULL,
    donors            text[] NOT NULL DEFAULT '{}',
    pledges           text[] NOT NULL DEFAULT '{}',
    planned_departure timestamptz NOT NULL,
    dispatched_at     timestamptz,
    last_news_at      timestamptz,
    last_recorded_at  timestamptz,
    document          jsonb NOT NULL,
    version           integer NOT NULL
);
CREATE INDEX IF NOT EXISTS convoys_status ON convoys (status, last_news_at);
CREATE INDEX IF NOT EXISTS convoys_origin ON convoys (origin_id);
CREATE INDEX IF NOT EXISTS convoys_destination ON convoys (destination_id);
CREATE INDEX IF NOT EXISTS convoys_carrier ON convoys (carrier_id);
CREATE INDEX IF NOT EXISTS convoys_donors ON convoys USING gin (donors);
CREATE INDEX IF NOT EXISTS convoys_pledges ON convoys USING gin (pledges);
CREATE INDEX IF NOT EXISTS convoys_departure
    ON convoys ((coalesce(dispatched_at, planned_departure)), convoy_id);

-- The allocation ledger: what each convoy took from each pledge line. A line counts against
-- its pledge line while its state is 'loaded' (delivered and lost goods stay counted).
CREATE TABLE IF NOT EXISTS manifest_lines (
    convoy_id        text NOT NULL,
    manifest_line_id text NOT NULL,
    pledge_id        text NOT NULL,
    line_id          text NOT NULL,
    donor_id         text NOT NULL,
    item             text NOT NULL,
    unit             text NOT NULL,
    quantity         numeric NOT NULL,
    weight_kg        numeric NOT NULL,
    vehicle          text NOT NULL,
    state            text NOT NULL,
    loaded_at        timestamptz NOT NULL,
    PRIMARY KEY (convoy_id, manifest_line_id)
);
CREATE INDEX IF NOT EXISTS manifest_lines_pledge_line ON manifest_lines (pledge_id, line_id);

CREATE TABLE IF NOT EXISTS convoy_timeline (
    event_id       uuid PRIMARY KEY,
    convoy_id      text NOT NULL,
    stream_version integer NOT NULL,
    event_type     text NOT NULL,
    entry_id       text,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    data           jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS convoy_timeline_order
    ON convoy_timeline (convoy_id, occurred_at, stream_version);
