-- depends: 0071.failed-swap-fees
-- API keys may carry an expiry (docs/security.md, api.md §25.6): NULL, the reference's behaviour, never expires.
-- The revocation trigger of migration 0011 already notifies on any UPDATE, so a changed expiry reaches the caches.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
