-- Hourly balance snapshots (domain §11.2), written by the worker's snapshot service.

-- name: snapshot_wallets
-- Every wallet of every agent with the hour of its newest snapshot (NULL = never snapshotted).
SELECT w.agent_id, w.wallet_address, w.wallet_type, max(s.snapshot_timestamp) AS last_snapshot
FROM agent_wallets w
LEFT JOIN agent_balance_snapshots s ON s.agent_id = w.agent_id AND s.wallet_address = w.wallet_address
GROUP BY w.agent_id, w.wallet_address, w.wallet_type
ORDER BY w.agent_id, w.wallet_address;

-- name: snapshot_sol_balance
-- $1 wallet, $2 SOL mint
SELECT balance FROM agent_balances WHERE wallet_address = $1 AND token_address = $2;

-- name: snapshot_wallet_positions
-- $1 agent, $2 wallet. Open positions with their latest stored price (NULL when the monitor never priced
-- the token) and the SOL their take-profit sales credited (NULL when they have none).
SELECT p.id, p.token_address, p.purchase_price, p.purchase_amount, p.remaining_amount, p.total_invested_sol,
       p.realized_profit_sol, p.current_stop_loss_percentage, p.peak_price, p.lowest_price, p.dca_count,
       p.last_dca_time, p.take_profit_levels_hit, p.moon_bag_activated, p.moon_bag_amount,
       p.tp_batch_start_level, p.total_take_profit_levels, p.created_at,
       tp.price_sol AS latest_price,
       CASE WHEN cardinality(p.take_profit_transaction_ids) = 0 THEN NULL
            ELSE (SELECT coalesce(sum(t.output_amount - coalesce(t.network_fee_sol, 0)), 0)
                  FROM agent_transactions t
                  WHERE t.id = ANY (p.take_profit_transaction_ids))
       END AS tp_net_proceeds
FROM agent_positions p
LEFT JOIN token_prices tp ON tp.mint = p.token_address
WHERE p.agent_id = $1 AND p.wallet_address = $2;

-- name: upsert_balance_snapshot
-- $1 agent, $2 wallet, $3 hour, $4 portfolio, $5 sol, $6 positions value, $7 unrealized P/L.
-- A second run in the same hour overwrites the figures (§11.2).
INSERT INTO agent_balance_snapshots (agent_id, wallet_address, snapshot_timestamp, portfolio_balance_sol,
                                     sol_balance, positions_value_sol, unrealized_pnl_sol)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (agent_id, wallet_address, snapshot_timestamp) DO UPDATE
SET portfolio_balance_sol = EXCLUDED.portfolio_balance_sol,
    sol_balance = EXCLUDED.sol_balance,
    positions_value_sol = EXCLUDED.positions_value_sol,
    unrealized_pnl_sol = EXCLUDED.unrealized_pnl_sol,
    updated_at = now();

-- name: backfill_balance_snapshots
-- $1 agent, $2 wallet, $3 missed hours, $4..$7 figures. Hours that already have a row keep it: a backfill
-- only fills holes, once.
INSERT INTO agent_balance_snapshots (agent_id, wallet_address, snapshot_timestamp, portfolio_balance_sol,
                                     sol_balance, positions_value_sol, unrealized_pnl_sol)
SELECT $1, $2, hour, $4, $5, $6, $7 FROM unnest($3::timestamptz[]) AS hour
ON CONFLICT (agent_id, wallet_address, snapshot_timestamp) DO NOTHING
RETURNING snapshot_timestamp;
