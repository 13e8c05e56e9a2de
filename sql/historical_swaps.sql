-- Closed trades (agent_historical_swaps) for the resource API.

-- name: api_list_swaps
-- Newest sale first. NULL parameters = no filter. Served by (agent_id, sale_time).
SELECT id, agent_id, wallet_address, token_address, token_symbol, amount, purchase_price, sale_price,
       change_percent, profit_loss_usd, profit_loss_sol, purchase_time, sale_time, purchase_transaction_id,
       sale_transaction_id, signal_id, close_reason, created_at
FROM agent_historical_swaps
WHERE agent_id = $1
  AND ($2::text IS NULL OR wallet_address = $2)
  AND ($3::text IS NULL OR token_address = $3)
  AND ($4::text IS NULL OR token_symbol = $4)
  AND ($5::timestamptz IS NULL OR purchase_time >= $5)
  AND ($6::timestamptz IS NULL OR purchase_time <= $6)
  AND ($7::timestamptz IS NULL OR sale_time >= $7)
  AND ($8::timestamptz IS NULL OR sale_time <= $8)
  AND ($9::integer IS NULL OR signal_id = $9)
  AND ($10::uuid IS NULL OR purchase_transaction_id = $10)
  AND ($11::uuid IS NULL OR sale_transaction_id = $11)
  AND ($12::numeric IS NULL OR profit_loss_usd >= $12)
  AND ($13::numeric IS NULL OR profit_loss_usd <= $13)
ORDER BY sale_time DESC, id DESC
LIMIT $14 OFFSET $15;

-- name: api_export_swaps
-- Keyset batch for the CSV export, oldest sale first; ($14, $15) = last (sale_time, id) sent.
SELECT s.id, s.token_address, s.token_symbol, s.amount, s.purchase_price, s.sale_price, s.change_percent,
       s.profit_loss_usd, s.profit_loss_sol, s.sale_time, s.signal_id,
       g.signal_type, g.activation_reason
FROM agent_historical_swaps s
LEFT JOIN trading_signals g ON g.id = s.signal_id
WHERE s.agent_id = $1
  AND ($2::text IS NULL OR s.wallet_address = $2)
  AND ($3::text IS NULL OR s.token_address = $3)
  AND ($4::text IS NULL OR s.token_symbol = $4)
  AND ($5::timestamptz IS NULL OR s.purchase_time >= $5)
  AND ($6::timestamptz IS NULL OR s.purchase_time <= $6)
  AND ($7::timestamptz IS NULL OR s.sale_time >= $7)
  AND ($8::timestamptz IS NULL OR s.sale_time <= $8)
  AND ($9::integer IS NULL OR s.signal_id = $9)
  AND ($10::uuid IS NULL OR s.purchase_transaction_id = $10)
  AND ($11::uuid IS NULL OR s.sale_transaction_id = $11)
  AND ($12::numeric IS NULL OR s.profit_loss_usd >= $12)
  AND ($13::numeric IS NULL OR s.profit_loss_usd <= $13)
  AND ($14::timestamptz IS NULL OR (s.sale_time, s.id) > ($14, $15::uuid))
ORDER BY s.sale_time, s.id
LIMIT $16;

-- name: api_get_swap
SELECT s.id, s.agent_id, s.wallet_address, s.token_address, s.token_symbol, s.amount, s.purchase_price,
       s.sale_price, s.change_percent, s.profit_loss_usd, s.profit_loss_sol, s.purchase_time, s.sale_time,
       s.purchase_transaction_id, s.sale_transaction_id, s.signal_id, s.close_reason, s.created_at
FROM agent_historical_swaps s
JOIN agents a ON a.id = s.agent_id
WHERE s.id = $1 AND a.user_id = $2;

-- name: api_insert_swap
INSERT INTO agent_historical_swaps (
    agent_id, wallet_address, token_address, token_symbol, amount, purchase_price, sale_price, change_percent,
    profit_loss_usd, profit_loss_sol, purchase_time, sale_time, purchase_transaction_id, sale_transaction_id,
    signal_id, close_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
RETURNING id, agent_id, wallet_address, token_address, token_symbol, amount, purchase_price, sale_price,
          change_percent, profit_loss_usd, profit_loss_sol, purchase_time, sale_time, purchase_transaction_id,
          sale_transaction_id, signal_id, close_reason, created_at;

-- name: api_update_swap
UPDATE agent_historical_swaps
SET token_address = $2, token_symbol = $3, amount = $4, purchase_price = $5, sale_price = $6,
    change_percent = $7, profit_loss_usd = $8, profit_loss_sol = $9, purchase_time = $10, sale_time = $11,
    purchase_transaction_id = $12, sale_transaction_id = $13, signal_id = $14, close_reason = $15
WHERE id = $1
RETURNING id, agent_id, wallet_address, token_address, token_symbol, amount, purchase_price, sale_price,
          change_percent, profit_loss_usd, profit_loss_sol, purchase_time, sale_time, purchase_transaction_id,
          sale_transaction_id, signal_id, close_reason, created_at;

-- name: api_delete_swap
DELETE FROM agent_historical_swaps WHERE id = $1;
