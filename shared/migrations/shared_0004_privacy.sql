-- Personal data encrypted per subject (shared/privacy.py; issue 20).
-- depends: shared_0003_api_key_lifecycle shared_0003_webhooks

-- Personal data (shared/privacy.py): each data subject's AES-256-GCM key and a keyed hash of
-- the organisation and name that recorded them, both destroyed when the subject is erased
-- (the row stays: who recorded them, when erased, on what basis). The pepper keys the hash.
CREATE TABLE IF NOT EXISTS privacy_subjects (
    subject_id       text PRIMARY KEY,
    organisation_id  text NOT NULL,
    fingerprint      bytea UNIQUE,
    data_key         bytea,
    created_at       timestamptz NOT NULL,
    last_recorded_at timestamptz NOT NULL,
    erased_at        timestamptz,
    erased_by        text,
    legal_basis      text,
    CHECK ((erased_at IS NULL) = (data_key IS NOT NULL))
);
CREATE TABLE IF NOT EXISTS privacy_pepper (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    pepper bytea NOT NULL
);
-- Which events hold each subject (shared/privacy.py projection): access requests, retention.
CREATE TABLE IF NOT EXISTS privacy_occurrences (
    subject_id text NOT NULL,
    event_id   uuid NOT NULL,
    stream_id  text NOT NULL,
    PRIMARY KEY (subject_id, event_id)
);
CREATE INDEX IF NOT EXISTS privacy_occurrences_by_stream ON privacy_occurrences (stream_id);
