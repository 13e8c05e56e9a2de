-- The trade path (app/worker/execution.py). Lock order for every trade, in one transaction:
--   agent row FOR UPDATE → balance rows FOR UPDATE (ordered by token_address) → position row FOR UPDATE.
-- Reads named *_snapshot take no locks: they plan the trade (size, quote) outside the transaction, and
-- the locked re-checks decide whether the plan still holds.

-- name: exec_buy_snapshot
-- $1 agent_id, $2 wallet_address (NULL = the agent's wallet of its trading mode), $3 token, $4 SOL mint
SELECT a.id AS agent_id, a.user_id, a.trading_mode, a.trading_config, a.xmin::text AS agent_version,
       w.wallet_address, w.wallet_type,
       sb.balance AS sol_balance, sb.token_symbol AS sol_symbol,
       EXISTS (SELECT 1 FROM agent_balances tb WHERE tb.wallet_address = w.wallet_address AND tb.token_address = $3)
           AS token_balance_exists,
       EXISTS (SELECT 1 FROM agent_positions p
               WHERE p.agent_id = a.id AND p.wallet_address = w.wallet_address AND p.token_address = $3)
           AS position_exists,
       (SELECT count(*) FROM agent_positions p WHERE p.agent_id = a.id)::int AS open_positions
FROM agents a
LEFT JOIN agent_wallets w
       ON w.agent_id = a.id
      AND CASE WHEN $2::varchar IS NULL THEN w.wallet_type = a.trading_mode ELSE w.wallet_address = $2 END
LEFT JOIN agent_balances sb ON sb.wallet_address = w.wallet_address AND sb.token_address = $4
WHERE a.id = $1;

-- name: exec_lock_agent
SELECT id, user_id, trading_mode, trading_config FROM agents WHERE id = $1 FOR UPDATE;

-- name: exec_lock_balances
-- $1 wallet_address, $2 token addresses; rows are locked in token_address order (the documented order).
SELECT token_address, token_symbol, balance
FROM agent_balances
WHERE wallet_address = $1 AND token_address = ANY($2::varchar[])
ORDER BY token_address
FOR UPDATE;

-- name: exec_buy_locked_state
-- After the agent lock: $1 agent_id, $2 wallet, $3 mints (sorted), $4 token, $5 signal_id (NULL = none).
-- Locks the wallet's balance rows in token_address order and re-reads everything the buy was planned on.
WITH locked AS (
    SELECT token_address, token_symbol, balance
    FROM agent_balances
    WHERE wallet_address = $2 AND token_address = ANY($3::varchar[])
    ORDER BY token_address
    FOR UPDATE)
SELECT a.trading_mode, a.trading_config,
       (SELECT wallet_type FROM agent_wallets WHERE wallet_address = $2 AND agent_id = $1) AS wallet_type,
       EXISTS (SELECT 1 FROM agent_positions
               WHERE agent_id = $1 AND wallet_address = $2 AND token_address = $4) AS position_exists,
       (SELECT count(*) FROM agent_positions WHERE agent_id = $1)::int AS open_positions,
       ($5::int IS NOT NULL AND EXISTS (SELECT 1 FROM signal_executions WHERE signal_id = $5 AND agent_id = $1))
           AS already_executed,
       (SELECT array_agg(token_address ORDER BY token_address) FROM locked) AS balance_tokens,
       (SELECT array_agg(token_symbol ORDER BY token_address) FROM locked) AS balance_symbols,
       (SELECT array_agg(balance ORDER BY token_address) FROM locked) AS balance_values
FROM agents a
WHERE a.id = $1;

-- name: exec_record_buy
-- Every row of a buy in one statement: the SWAP row, both balances, the signal's success row (when $24 is
-- set; a second one violates the unique key and aborts everything) and the position, returned whole.
-- $31..$34 (a simulation buy, whose fill has no effect outside this database): the caller holds only the
-- agent lock, so the statement locks the wallet's balance rows itself (token order, as exec_lock_balances)
-- and writes nothing, returning no row, unless the plan still holds: the SOL balance is still the text $31
-- it was sized on, no balance of the token exists, the agent row is the version planned on ($32, its xmin:
-- same mode and config), the wallet is still the agent's of type $33, and fewer than $34 positions are open.
-- With $31 NULL the caller has locked and re-checked all of that already (exec_buy_locked_state).
WITH locked AS (
    SELECT token_address, balance
    FROM agent_balances
    WHERE $31::text IS NOT NULL AND wallet_address = $3 AND token_address = ANY($21::varchar[])
    ORDER BY token_address
    FOR UPDATE),
