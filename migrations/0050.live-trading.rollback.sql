DROP TABLE IF EXISTS live_wallet_reconciliations;
DROP TABLE IF EXISTS live_agent_limits;
DROP TABLE IF EXISTS live_trading_halts;
DROP TRIGGER IF EXISTS agent_wallets_live_swaps_guard ON agent_wallets;
DROP FUNCTION IF EXISTS live_swaps_guard_wallet();
DROP TABLE IF EXISTS live_swaps;
