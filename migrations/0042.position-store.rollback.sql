CREATE TABLE position_quiet_bands (
    position_id uuid PRIMARY KEY,
    version     timestamptz NOT NULL,
    config_hash text NOT NULL,
    lo          numeric,
    hi          numeric,
    until       timestamptz
);
DROP INDEX IF EXISTS agent_positions_updated_at_idx;
DROP TRIGGER IF EXISTS agents_bump_updated_at ON agents;
DROP TRIGGER IF EXISTS agent_positions_bump_updated_at ON agent_positions;
DROP FUNCTION IF EXISTS bump_updated_at();
