-- depends: 0040.token-prices
-- The price monitor's fast path (docs/position-management.md "Quiet bands"): for a position whose last full
-- evaluation had nothing to do, the open price interval (lo, hi), and optional deadline, inside which every
-- evaluation of the same row version (agent_positions.updated_at) under the same agent config (md5 of
-- agents.trading_config) again has nothing to do. The monitor's position query skips those rows in SQL, so a
-- tick over a quiet market reads and evaluates only the positions near a trigger.
--
-- A cache, not state: a row is valid only while version and config_hash match, and losing the table costs
-- one full evaluation per position. No foreign key, so writing a band never waits on or fails against a
-- trade deleting its position; the monitor deletes orphans when it refreshes its tracking set.
CREATE TABLE position_quiet_bands (
    position_id uuid PRIMARY KEY,
    version     timestamptz NOT NULL,
    config_hash text NOT NULL,
    lo          numeric,
    hi          numeric,
    until       timestamptz
);
