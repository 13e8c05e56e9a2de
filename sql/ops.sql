-- Queries of the operations area (metrics scrape, WebSocket snapshots).

-- name: ops_oldest_unprocessed_signal_age
-- Seconds since the oldest signal the workers have not finished; 0 when the queue is empty. Walks the
-- partial index on unprocessed signals, so it stays cheap however large the table grows.
SELECT COALESCE(
    (SELECT extract(epoch FROM now() - created_at)::float8
     FROM trading_signals WHERE processed_at IS NULL ORDER BY id LIMIT 1),
    0
)::float8;

-- name: ops_unprocessed_signal_count
SELECT count(*) FROM trading_signals WHERE processed_at IS NULL;

-- name: ops_open_position_count
SELECT count(*) FROM agent_positions;

-- name: ops_agent_owned_by
-- 1 when the agent belongs to the user, no row otherwise.
SELECT 1 FROM agents WHERE id = $1 AND user_id = $2;

-- name: ops_agent_positions
-- Open positions of one agent, oldest first, for the WebSocket snapshot.
SELECT id, agent_id, wallet_address, token_address, token_symbol, purchase_transaction_id, purchase_price,
       purchase_amount, current_stop_loss_percentage, peak_price, lowest_price, last_stop_loss_update,
       dca_count, dca_transaction_ids, last_dca_time, total_invested_sol, created_at, updated_at,
       remaining_amount, take_profit_levels_hit, take_profit_transaction_ids, last_take_profit_time,
       moon_bag_activated, moon_bag_amount, realized_profit_sol, tp_batch_start_level, total_take_profit_levels
FROM agent_positions
WHERE agent_id = $1
ORDER BY created_at, id;
