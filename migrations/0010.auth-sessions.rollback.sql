DROP INDEX IF EXISTS api_keys_key_prefix_idx;
DROP TABLE IF EXISTS login_throttle;
DROP TABLE IF EXISTS revoked_access_tokens;
DROP TABLE IF EXISTS refresh_tokens;
DROP TABLE IF EXISTS auth_sessions;