plan_holds AS (
    SELECT $31::text IS NULL
        OR (    (SELECT balance FROM locked WHERE token_address = 'So11111111111111111111111111111111111111112')
                    = $31::text
            AND NOT EXISTS (SELECT 1 FROM locked WHERE token_address = $9)
            AND (SELECT xmin::text FROM agents WHERE id = $2) = $32::text
            AND EXISTS (SELECT 1 FROM agent_wallets
                        WHERE wallet_address = $3 AND agent_id = $2 AND wallet_type = $33::varchar)
            AND (SELECT count(*) FROM agent_positions WHERE agent_id = $2) < $34::int) AS ok),
tx AS (
    INSERT INTO agent_transactions (
        id, agent_id, wallet_address, transaction_type, transaction_value_usd, transaction_time, signal_id, fees,
        routes, input_mint, input_symbol, input_amount, input_price, output_mint, output_symbol, output_amount,
        output_price, slippage, price_impact, transaction_hash, swap_payload, protocol_fee_sol, network_fee_sol,
        position_id, sol_usd_price)
    SELECT $1, $2, $3, 'SWAP', $4, clock_timestamp(), $5, $6,
           $7, 'So11111111111111111111111111111111111111112', 'SOL', $8, 1, $9, $10, $11,
           $12, $13, $14, $15, $16, $17, $18,
           $19, $20
    WHERE (SELECT ok FROM plan_holds)
    RETURNING id),
balances AS (
    INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance, last_updated)
    SELECT $2, $3, t.token, t.symbol, t.balance, clock_timestamp()
    FROM unnest($21::varchar[], $22::varchar[], $23::text[]) AS t(token, symbol, balance)
    WHERE (SELECT ok FROM plan_holds)
    ON CONFLICT (wallet_address, token_address)
    DO UPDATE SET balance = EXCLUDED.balance, last_updated = EXCLUDED.last_updated),
execution AS (
    INSERT INTO signal_executions (signal_id, agent_id, status, transaction_id, executed_at)
    SELECT $24, $2, 'success', tx.id, clock_timestamp() FROM tx WHERE $24::int IS NOT NULL)
INSERT INTO agent_positions (
    id, agent_id, wallet_address, token_address, token_symbol, purchase_transaction_id, purchase_price,
    purchase_amount, total_invested_sol, lowest_price, current_stop_loss_percentage, peak_price,
    last_stop_loss_update, created_at, updated_at)
SELECT $19, $2, $3, $9, $10, tx.id, $25, $26, $27, $28, $29, $30,
       CASE WHEN $29::numeric IS NULL THEN NULL ELSE clock_timestamp() END, clock_timestamp(), clock_timestamp()
FROM tx
RETURNING *;

-- name: exec_link_settled_signal_buy
-- $1 signal_id, $2 agent_id, $3 the buy live settlement just recorded. The pair's one execution row becomes
-- success pointing at it: inserted when absent, or replacing the intake's failed/skipped row of that pair. A
-- success row (for another buy) is left alone; nothing is returned then.
INSERT INTO signal_executions (signal_id, agent_id, status, transaction_id, executed_at)
VALUES ($1, $2, 'success', $3, clock_timestamp())
ON CONFLICT (signal_id, agent_id) DO UPDATE
SET status = 'success', error = NULL, transaction_id = EXCLUDED.transaction_id, executed_at = EXCLUDED.executed_at
WHERE signal_executions.status <> 'success'
RETURNING id;

-- name: exec_insert_transaction
INSERT INTO agent_transactions (
    agent_id, wallet_address, transaction_type, transaction_value_usd, transaction_time, signal_id, fees, routes,
    input_mint, input_symbol, input_amount, input_price, output_mint, output_symbol, output_amount, output_price,
    slippage, price_impact, is_dca, is_take_profit, transaction_hash, swap_payload, protocol_fee_sol,
    network_fee_sol, position_id, sol_usd_price)
