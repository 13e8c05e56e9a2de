-- Wallet reset and unassign (resource API). Run in one DB transaction after the agent row lock.

-- name: api_reset_wallet_positions
-- Positions first: their purchase transaction is ON DELETE RESTRICT.
DELETE FROM agent_positions WHERE wallet_address = $1 RETURNING id, token_address, token_symbol;

-- name: api_reset_wallet_swaps
DELETE FROM agent_historical_swaps WHERE wallet_address = $1;

-- name: api_reset_wallet_transactions
DELETE FROM agent_transactions WHERE wallet_address = $1;

-- name: api_reset_wallet_balances
DELETE FROM agent_balances WHERE wallet_address = $1;

-- name: api_reset_wallet_snapshots
DELETE FROM agent_balance_snapshots WHERE wallet_address = $1;

-- name: api_lock_sol_balance
SELECT balance FROM agent_balances WHERE wallet_address = $1 AND token_address = $2 FOR UPDATE;

-- name: api_wallet_swap_in_flight
-- A live swap of this wallet not yet settled from chain (table of the live-trading engine, migration 0050):
-- while one is in flight the on-chain balance already moved and the ledger has not, so no deposit check.
SELECT EXISTS (SELECT 1 FROM live_swaps WHERE wallet_address = $1 AND status IN ('pending', 'sent', 'confirmed'));
