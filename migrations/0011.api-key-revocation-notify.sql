-- depends: 0010.auth-sessions
-- API processes cache verified API keys (app.auth.keys) and must hear about every change to a key row at once,
-- whoever makes it: the API's DELETE, a user deletion cascading to the user's keys, or an operator's SQL.
-- The trigger notifies in the changing transaction, so the notice is delivered exactly when the change commits
-- (never for a rolled-back one). Payload: the key id, or '*' when keys changed in bulk (TRUNCATE).

CREATE FUNCTION notify_api_key_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('api_key_revoked', OLD.id::text);
    RETURN NULL;
END;
$$;
-- Keys are immutable in the API; an UPDATE can only come from an operator (new hash, other scopes, other owner),
-- and the cached principal must not outlive it either.
CREATE TRIGGER api_keys_revoked_notify AFTER DELETE OR UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION notify_api_key_revoked();

CREATE FUNCTION notify_api_keys_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('api_key_revoked', '*');
    RETURN NULL;
END;
$$;
CREATE TRIGGER api_keys_truncated_notify AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION notify_api_keys_truncated();

-- The cached principal carries the owner's e-mail: an e-mail change re-reads every key of that user.
CREATE FUNCTION notify_api_key_owner_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('api_key_revoked', k.id::text) FROM api_keys k WHERE k.user_id = NEW.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER users_email_changed_notify AFTER UPDATE OF email ON users
    FOR EACH ROW WHEN (OLD.email IS DISTINCT FROM NEW.email) EXECUTE FUNCTION notify_api_key_owner_changed();
