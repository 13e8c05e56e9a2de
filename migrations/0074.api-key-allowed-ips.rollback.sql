DROP TRIGGER IF EXISTS api_keys_changed_notify ON api_keys;
CREATE TRIGGER api_keys_changed_notify AFTER UPDATE ON api_keys
    FOR EACH ROW
    WHEN ((OLD.id, OLD.user_id, OLD.key_hash, OLD.scopes, OLD.expires_at)
          IS DISTINCT FROM (NEW.id, NEW.user_id, NEW.key_hash, NEW.scopes, NEW.expires_at))
    EXECUTE FUNCTION notify_api_key_revoked();
ALTER TABLE api_keys DROP COLUMN IF EXISTS allowed_ips;
