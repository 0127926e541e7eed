-- API keys that expire, are rotated and record their last use (issue 21 point 4: organisations
-- manage their own keys over HTTP, services/registry/api_keys.py). Keys issued before keep
-- working: no expiry, never rotated, not yet used.
-- depends: shared_0002_rate_limits

ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS expires_at timestamptz;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS rotated_at timestamptz;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS last_used_at timestamptz;
CREATE INDEX IF NOT EXISTS api_keys_organisation ON api_keys (organisation, created_at, key_id);
