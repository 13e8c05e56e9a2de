-- depends: 0002.engine-extensions
-- Authentication state kept in PostgreSQL (the reference kept it in Redis): login sessions with rotating
-- refresh tokens, revoked access tokens, and failed-login counters for e-mails that have no account.

-- One row per login: the refresh-token family. Revoking it ends every refresh token of the family and, through
-- the access token's `sid` claim, every access token minted from it.
CREATE TABLE auth_sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    remember_me    boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason varchar(32)
);
CREATE INDEX auth_sessions_user_id_idx ON auth_sessions (user_id);
CREATE INDEX auth_sessions_expires_at_idx ON auth_sessions (expires_at);

-- Every refresh token ever issued for a session; `used_at` set = rotated away. Presenting a used token again is
-- reuse (a stolen copy or a replay) and revokes the session.
CREATE TABLE refresh_tokens (
    jti         uuid PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    replaced_by uuid
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

-- Access tokens revoked before their expiry (logout). No foreign key: a token outlives nothing it names.
CREATE TABLE revoked_access_tokens (
    jti        uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_at_idx ON revoked_access_tokens (expires_at);

-- Failed logins for e-mails without an account, keyed by SHA-256 of the normalised e-mail (no stored address):
-- unknown e-mails lock exactly like real accounts, so a 423 never tells that an account exists.
CREATE TABLE login_throttle (
    email_sha256          char(64) PRIMARY KEY,
    failed_login_attempts integer NOT NULL DEFAULT 0,
    locked_until          timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_throttle_updated_at_idx ON login_throttle (updated_at);

-- Keys imported from a Nexgent database may carry a bcrypt hash, which cannot be looked up by equality: those
-- are found by their display prefix and then checked with bcrypt.
CREATE INDEX api_keys_key_prefix_idx ON api_keys (key_prefix);
