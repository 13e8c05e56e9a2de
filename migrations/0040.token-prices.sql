-- depends: 0002.engine-extensions
-- Latest price of every token the worker monitors, written by the price monitor on every poll and read
-- by the API (positions, performance) and the hourly snapshots. One row per mint; SOL/USD is the row of
-- the SOL mint (price_sol = 1). A row is a cache of the last observation, never a history.
CREATE TABLE token_prices (
    mint          varchar(255) PRIMARY KEY,
    price_sol     numeric(30, 18) NOT NULL CHECK (price_sol > 0),
    price_usd     numeric(30, 18) CHECK (price_usd > 0),
    liquidity_usd numeric(30, 8),
    -- When the source observed the price (not when we wrote it): readers judge staleness from it.
    observed_at   timestamptz NOT NULL,
    source        varchar(32) NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
