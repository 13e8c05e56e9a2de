DROP TRIGGER IF EXISTS auth_sessions_revoked_notify ON auth_sessions;
DROP FUNCTION IF EXISTS notify_session_revoked();
DROP TRIGGER IF EXISTS revoked_access_tokens_notify ON revoked_access_tokens;
DROP FUNCTION IF EXISTS notify_access_token_revoked();
