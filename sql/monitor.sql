-- Price monitor (domain §9): which tokens to poll, the positions a price drives, and the write-back of
-- the trailing-stop / DCA tracking fields.

-- name: monitor_tracked_tokens
-- Tokens with at least one open position and how many positions each has.
SELECT token_address, count(*)::int AS positions
FROM agent_positions
GROUP BY token_address;

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

-- name: monitor_positions_to_evaluate
-- $1 mints, $2 their prices (parallel arrays), $3 now. The open positions of those tokens that need a full
-- evaluation at this price: automation on for the position's wallet type, and no valid quiet band containing
-- the price (position_quiet_bands). Each row carries its agent's stored config and that config's hash.
-- The quiet check runs on narrow rows first; only the positions it keeps are read in full.
WITH priced AS (
    SELECT * FROM unnest($1::text[], $2::numeric[]) AS t(mint, price)
), configs AS MATERIALIZED (
    -- One hash per agent (not per position).
    SELECT a.id, a.trading_config, md5(coalesce(a.trading_config::text, '')) AS config_hash,
           a.automated_trading_simulation, a.automated_trading_live
    FROM agents a
    WHERE EXISTS (SELECT 1 FROM agent_positions x WHERE x.agent_id = a.id AND x.token_address = ANY ($1::text[]))
), due AS MATERIALIZED (
    SELECT p.id
    FROM agent_positions p
    JOIN priced t ON t.mint = p.token_address
    JOIN configs c ON c.id = p.agent_id
    LEFT JOIN position_quiet_bands b ON b.position_id = p.id
    WHERE NOT coalesce(
        b.version = p.updated_at AND b.config_hash = c.config_hash
        AND (b.lo IS NULL OR t.price > b.lo) AND (b.hi IS NULL OR t.price < b.hi)
        AND (b.until IS NULL OR b.until > $3::timestamptz),
        false)
)
SELECT p.id, p.agent_id, p.wallet_address, p.token_address, p.token_symbol, p.purchase_transaction_id,
       p.purchase_price, p.purchase_amount, p.current_stop_loss_percentage, p.peak_price, p.lowest_price,
       p.last_stop_loss_update, p.dca_count, p.dca_transaction_ids, p.last_dca_time, p.total_invested_sol,
       p.created_at, p.updated_at, p.remaining_amount, p.take_profit_levels_hit, p.take_profit_transaction_ids,
       p.last_take_profit_time, p.moon_bag_activated, p.moon_bag_amount, p.realized_profit_sol,
       p.tp_batch_start_level, p.total_take_profit_levels, w.wallet_type, c.trading_config, c.config_hash
FROM due d
JOIN agent_positions p ON p.id = d.id
JOIN agent_wallets w ON w.wallet_address = p.wallet_address
JOIN configs c ON c.id = p.agent_id
WHERE CASE WHEN w.wallet_type = 'live' THEN c.automated_trading_live ELSE c.automated_trading_simulation END
ORDER BY p.token_address, p.created_at, p.id;

-- name: monitor_store_quiet_bands
-- $1 position ids, $2 row versions (updated_at) the bands were computed for, $3 config hashes, $4 lo, $5 hi,
-- $6 until (parallel arrays).
INSERT INTO position_quiet_bands AS b (position_id, version, config_hash, lo, hi, until)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::numeric[], $5::numeric[], $6::timestamptz[])
ON CONFLICT (position_id) DO UPDATE
SET version = EXCLUDED.version, config_hash = EXCLUDED.config_hash, lo = EXCLUDED.lo, hi = EXCLUDED.hi,
    until = EXCLUDED.until;

-- name: monitor_prune_quiet_bands
-- Bands of positions that no longer exist.
DELETE FROM position_quiet_bands b
WHERE NOT EXISTS (SELECT 1 FROM agent_positions p WHERE p.id = b.position_id);

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
