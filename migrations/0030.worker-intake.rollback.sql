DROP TABLE IF EXISTS signal_claims;
ALTER TABLE trading_signals DROP COLUMN IF EXISTS next_attempt_at;
