-- Accounts, lockout, sessions/refresh tokens, access-token revocation and API keys (issue 3).
-- Every timestamp that decides a lockout comes in as a parameter (the app's injectable clock), not now().

-- name: auth_user_by_email
-- $1 normalised e-mail; served by the unique index on lower(email).
SELECT id, email, password_hash, created_at, failed_login_attempts, locked_until
FROM users WHERE lower(email) = $1;

-- name: auth_login_subject
-- Always one row: the account for e-mail $1 (columns NULL when none) and the lock recorded for $2 (sha256 of
-- the e-mail) when it has no account. One round trip on both paths, so they cost the same.
SELECT u.id, u.email, u.password_hash, u.created_at, u.locked_until,
       t.locked_until AS throttle_locked_until
FROM (SELECT 1) AS one
LEFT JOIN users u ON lower(u.email) = $1
LEFT JOIN login_throttle t ON t.email_sha256 = $2;

-- name: auth_user_by_id
SELECT id, email, created_at, locked_until FROM users WHERE id = $1;

-- name: auth_insert_user
-- $1 normalised e-mail, $2 password hash. No row back when the e-mail is taken (any case).
INSERT INTO users (email, password_hash) VALUES ($1, $2)
ON CONFLICT DO NOTHING
RETURNING id, email, created_at;

-- name: auth_record_failed_login
-- $1 user id, $2 now, $3 threshold, $4 lock seconds. Atomic (the row is locked by the UPDATE and the CASEs see
-- the latest committed counter). A lock that has expired starts a fresh count instead of re-locking at once.
-- No row back when the account is locked right now (a concurrent failure locked it): the caller answers 423.
UPDATE users SET
    failed_login_attempts = CASE WHEN locked_until IS NOT NULL THEN 1 ELSE failed_login_attempts + 1 END,
    locked_until = CASE
        WHEN (CASE WHEN locked_until IS NOT NULL THEN 1 ELSE failed_login_attempts + 1 END) >= $3
        THEN $2 + make_interval(secs => $4)
    END
WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2)
RETURNING failed_login_attempts, locked_until;

-- name: auth_record_failed_unknown_login
-- Same counting rule as auth_record_failed_login, for an e-mail that has no account.
INSERT INTO login_throttle AS t (email_sha256, failed_login_attempts, locked_until, updated_at)
VALUES ($1, 1, CASE WHEN 1 >= $3::int THEN $2::timestamptz + make_interval(secs => $4) END, $2::timestamptz)
ON CONFLICT (email_sha256) DO UPDATE SET
    failed_login_attempts = CASE WHEN t.locked_until IS NOT NULL THEN 1 ELSE t.failed_login_attempts + 1 END,
    locked_until = CASE
        WHEN (CASE WHEN t.locked_until IS NOT NULL THEN 1 ELSE t.failed_login_attempts + 1 END) >= $3
        THEN $2 + make_interval(secs => $4)
    END,
    updated_at = $2
WHERE t.locked_until IS NULL OR t.locked_until <= $2
RETURNING failed_login_attempts, locked_until;

-- name: auth_reset_failed_logins
UPDATE users SET failed_login_attempts = 0, locked_until = NULL
WHERE id = $1 AND (failed_login_attempts <> 0 OR locked_until IS NOT NULL);

-- name: auth_replace_password_hash
-- $1 user id, $2 new hash, $3 the hash that was verified: a concurrent change of the password is never undone.
UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3;

-- name: auth_set_password
-- Admin password reset from the environment: new hash, lockout cleared.
UPDATE users SET password_hash = $2, failed_login_attempts = 0, locked_until = NULL WHERE id = $1;

-- name: auth_create_session
-- $1 session id, $2 user id, $3 remember me, $4 expires at, $5 first refresh token's jti.
WITH s AS (
    INSERT INTO auth_sessions (id, user_id, remember_me, expires_at) VALUES ($1, $2, $3, $4)
    RETURNING id, expires_at
)
INSERT INTO refresh_tokens (jti, session_id, expires_at) SELECT $5, id, expires_at FROM s;

-- name: auth_refresh_token_for_update
-- The presented refresh token with its session and user, both rows locked so two refreshes serialise.
SELECT rt.jti, rt.used_at, s.id AS session_id, s.user_id, s.expires_at, s.revoked_at,
       u.email, u.locked_until
FROM refresh_tokens rt
JOIN auth_sessions s ON s.id = rt.session_id
LEFT JOIN users u ON u.id = s.user_id
WHERE rt.jti = $1
FOR UPDATE OF rt, s;

