-- depends: 0073.api-key-last-used
-- API keys may be tied to source addresses (docs/security.md, "API keys"): NULL, the reference's behaviour,
-- accepts any address. The API sets it at creation only, but a change by hand must still reach every API
-- process's cache of verified keys, so the revocation notice of 0073 watches this column too.
ALTER TABLE api_keys ADD COLUMN allowed_ips cidr[];

DROP TRIGGER api_keys_changed_notify ON api_keys;
CREATE TRIGGER api_keys_changed_notify AFTER UPDATE ON api_keys
    FOR EACH ROW
    WHEN ((OLD.id, OLD.user_id, OLD.key_hash, OLD.scopes, OLD.expires_at, OLD.allowed_ips)
          IS DISTINCT FROM (NEW.id, NEW.user_id, NEW.key_hash, NEW.scopes, NEW.expires_at, NEW.allowed_ips))
    EXECUTE FUNCTION notify_api_key_revoked();
