-- depends: 0041.position-quiet-bands
-- The price monitor keeps the open positions in memory and reads only what changed since its last tick
-- (docs/position-management.md "Position store"). That relies on every write bumping updated_at, which the
-- application's statements do and these triggers enforce for any other writer (an import, a manual fix),
-- with clock_timestamp() so a row written late in a long transaction is stamped close to its commit.
CREATE FUNCTION bump_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END;
$$;

CREATE TRIGGER agent_positions_bump_updated_at BEFORE UPDATE ON agent_positions
    FOR EACH ROW EXECUTE FUNCTION bump_updated_at();
CREATE TRIGGER agents_bump_updated_at BEFORE UPDATE ON agents
    FOR EACH ROW EXECUTE FUNCTION bump_updated_at();

CREATE INDEX agent_positions_updated_at_idx ON agent_positions (updated_at);

-- Quiet bands now live in the monitor's memory.
DROP TABLE position_quiet_bands;
