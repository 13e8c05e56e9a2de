-- Balances and transactions of the resource API. Every money write runs in one DB transaction that holds
-- the agent row lock first, then the balance rows it touches in token-address order (the trade lock order).

-- name: api_lock_balances
-- $1 wallet, $2 mints. Locked in token-address order so two writers never deadlock.
SELECT id, token_address, token_symbol, balance
FROM agent_balances
WHERE wallet_address = $1 AND token_address = ANY ($2::text[])
ORDER BY token_address
FOR UPDATE;

-- name: api_upsert_balance
-- $1 agent, $2 wallet, $3 mint, $4 symbol (used only for a new row), $5 canonical balance text.
INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (wallet_address, token_address)
DO UPDATE SET balance = EXCLUDED.balance, last_updated = now()
RETURNING id;

-- name: api_list_balances
SELECT b.id, b.agent_id, b.wallet_address, b.token_address, b.token_symbol, b.balance, b.last_updated
FROM agent_balances b
WHERE b.agent_id = $1 AND ($2::text IS NULL OR b.wallet_address = $2)
ORDER BY b.last_updated DESC, b.id;

-- name: api_get_balance
SELECT b.id, b.agent_id, b.wallet_address, b.token_address, b.token_symbol, b.balance, b.last_updated
FROM agent_balances b
JOIN agents a ON a.id = b.agent_id
WHERE b.id = $1 AND a.user_id = $2;

-- name: api_get_balance_by_token
SELECT id, agent_id, wallet_address, token_address, token_symbol, balance, last_updated
FROM agent_balances
WHERE wallet_address = $1 AND token_address = $2;

-- name: api_insert_balance
INSERT INTO agent_balances (agent_id, wallet_address, token_address, token_symbol, balance)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (wallet_address, token_address) DO NOTHING
RETURNING id;

-- name: api_set_balance_symbol
UPDATE agent_balances SET token_symbol = $2, last_updated = now() WHERE id = $1;

-- name: api_delete_balance
DELETE FROM agent_balances WHERE id = $1;

-- name: api_position_holding
-- Tokens an open position of this wallet still holds in the mint (NULL when there is none).
SELECT coalesce(remaining_amount, purchase_amount) AS holding
FROM agent_positions
WHERE wallet_address = $1 AND token_address = $2;

-- name: api_insert_transaction
INSERT INTO agent_transactions (
    agent_id, wallet_address, transaction_type, transaction_value_usd, transaction_time, destination_address,
    signal_id, fees, routes, input_mint, input_symbol, input_amount, input_price, output_mint, output_symbol,
    output_amount, output_price, slippage, price_impact, is_dca, is_take_profit, transaction_hash,
    protocol_fee_sol, network_fee_sol, swap_payload)
VALUES ($1, $2, $3::"TransactionType", $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21, $22, $23, $24, $25)
RETURNING id, agent_id, wallet_address, transaction_type::text AS transaction_type, transaction_value_usd,
          transaction_time, destination_address, signal_id, fees, routes, input_mint, input_symbol, input_amount,
          input_price, output_mint, output_symbol, output_amount, output_price, slippage, price_impact, is_dca,
          is_take_profit, transaction_hash, protocol_fee_sol, network_fee_sol, created_at, updated_at;

-- name: api_update_transaction
UPDATE agent_transactions
SET transaction_type = $2::"TransactionType", transaction_value_usd = $3, transaction_time = $4,
    destination_address = $5, signal_id = $6, fees = $7, routes = $8, input_mint = $9, input_symbol = $10,
    input_amount = $11, input_price = $12, output_mint = $13, output_symbol = $14, output_amount = $15,
    output_price = $16, slippage = $17, price_impact = $18, is_dca = $19, is_take_profit = $20,
    transaction_hash = $21, protocol_fee_sol = $22, network_fee_sol = $23, updated_at = now()
