-- Agents, their wallets, config and analytics (resource API, issue 4). Every query that takes a user id
-- filters by it: another user's agent is simply not found.

-- name: api_user_email
SELECT email FROM users WHERE id = $1;

-- name: api_insert_agent
INSERT INTO agents (user_id, name, trading_mode)
VALUES ($1, $2, $3)
RETURNING id, user_id, name, trading_mode, automated_trading_simulation, automated_trading_live,
          trading_config, created_at, updated_at;

-- name: api_list_agents
SELECT id, user_id, name, trading_mode, automated_trading_simulation, automated_trading_live,
       trading_config, created_at, updated_at
FROM agents
WHERE user_id = $1
ORDER BY created_at DESC, id;

-- name: api_get_agent
SELECT id, user_id, name, trading_mode, automated_trading_simulation, automated_trading_live,
       trading_config, created_at, updated_at
FROM agents
WHERE id = $1 AND user_id = $2;

-- name: api_lock_agent
-- First lock of the trade lock order (agent → balances by token address → positions).
SELECT id, user_id, name, trading_mode, automated_trading_simulation, automated_trading_live,
       trading_config, created_at, updated_at
FROM agents
WHERE id = $1 AND user_id = $2
FOR UPDATE;

-- name: api_update_agent
-- $3..$6 NULL = keep the current value.
UPDATE agents
SET name = COALESCE($3, name),
    trading_mode = COALESCE($4, trading_mode),
    automated_trading_simulation = COALESCE($5, automated_trading_simulation),
    automated_trading_live = COALESCE($6, automated_trading_live),
    updated_at = now()
WHERE id = $1 AND user_id = $2
RETURNING id, user_id, name, trading_mode, automated_trading_simulation, automated_trading_live,
          trading_config, created_at, updated_at;

-- name: api_set_agent_config
UPDATE agents SET trading_config = $2, updated_at = now() WHERE id = $1;

-- name: api_delete_agent_positions
-- Positions go first: their purchase transaction is ON DELETE RESTRICT, so the cascade from agents
-- could otherwise trip over it depending on the order PostgreSQL visits the children.
DELETE FROM agent_positions WHERE agent_id = $1;

-- name: api_delete_agent
DELETE FROM agents WHERE id = $1 AND user_id = $2;

-- name: api_insert_wallet
INSERT INTO agent_wallets (wallet_address, agent_id, wallet_type)
VALUES ($1, $2, $3)
RETURNING wallet_address, agent_id, wallet_type, created_at, updated_at;

-- name: api_list_agent_wallets
SELECT wallet_address, agent_id, wallet_type, created_at, updated_at
FROM agent_wallets
WHERE agent_id = $1
ORDER BY wallet_type DESC, created_at;

-- name: api_get_agent_wallet
-- $1 wallet address, $2 agent id
SELECT wallet_address, agent_id, wallet_type, created_at, updated_at
FROM agent_wallets
WHERE wallet_address = $1 AND agent_id = $2;

-- name: api_get_agent_wallet_by_type
SELECT wallet_address, agent_id, wallet_type, created_at, updated_at
FROM agent_wallets
WHERE agent_id = $1 AND wallet_type = $2;

-- name: api_get_owned_wallet
-- A wallet by address, only when its agent belongs to the user ($2).
SELECT w.wallet_address, w.agent_id, w.wallet_type, w.created_at, w.updated_at
FROM agent_wallets w
JOIN agents a ON a.id = w.agent_id
WHERE w.wallet_address = $1 AND a.user_id = $2;

-- name: api_wallet_exists
SELECT agent_id FROM agent_wallets WHERE wallet_address = $1;

-- name: api_delete_wallet
DELETE FROM agent_wallets WHERE wallet_address = $1;

-- name: api_balance_history_24h
-- Snapshots of the last 25 hours (one spare hour so a 24-hour chart always has its first point).
SELECT snapshot_timestamp, portfolio_balance_sol, sol_balance, positions_value_sol, unrealized_pnl_sol
FROM agent_balance_snapshots
WHERE agent_id = $1 AND wallet_address = $2 AND snapshot_timestamp >= now() - interval '25 hours'
ORDER BY snapshot_timestamp;

-- name: api_balance_history_daily
-- One snapshot per day: the one taken at 00:00 UTC.
SELECT snapshot_timestamp, portfolio_balance_sol, sol_balance, positions_value_sol, unrealized_pnl_sol
FROM agent_balance_snapshots
WHERE agent_id = $1 AND wallet_address = $2
  AND extract(hour FROM snapshot_timestamp AT TIME ZONE 'UTC') = 0
ORDER BY snapshot_timestamp;

-- name: api_closed_trade_stats
-- Closed-trade figures of the performance summary. $2 wallet (NULL = all), $3 sale_time lower bound.
SELECT count(*)                                       AS closed_trades,
       coalesce(sum(profit_loss_sol), 0)              AS realized_sol,
       count(*) FILTER (WHERE profit_loss_sol > 0)    AS wins,
       coalesce(sum(change_percent), 0)               AS change_sum
FROM agent_historical_swaps
WHERE agent_id = $1
  AND ($2::text IS NULL OR wallet_address = $2)
  AND ($3::timestamptz IS NULL OR sale_time >= $3);

-- name: api_sol_balances
-- SOL balance text per wallet of the agent ($2 wallet or NULL for all).
SELECT wallet_address, balance
FROM agent_balances
WHERE agent_id = $1 AND token_address = $3 AND ($2::text IS NULL OR wallet_address = $2);
