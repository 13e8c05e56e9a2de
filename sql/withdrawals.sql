-- Withdrawals (app/withdrawals.py, docs/withdrawals.md). Every ledger write takes the trade lock order in one
-- transaction: agent row FOR UPDATE → balance rows FOR UPDATE (token_address order) → position row FOR UPDATE.

-- name: wd_owned_wallet
-- The wallet when the user ($2) owns its agent; NULL otherwise (a foreign wallet is a 404, never a 403).
SELECT w.wallet_address, w.agent_id, w.wallet_type, a.user_id
FROM agent_wallets w
JOIN agents a ON a.id = w.agent_id
WHERE w.wallet_address = $1 AND a.user_id = $2;

-- name: wd_lock_agent
SELECT id, user_id FROM agents WHERE id = $1 FOR UPDATE;

-- name: wd_lock_balances
-- $1 wallet, $2 mints, locked in token_address order.
SELECT token_address, token_symbol, balance
FROM agent_balances
WHERE wallet_address = $1 AND token_address = ANY ($2::varchar[])
ORDER BY token_address
FOR UPDATE;

-- name: wd_read_balances
-- Planning read (no locks): $1 wallet, $2 mints.
SELECT token_address, token_symbol, balance
FROM agent_balances
WHERE wallet_address = $1 AND token_address = ANY ($2::varchar[]);

-- name: wd_upsert_balances
-- $1 agent, $2 wallet, $3 mints, $4 symbols (new rows only), $5 canonical balance texts.
INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance, last_updated)
SELECT $1, $2, t.mint, t.symbol, t.balance, clock_timestamp()
FROM unnest($3::varchar[], $4::varchar[], $5::text[]) AS t(mint, symbol, balance)
ON CONFLICT (wallet_address, token_address)
DO UPDATE SET balance = EXCLUDED.balance, last_updated = EXCLUDED.last_updated;

-- name: wd_delete_balance
DELETE FROM agent_balances WHERE wallet_address = $1 AND token_address = $2;

-- name: wd_lock_position
SELECT * FROM agent_positions WHERE agent_id = $1 AND wallet_address = $2 AND token_address = $3 FOR UPDATE;

-- name: wd_position_close_inputs
-- $1 purchase transaction, $2 take-profit transaction ids: the signal a history row inherits and the SOL the
-- take-profit sales credited (their ledger SOL deltas: output minus network fee).
SELECT (SELECT signal_id FROM agent_transactions WHERE id = $1) AS signal_id,
       coalesce(array_agg(t.output_amount), '{}') AS tp_output_amounts,
       coalesce(array_agg(t.network_fee_sol), '{}') AS tp_network_fees
FROM agent_transactions t
WHERE t.id = ANY ($2::uuid[]);

-- name: wd_reduce_position
UPDATE agent_positions
SET purchase_amount    = $2,
    remaining_amount   = $3,
    total_invested_sol = $4,
    moon_bag_amount    = $5,
    updated_at         = clock_timestamp()
WHERE id = $1
RETURNING *;

-- name: wd_delete_position
DELETE FROM agent_positions WHERE id = $1;

-- name: wd_insert_history
-- A position closed by withdrawing its last tokens after take-profit sales: the P/L those sales realised.
INSERT INTO agent_historical_swaps (
    agent_id, wallet_address, token_address, token_symbol, amount, purchase_price, sale_price, change_percent,
    profit_loss_usd, profit_loss_sol, purchase_time, sale_time, purchase_transaction_id, sale_transaction_id,
    signal_id, close_reason, position_id, sol_usd_price)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, clock_timestamp(), $12, $13, $14, 'withdrawal', $15, $16)
RETURNING id;

-- name: wd_insert_transaction
-- The WITHDRAWAL ledger row: −input_amount of input_mint and −fees of SOL (app.trading.ledger).
INSERT INTO agent_transactions (
    agent_id, wallet_address, transaction_type, transaction_value_usd, transaction_time, destination_address, fees,
    input_mint, input_symbol, input_amount, input_price, transaction_hash, network_fee_sol, position_id,
    sol_usd_price, is_dca, is_take_profit)
VALUES ($1, $2, 'WITHDRAWAL', $3, clock_timestamp(), $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, false, false)
RETURNING id;

-- name: wd_find_by_key
SELECT id, request_hash FROM withdrawals WHERE user_id = $1 AND idempotency_key = $2;

-- name: wd_insert
INSERT INTO withdrawals (
    id, user_id, agent_id, wallet_address, wallet_type, idempotency_key, request_hash, token_address, token_symbol,
    amount, destination_address, live_swap_id, transaction_id, position_id, position_action, cost_basis_sol)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16);

-- name: wd_withdrawal_of_swap
SELECT id, user_id, agent_id, wallet_address, token_address, token_symbol, amount, destination_address,
       transaction_id
FROM withdrawals
WHERE live_swap_id = $1;

-- name: wd_set_recorded
UPDATE withdrawals
SET transaction_id = $2, position_id = $3, position_action = $4, cost_basis_sol = $5, updated_at = now()
WHERE id = $1;

-- name: wd_view
-- A withdrawal as the API shows it: the request, its live journal row (if any) and its ledger row (if any).
SELECT w.id, w.user_id, w.agent_id, w.wallet_address, w.wallet_type, w.token_address, w.token_symbol, w.amount,
       w.destination_address, w.position_id, w.position_action, w.cost_basis_sol, w.created_at, w.updated_at,
       s.status AS live_status, s.signature AS live_signature, s.error AS live_error,
       t.id AS tx_id, t.agent_id AS tx_agent_id, t.wallet_address AS tx_wallet_address,
       t.transaction_type::text AS tx_transaction_type, t.transaction_value_usd AS tx_transaction_value_usd,
       t.transaction_time AS tx_transaction_time, t.destination_address AS tx_destination_address,
       t.signal_id AS tx_signal_id, t.fees AS tx_fees, t.routes AS tx_routes, t.input_mint AS tx_input_mint,
       t.input_symbol AS tx_input_symbol, t.input_amount AS tx_input_amount, t.input_price AS tx_input_price,
       t.output_mint AS tx_output_mint, t.output_symbol AS tx_output_symbol, t.output_amount AS tx_output_amount,
       t.output_price AS tx_output_price, t.slippage AS tx_slippage, t.price_impact AS tx_price_impact,
       t.is_dca AS tx_is_dca, t.is_take_profit AS tx_is_take_profit, t.transaction_hash AS tx_transaction_hash,
       t.protocol_fee_sol AS tx_protocol_fee_sol, t.network_fee_sol AS tx_network_fee_sol,
       t.created_at AS tx_created_at, t.updated_at AS tx_updated_at
FROM withdrawals w
LEFT JOIN live_swaps s ON s.id = w.live_swap_id
LEFT JOIN agent_transactions t ON t.id = w.transaction_id
WHERE w.id = $1;

-- name: wd_withdrawn_cost_basis
-- Cost basis that left each position with withdrawn tokens (only withdrawals whose ledger row still exists).
SELECT w.position_id, sum(w.cost_basis_sol) AS cost_basis_sol
FROM withdrawals w
JOIN agent_transactions t ON t.id = w.transaction_id
WHERE w.position_id IS NOT NULL AND w.cost_basis_sol IS NOT NULL
GROUP BY w.position_id;
