ALTER TABLE agent_historical_swaps DROP COLUMN IF EXISTS sol_usd_price, DROP COLUMN IF EXISTS position_id;
DROP INDEX IF EXISTS agent_transactions_position_id_idx;
ALTER TABLE agent_transactions DROP COLUMN IF EXISTS sol_usd_price, DROP COLUMN IF EXISTS position_id;
