DROP TRIGGER IF EXISTS users_email_changed_notify ON users;
DROP FUNCTION IF EXISTS notify_api_key_owner_changed();
DROP TRIGGER IF EXISTS api_keys_truncated_notify ON api_keys;
DROP FUNCTION IF EXISTS notify_api_keys_truncated();
DROP TRIGGER IF EXISTS api_keys_revoked_notify ON api_keys;
DROP FUNCTION IF EXISTS notify_api_key_revoked();