VALUES ($1, $2, $3::"TransactionType", $4, clock_timestamp(), $5, $6, $7,
        $8, $9, $10, $11, $12, $13, $14, $15,
        $16, $17, $18, $19, $20, $21, $22,
        $23, $24, $25)
RETURNING id, transaction_time;

-- name: exec_upsert_balances
-- $1 agent_id, $2 wallet_address, $3 tokens, $4 symbols (used only for new rows), $5 balances (decimal text)
INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance, last_updated)
SELECT $1, $2, t.token, t.symbol, t.balance, clock_timestamp()
FROM unnest($3::varchar[], $4::varchar[], $5::text[]) AS t(token, symbol, balance)
ON CONFLICT (wallet_address, token_address)
DO UPDATE SET balance = EXCLUDED.balance, last_updated = EXCLUDED.last_updated;

-- name: exec_delete_balance
DELETE FROM agent_balances WHERE wallet_address = $1 AND token_address = $2;

-- name: exec_position_snapshot
-- $1 position_id, $2 SOL mint: the position with what a sale/TP/DCA/burn plans from (no locks).
SELECT p.*, a.user_id, a.trading_mode, a.trading_config, w.wallet_type,
       tb.balance AS token_balance, sb.balance AS sol_balance
FROM agent_positions p
JOIN agents a ON a.id = p.agent_id
LEFT JOIN agent_wallets w ON w.wallet_address = p.wallet_address
LEFT JOIN agent_balances tb ON tb.wallet_address = p.wallet_address AND tb.token_address = p.token_address
LEFT JOIN agent_balances sb ON sb.wallet_address = p.wallet_address AND sb.token_address = $2
WHERE p.id = $1;

-- name: exec_lock_position
SELECT * FROM agent_positions WHERE id = $1 FOR UPDATE;

-- name: exec_position_history_inputs
-- $1 purchase_transaction_id, $2 take-profit transaction ids: the signal a closing row inherits and the
-- SOL already received by the position's take-profit sales.
SELECT (SELECT signal_id FROM agent_transactions WHERE id = $1) AS signal_id,
       coalesce(array_agg(t.output_amount ORDER BY t.transaction_time), '{}') AS tp_output_amounts,
       coalesce(array_agg(t.network_fee_sol ORDER BY t.transaction_time), '{}') AS tp_network_fees
FROM agent_transactions t
WHERE t.id = ANY($2::uuid[]);

-- name: exec_delete_position
DELETE FROM agent_positions WHERE id = $1;

-- name: exec_insert_history
INSERT INTO agent_historical_swaps (
    agent_id, wallet_address, token_address, token_symbol, amount, purchase_price, sale_price, change_percent,
    profit_loss_usd, profit_loss_sol, purchase_time, sale_time, purchase_transaction_id, sale_transaction_id,
    signal_id, close_reason, position_id, sol_usd_price)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, clock_timestamp(), $12, $13, $14, $15, $16, $17)
RETURNING id;

-- name: exec_update_position_after_take_profit
UPDATE agent_positions
SET remaining_amount            = $2,
    take_profit_levels_hit      = $3,
    take_profit_transaction_ids = array_append(take_profit_transaction_ids, $4::uuid),
    last_take_profit_time       = clock_timestamp(),
    realized_profit_sol         = $5,
    moon_bag_activated          = $6,
    moon_bag_amount             = $7,
    updated_at                  = clock_timestamp()
WHERE id = $1
RETURNING *;

-- name: exec_update_position_after_dca
-- $9/$10 NULL leave the stop-loss fields as they are (stop loss disabled).
UPDATE agent_positions
SET purchase_price               = $2,
    purchase_amount              = $3,
    total_invested_sol           = $4,
    remaining_amount             = $5,
    dca_count                    = $6,
    dca_transaction_ids          = array_append(dca_transaction_ids, $7::uuid),
    last_dca_time                = clock_timestamp(),
    tp_batch_start_level         = $8,
    total_take_profit_levels     = $11,
    peak_price                   = coalesce($9, peak_price),
    current_stop_loss_percentage = coalesce($10, current_stop_loss_percentage),
    last_stop_loss_update        = CASE WHEN $10::numeric IS NULL THEN last_stop_loss_update
                                        ELSE clock_timestamp() END,
    updated_at                   = clock_timestamp()
WHERE id = $1
RETURNING *;
