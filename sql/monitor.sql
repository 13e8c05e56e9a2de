-- Price monitor (domain §9): the reads that keep its in-process position store current, and the write-back
-- of the trailing-stop / DCA tracking fields.

-- name: monitor_open_positions
-- $1 mints. Every open position of those tokens with the automated-trading flag of the position's own
-- wallet type (not the agent's current mode, §16.22). Agents' configs come from monitor_agent_configs.
SELECT p.id, p.agent_id, p.wallet_address, p.token_address, p.token_symbol, p.purchase_transaction_id,
       p.purchase_price, p.purchase_amount, p.current_stop_loss_percentage, p.peak_price, p.lowest_price,
       p.last_stop_loss_update, p.dca_count, p.dca_transaction_ids, p.last_dca_time, p.total_invested_sol,
       p.created_at, p.updated_at, p.remaining_amount, p.take_profit_levels_hit, p.take_profit_transaction_ids,
       p.last_take_profit_time, p.moon_bag_activated, p.moon_bag_amount, p.realized_profit_sol,
       p.tp_batch_start_level, p.total_take_profit_levels, w.wallet_type,
       CASE WHEN w.wallet_type = 'live' THEN a.automated_trading_live
            ELSE a.automated_trading_simulation END AS automated
FROM agent_positions p
JOIN agents a ON a.id = p.agent_id
JOIN agent_wallets w ON w.wallet_address = p.wallet_address
WHERE p.token_address = ANY ($1::text[])
ORDER BY p.token_address, p.created_at, p.id;

-- name: monitor_position_versions_since
-- $1 timestamptz or NULL. The position store's incremental read (app/worker/position_store.py): id and version
-- of every position changed after $1 (all of them for NULL), narrow so that re-reading rows the store already
-- holds (its own write-backs, the overlap) stays cheap; the changed ones are then read in full. Two arrays in
-- one row: far cheaper to decode than one record per position.
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(updated_at), '{}') AS versions
FROM agent_positions WHERE updated_at > coalesce($1::timestamptz, '-infinity');

-- name: monitor_positions_by_ids
-- $1 position ids: the rows a sync found missing from the store or changed, with their wallet type.
SELECT p.id, p.agent_id, p.wallet_address, p.token_address, p.token_symbol, p.purchase_transaction_id,
       p.purchase_price, p.purchase_amount, p.current_stop_loss_percentage, p.peak_price, p.lowest_price,
       p.last_stop_loss_update, p.dca_count, p.dca_transaction_ids, p.last_dca_time, p.total_invested_sol,
       p.created_at, p.updated_at, p.remaining_amount, p.take_profit_levels_hit, p.take_profit_transaction_ids,
       p.last_take_profit_time, p.moon_bag_activated, p.moon_bag_amount, p.realized_profit_sol,
       p.tp_batch_start_level, p.total_take_profit_levels, w.wallet_type
FROM agent_positions p
JOIN agent_wallets w ON w.wallet_address = p.wallet_address
WHERE p.id = ANY ($1::uuid[]);

-- name: monitor_position_count
-- How many positions exist, and the start of the reading transaction (the store's next watermark).
SELECT count(*)::int AS total, now() AS read_at FROM agent_positions;

-- name: monitor_position_versions
-- Every position's id and version, as two arrays: the store's reconciliation (deletions, inserts beyond the
-- overlap, updates hidden by a long transaction).
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(updated_at), '{}') AS versions
FROM agent_positions;

-- name: monitor_agents_since
-- $1 timestamptz or NULL, $2 agent ids. Settings of the agents changed after $1 (all for NULL) or listed in $2.
SELECT id, trading_config, automated_trading_simulation, automated_trading_live, updated_at
FROM agents
WHERE updated_at > coalesce($1::timestamptz, '-infinity') OR id = ANY ($2::uuid[]);

-- name: monitor_update_tracking
-- Batch write-back of the fields that changed this tick, one row per position (parallel arrays):
-- $1 id, $2 updated_at the evaluation read, $3 stop-loss fields changed, $4 peak_price,
-- $5 current_stop_loss_percentage, $6 lowest_price changed, $7 lowest_price, $8 now.
-- A row changed since it was read (a sale, take-profit, DCA or another monitor) is left alone: its
-- evaluation used stale state, and the next tick evaluates the fresh row.
UPDATE agent_positions AS p
SET peak_price = CASE WHEN u.sl_changed THEN u.peak_price ELSE p.peak_price END,
    current_stop_loss_percentage = CASE WHEN u.sl_changed THEN u.stop_pct ELSE p.current_stop_loss_percentage END,
    last_stop_loss_update = CASE WHEN u.sl_changed THEN $8::timestamptz ELSE p.last_stop_loss_update END,
    lowest_price = CASE WHEN u.low_changed THEN u.lowest ELSE p.lowest_price END,
    updated_at = clock_timestamp()
FROM unnest($1::uuid[], $2::timestamptz[], $3::bool[], $4::numeric[], $5::numeric[], $6::bool[], $7::numeric[])
         AS u(id, expected_updated_at, sl_changed, peak_price, stop_pct, low_changed, lowest)
WHERE p.id = u.id AND p.updated_at = u.expected_updated_at
RETURNING p.id, p.agent_id, p.wallet_address, p.token_address, p.token_symbol, p.purchase_transaction_id,
          p.purchase_price, p.purchase_amount, p.current_stop_loss_percentage, p.peak_price, p.lowest_price,
          p.last_stop_loss_update, p.dca_count, p.dca_transaction_ids, p.last_dca_time, p.total_invested_sol,
          p.created_at, p.updated_at, p.remaining_amount, p.take_profit_levels_hit,
          p.take_profit_transaction_ids, p.last_take_profit_time, p.moon_bag_activated, p.moon_bag_amount,
          p.realized_profit_sol, p.tp_batch_start_level, p.total_take_profit_levels;
