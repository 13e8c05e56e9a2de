-- depends: 0002.engine-extensions
-- Signal intake bookkeeping (docs/worker.md "Intake" and "Poison signals").
--
-- A worker claims a signal by holding FOR NO KEY UPDATE on its trading_signals row for as long as it
-- processes it, so a crash releases the claim at once. What the crash must NOT erase is the count of
-- attempts (a signal that kills every worker that touches it would otherwise be retried forever), so
-- each claim is counted in signal_claims by a separate, immediately committed statement.

-- A failed attempt pushes the next one into the future (exponential backoff); NULL = claimable now.
ALTER TABLE trading_signals ADD COLUMN next_attempt_at timestamptz;

CREATE TABLE signal_claims (
    signal_id  integer PRIMARY KEY REFERENCES trading_signals (id) ON DELETE CASCADE,
    attempts   integer NOT NULL DEFAULT 0,
    worker_id  text,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
