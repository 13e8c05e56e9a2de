-- Read models of open positions for the resource API (positions list, take-profit summary, performance).

-- name: api_open_positions
-- $1 agent, $2 wallet (NULL = every wallet of the agent). Newest first. The purchase transaction is
-- LEFT JOINed: the list view skips positions without one (upstream), performance still counts them.
-- tp_proceeds_sol = SOL received by the position's take-profit sales, net of their network fees.
SELECT p.id, p.agent_id, p.wallet_address, p.token_address, p.token_symbol,
       p.purchase_transaction_id, p.purchase_price, p.purchase_amount, p.current_stop_loss_percentage,
       p.peak_price, p.lowest_price, p.dca_count, p.dca_transaction_ids, p.last_dca_time,
       p.total_invested_sol, p.remaining_amount, p.take_profit_levels_hit, p.take_profit_transaction_ids,
       p.last_take_profit_time, p.moon_bag_activated, p.moon_bag_amount, p.realized_profit_sol,
       p.tp_batch_start_level, p.total_take_profit_levels, p.created_at, p.updated_at,
       t.transaction_hash AS purchase_transaction_hash,
       t.transaction_time AS purchase_transaction_time,
       (SELECT coalesce(sum(tt.output_amount - coalesce(tt.network_fee_sol, 0)), 0)
        FROM agent_transactions tt
        WHERE tt.id = ANY (p.take_profit_transaction_ids)) AS tp_proceeds_sol
FROM agent_positions p
LEFT JOIN agent_transactions t ON t.id = p.purchase_transaction_id
WHERE p.agent_id = $1 AND ($2::text IS NULL OR p.wallet_address = $2)
ORDER BY p.created_at DESC, p.id;
