-- Snapshots of folded streams (shared/snapshots.py; issue 19).
-- depends: shared_0005_redactions

-- Snapshots of folded streams (shared/snapshots.py): a cache of a stream's state at a version,
-- as JSON in a versioned `format`. Dropping them changes nothing but speed; the projection that
-- saves them lists this table, so a rebuild empties it and recreates them.
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id      text PRIMARY KEY,
    stream_version integer NOT NULL,
    format         text NOT NULL,
    state          jsonb NOT NULL
);