WHERE id = $1
RETURNING id, agent_id, wallet_address, transaction_type::text AS transaction_type, transaction_value_usd,
          transaction_time, destination_address, signal_id, fees, routes, input_mint, input_symbol, input_amount,
          input_price, output_mint, output_symbol, output_amount, output_price, slippage, price_impact, is_dca,
          is_take_profit, transaction_hash, protocol_fee_sol, network_fee_sol, created_at, updated_at;

-- name: api_get_transaction
SELECT t.id, t.agent_id, t.wallet_address, t.transaction_type::text AS transaction_type, t.transaction_value_usd,
       t.transaction_time, t.destination_address, t.signal_id, t.fees, t.routes, t.input_mint, t.input_symbol,
       t.input_amount, t.input_price, t.output_mint, t.output_symbol, t.output_amount, t.output_price, t.slippage,
       t.price_impact, t.is_dca, t.is_take_profit, t.transaction_hash, t.protocol_fee_sol, t.network_fee_sol,
       t.created_at, t.updated_at
FROM agent_transactions t
JOIN agents a ON a.id = t.agent_id
WHERE t.id = $1 AND a.user_id = $2;

-- name: api_lock_transaction
SELECT id, agent_id, wallet_address, transaction_type::text AS transaction_type, transaction_value_usd,
       transaction_time, destination_address, signal_id, fees, routes, input_mint, input_symbol, input_amount,
       input_price, output_mint, output_symbol, output_amount, output_price, slippage, price_impact, is_dca,
       is_take_profit, transaction_hash, protocol_fee_sol, network_fee_sol, created_at, updated_at
FROM agent_transactions
WHERE id = $1 AND agent_id = $2
FOR UPDATE;

-- name: api_transaction_agent
-- The agent of a transaction when the user ($2) owns it: the first step before locking agent then row.
SELECT t.agent_id
FROM agent_transactions t
JOIN agents a ON a.id = t.agent_id
WHERE t.id = $1 AND a.user_id = $2;

-- name: api_transaction_references
-- $1 transaction, $2 agent. Rows the engine's state hangs on: editing their amounts or deleting them
-- would leave positions or closed-trade history describing trades that no longer match the ledger.
SELECT EXISTS (SELECT 1 FROM agent_positions p
               WHERE p.agent_id = $2
                 AND (p.purchase_transaction_id = $1 OR $1 = ANY (p.dca_transaction_ids)
                      OR $1 = ANY (p.take_profit_transaction_ids))) AS in_position,
       EXISTS (SELECT 1 FROM agent_historical_swaps s
               WHERE s.agent_id = $2 AND (s.purchase_transaction_id = $1 OR s.sale_transaction_id = $1))
           AS in_history;

-- name: api_delete_transaction
DELETE FROM agent_transactions WHERE id = $1;

-- name: api_list_transactions
-- Newest first. $2 wallet, $3 type, $4/$5 time bounds (inclusive), $6 signal, $7 is_dca, $8 is_take_profit:
-- NULL = no filter. Served by (agent_id, transaction_time).
SELECT id, agent_id, wallet_address, transaction_type::text AS transaction_type, transaction_value_usd,
       transaction_time, destination_address, signal_id, fees, routes, input_mint, input_symbol, input_amount,
       input_price, output_mint, output_symbol, output_amount, output_price, slippage, price_impact, is_dca,
       is_take_profit, transaction_hash, protocol_fee_sol, network_fee_sol, created_at, updated_at
FROM agent_transactions
WHERE agent_id = $1
  AND ($2::text IS NULL OR wallet_address = $2)
  AND ($3::text IS NULL OR transaction_type = $3::"TransactionType")
  AND ($4::timestamptz IS NULL OR transaction_time >= $4)
  AND ($5::timestamptz IS NULL OR transaction_time <= $5)
  AND ($6::integer IS NULL OR signal_id = $6)
  AND ($7::boolean IS NULL OR is_dca = $7)
  AND ($8::boolean IS NULL OR is_take_profit = $8)
ORDER BY transaction_time DESC, id DESC
LIMIT $9 OFFSET $10;

-- name: api_signal_owned
SELECT id FROM trading_signals WHERE id = $1 AND user_id = $2;