-- name: auth_rotate_refresh_token
-- $1 used jti, $2 new jti, $3 session id, $4 expires at.
WITH used AS (UPDATE refresh_tokens SET used_at = now(), replaced_by = $2 WHERE jti = $1)
INSERT INTO refresh_tokens (jti, session_id, expires_at) VALUES ($2, $3, $4);

-- name: auth_refresh_token_session
-- Which session (and user) a refresh token belongs to, for logout.
SELECT s.id AS session_id, s.user_id FROM refresh_tokens rt JOIN auth_sessions s ON s.id = rt.session_id
WHERE rt.jti = $1;

-- name: auth_revoke_session
-- $1 session id, $2 reason.
UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL;

-- name: auth_revoke_user_sessions
UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $2 WHERE user_id = $1 AND revoked_at IS NULL;

-- name: auth_revoke_access_token
INSERT INTO revoked_access_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING;

-- name: auth_access_token_revoked
-- $1 access token jti, $2 its session id (NULL for tokens minted without a session). Two primary-key probes.
SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $1)
    OR EXISTS (SELECT 1 FROM auth_sessions WHERE id = $2 AND revoked_at IS NOT NULL);

-- name: auth_prune_expired
-- Housekeeping: state that can no longer decide anything. Revoked sessions stay until they expire, because the
-- access tokens they minted are checked against them.
WITH a AS (DELETE FROM revoked_access_tokens WHERE expires_at < now() RETURNING 1),
     s AS (DELETE FROM auth_sessions WHERE expires_at < now() RETURNING 1),
     t AS (DELETE FROM login_throttle
           WHERE updated_at < now() - interval '1 day' AND (locked_until IS NULL OR locked_until < now())
           RETURNING 1)
SELECT (SELECT count(*) FROM a) AS access_tokens, (SELECT count(*) FROM s) AS sessions,
       (SELECT count(*) FROM t) AS throttles;

-- name: auth_insert_api_key
-- $1 user id, $2 name, $3 key hash, $4 display prefix, $5 scopes, $6 expiry (NULL = never), $7 allowed source
-- networks (NULL = any address).
INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes, expires_at, allowed_ips)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, name, key_prefix, scopes, created_at, expires_at, last_used_at, allowed_ips::text[] AS allowed_ips;

-- name: auth_list_api_keys
SELECT id, name, key_prefix, scopes, created_at, expires_at, last_used_at, allowed_ips::text[] AS allowed_ips
FROM api_keys
WHERE user_id = $1
ORDER BY created_at DESC, id;

-- name: auth_get_api_key
SELECT id, name, key_prefix, scopes, created_at, expires_at, last_used_at, allowed_ips::text[] AS allowed_ips
FROM api_keys
WHERE id = $1 AND user_id = $2;

-- name: auth_delete_api_key
DELETE FROM api_keys WHERE id = $1 AND user_id = $2 RETURNING id;

-- name: auth_api_key_by_hash
-- $1 sha256 hex of the presented key: the one indexed lookup of every API-key request.
SELECT k.id, k.user_id, k.key_hash, k.scopes, k.expires_at, k.allowed_ips::text[] AS allowed_ips, u.email
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.key_hash = $1;

-- name: auth_api_key_legacy_candidates
-- $1 the presented key's possible display prefixes: imported rows with a bcrypt hash, checked by the caller.
SELECT k.id, k.user_id, k.key_hash, k.scopes, k.expires_at, k.allowed_ips::text[] AS allowed_ips, u.email
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.key_prefix = ANY ($1::text[]) AND left(k.key_hash, 4) IN ('$2a$', '$2b$', '$2y$')
LIMIT 8;

-- name: auth_api_key_by_id_and_hash
-- A cached (bcrypt-verified) key, re-read on every request so a deleted or re-hashed key fails at once.
SELECT k.id, k.user_id, k.key_hash, k.scopes, k.expires_at, k.allowed_ips::text[] AS allowed_ips, u.email
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.id = $1 AND k.key_hash = $2;

-- name: auth_operator_unlock
-- `nexgent unlock EMAIL`: $1 normalised e-mail, $2 its SHA-256. Clears the account's lockout and the throttle row
-- an unknown address would have; returns whether either existed.
WITH account AS (
    UPDATE users SET failed_login_attempts = 0, locked_until = NULL WHERE email = $1 RETURNING id),
throttle AS (
    DELETE FROM login_throttle WHERE email_sha256 = $2 RETURNING 1)
SELECT (SELECT count(*) FROM account) > 0 AS account, (SELECT count(*) FROM throttle) > 0 AS throttle;

-- name: auth_touch_api_key
-- At most once a minute per key (the caller also throttles per process); does not notify (migration 0073).
UPDATE api_keys SET last_used_at = now()
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');
