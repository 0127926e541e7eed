-- API keys that expire, are rotated and record their last use (issue 21 point 4: organisations
-- manage their own keys over HTTP, services/registry/api_keys.py). Keys issued before keep
-- working: no expiry, never rotated, not yet used.
-- depends: shared_0002_rate_limits

-- When a key stops working (NULL: never, as `twinaid keys issue` makes them), when its secret
-- was last replaced, and when it was last used here (written at most once a minute per API
-- process: shared/auth.py).
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS expires_at timestamptz;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS rotated_at timestamptz;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS last_used_at timestamptz;
-- an organisation's keys, listed oldest first (GET /v1/organisations/{id}/api-keys)
CREATE INDEX IF NOT EXISTS api_keys_organisation ON api_keys (organisation, created_at, key_id);
