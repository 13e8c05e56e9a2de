-- depends: 0011.api-key-revocation-notify 0060.withdrawals
-- API processes remember access tokens found not revoked (app.auth.access_tokens) and must hear about every
-- revocation at once, whoever makes it: logout, refresh-token reuse, an admin password reset, an operator's SQL.
-- Only a change towards "revoked" matters (a token's answer never flips back), so the triggers fire on inserted
-- or changed revocation rows and on sessions whose revoked_at becomes set. They notify in the revoking
-- transaction, so the notice is delivered exactly when the revocation commits. Payload: 'jti:<uuid>' or
-- 'sid:<uuid>'.

CREATE FUNCTION notify_access_token_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('access_token_revoked', 'jti:' || NEW.jti::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER revoked_access_tokens_notify AFTER INSERT OR UPDATE ON revoked_access_tokens
    FOR EACH ROW EXECUTE FUNCTION notify_access_token_revoked();

CREATE FUNCTION notify_session_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('access_token_revoked', 'sid:' || NEW.id::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER auth_sessions_revoked_notify AFTER INSERT OR UPDATE OF revoked_at ON auth_sessions
    FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL) EXECUTE FUNCTION notify_session_revoked();
