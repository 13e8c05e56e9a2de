DROP TRIGGER IF EXISTS api_keys_changed_notify ON api_keys;
DROP TRIGGER IF EXISTS api_keys_deleted_notify ON api_keys;
CREATE TRIGGER api_keys_revoked_notify AFTER DELETE OR UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION notify_api_key_revoked();
ALTER TABLE api_keys DROP COLUMN IF EXISTS last_used_at;
