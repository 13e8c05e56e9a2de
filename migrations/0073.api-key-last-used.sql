-- depends: 0072.api-key-expiry
-- When a key was last used (docs/security.md): written at most once a minute per key and API process. Those
-- writes must not evict the key from every API process's cache, so the revocation notice (migration 0011) now
-- fires on a deletion, or on an update of what a cached principal depends on: owner, hash, scopes, expiry.
-- A column added later that the principal reads must be added to this list.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;

DROP TRIGGER api_keys_revoked_notify ON api_keys;
CREATE TRIGGER api_keys_deleted_notify AFTER DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION notify_api_key_revoked();
CREATE TRIGGER api_keys_changed_notify AFTER UPDATE ON api_keys
    FOR EACH ROW
    WHEN ((OLD.id, OLD.user_id, OLD.key_hash, OLD.scopes, OLD.expires_at)
          IS DISTINCT FROM (NEW.id, NEW.user_id, NEW.key_hash, NEW.scopes, NEW.expires_at))
    EXECUTE FUNCTION notify_api_key_revoked();
