-- Events of the log rewritten in place by a redaction (shared/privacy_migration.py; issue 20).
-- depends: shared_0004_privacy

-- Events rewritten in place after they were sealed (shared/privacy_migration.py: personal data
-- written in clear before issue 20, sealed since): the SHA-256 of the canonical body as sealed
-- (its chain link covers it) and as it is now, and the `privacy.log-redacted` statement, signed
-- with the service's key, that lists them. A lookup for the verifier only: each row counts only
-- if that signed statement in the log names it (shared/chain.py Verifier).
CREATE TABLE IF NOT EXISTS log_redactions (
    position           bigint PRIMARY KEY,
    event_id           uuid NOT NULL UNIQUE,
    before_sha256      bytea NOT NULL CHECK (length(before_sha256) = 32),
    after_sha256       bytea NOT NULL CHECK (length(after_sha256) = 32),
    statement_event_id uuid NOT NULL,
    reason             text NOT NULL,
    redacted_at        timestamptz NOT NULL,
    -- the statement's key and its signature of this redaction alone (chain.redaction_body):
    -- carried with the event when it is published again (shared/authenticity.py)
    public_key         text NOT NULL,
    signature          text NOT NULL
);
