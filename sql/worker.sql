-- Signal intake, manual trade requests and the ledger audit (app/worker/intake.py, trade_requests.py,
-- app/api/trades.py, app/audit.py). See docs/worker.md.

-- ------------------------------------------------------------------------------------------------
-- Signal intake

-- name: worker_claim_signal
-- The oldest claimable signal, locked for this worker's transaction, with the fan-out's agents (the columns of
-- worker_signal_agents; one row per agent, or one row with a NULL agent id when the owner has none left): the
-- claim and the read the fan-out needs in one round trip. NO KEY UPDATE (not UPDATE) so the trades it causes
-- can still insert rows referencing it (their foreign keys take KEY SHARE) while the claim is held.
WITH claimed AS (
    SELECT id, token_address, symbol, signal_type, signal_strength, user_id, created_at, attempts, last_error
    FROM trading_signals
    WHERE processed_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= now())
    ORDER BY id
    LIMIT 1
    FOR NO KEY UPDATE SKIP LOCKED)
SELECT c.id AS signal_id, c.token_address AS signal_token_address, c.symbol AS signal_symbol,
       c.signal_type, c.signal_strength, c.user_id AS signal_user_id, c.created_at AS signal_created_at,
       c.attempts AS signal_attempts, c.last_error AS signal_last_error,
       ag.*
FROM claimed c
LEFT JOIN LATERAL (
    SELECT a.id, a.user_id, a.trading_mode, a.automated_trading_simulation, a.automated_trading_live,
           a.trading_config, a.xmin::text AS agent_version, w.wallet_address, w.wallet_type,
           sb.balance AS sol_balance, sb.token_symbol AS sol_symbol,
           EXISTS (SELECT 1 FROM agent_balances tb
                   WHERE tb.wallet_address = w.wallet_address AND tb.token_address = btrim(c.token_address))
               AS token_balance_exists,
           EXISTS (SELECT 1 FROM agent_positions p
                   WHERE p.agent_id = a.id AND p.wallet_address = w.wallet_address
                     AND p.token_address = btrim(c.token_address))
               AS position_exists,
           (SELECT count(*) FROM agent_positions p WHERE p.agent_id = a.id)::int AS open_positions
    FROM agents a
    LEFT JOIN agent_wallets w ON w.agent_id = a.id AND w.wallet_type = a.trading_mode
    LEFT JOIN agent_balances sb
           ON sb.wallet_address = w.wallet_address AND sb.token_address = 'So11111111111111111111111111111111111111112'
    WHERE a.user_id = c.user_id
      AND NOT EXISTS (SELECT 1 FROM signal_executions e WHERE e.signal_id = c.id AND e.agent_id = a.id)
) ag ON true
ORDER BY ag.id;

-- name: worker_count_claim
-- Run outside the claim's transaction (autocommit), so a worker that dies mid-signal still counts. Its commit
-- does not wait for the WAL flush (synchronous_commit off for this statement's own transaction): the count
-- is on every signal's latency path, a worker's death cannot lose it (the server holds it), and a server
-- crash within the WAL writer's delay loses at most this one increment, so a poison signal is written off
-- one attempt later. Trades keep synchronous commits.
INSERT INTO signal_claims (signal_id, attempts, worker_id, claimed_at)
SELECT $1, 1, $2, now() FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
ON CONFLICT (signal_id)
DO UPDATE SET attempts = signal_claims.attempts + 1, worker_id = EXCLUDED.worker_id, claimed_at = now()
RETURNING attempts;

-- name: worker_signal_agents
-- Agents of the signal's owner that have no execution row for it yet ($3 the signal's token, $4 SOL mint), each
-- with the unlocked snapshot its buy is planned on (the columns of exec_buy_snapshot for the wallet of its
-- trading mode): one query for the whole fan-out instead of one per agent. The buy re-checks it under its locks.
SELECT a.id, a.user_id, a.trading_mode, a.automated_trading_simulation, a.automated_trading_live, a.trading_config,
       a.xmin::text AS agent_version, w.wallet_address, w.wallet_type,
       sb.balance AS sol_balance, sb.token_symbol AS sol_symbol,
       EXISTS (SELECT 1 FROM agent_balances tb WHERE tb.wallet_address = w.wallet_address AND tb.token_address = $3)
           AS token_balance_exists,
       EXISTS (SELECT 1 FROM agent_positions p
               WHERE p.agent_id = a.id AND p.wallet_address = w.wallet_address AND p.token_address = $3)
           AS position_exists,
       (SELECT count(*) FROM agent_positions p WHERE p.agent_id = a.id)::int AS open_positions
FROM agents a
LEFT JOIN agent_wallets w ON w.agent_id = a.id AND w.wallet_type = a.trading_mode
LEFT JOIN agent_balances sb ON sb.wallet_address = w.wallet_address AND sb.token_address = $4
WHERE a.user_id = $2
  AND NOT EXISTS (SELECT 1 FROM signal_executions e WHERE e.signal_id = $1 AND e.agent_id = a.id)
ORDER BY a.id;

-- name: worker_insert_executions
-- $1 signal_id, $2 agent ids, $3 statuses, $4 errors. Agents deleted meanwhile are left out.
INSERT INTO signal_executions (signal_id, agent_id, status, error, executed_at)
SELECT $1, t.agent_id, t.status, t.error, clock_timestamp()
FROM unnest($2::uuid[], $3::varchar[], $4::text[]) AS t(agent_id, status, error)
JOIN agents a ON a.id = t.agent_id
ON CONFLICT (signal_id, agent_id) DO NOTHING;

-- name: worker_finish_signal
-- Marks the signal processed only if every agent of its owner has its row; returns nothing otherwise.
UPDATE trading_signals
SET processed_at = clock_timestamp(), attempts = $3, last_error = NULL, next_attempt_at = NULL
WHERE id = $1
  AND ($2::uuid IS NULL OR NOT EXISTS (
        SELECT 1 FROM agents a
        WHERE a.user_id = $2
          AND NOT EXISTS (SELECT 1 FROM signal_executions e WHERE e.signal_id = $1 AND e.agent_id = a.id)))
RETURNING processed_at;

-- name: worker_fail_signal
-- $1 signal_id, $2 attempts, $3 error, $4 seconds until the next attempt.
UPDATE trading_signals
SET attempts = $2, last_error = $3, next_attempt_at = now() + make_interval(secs => $4)
WHERE id = $1;

-- name: worker_signal_lag
SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
FROM trading_signals
WHERE processed_at IS NULL;

-- ------------------------------------------------------------------------------------------------
-- Manual trade requests

-- name: trade_request_insert
-- $1 user, $2 agent, $3 kind, $4 params, $5 idempotency key (NULL = none), $6 request hash.
-- Returns nothing when the idempotency key was already used by this user.
INSERT INTO trade_requests (user_id, agent_id, kind, params, idempotency_key, request_hash)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (user_id, idempotency_key) DO NOTHING
RETURNING id;

-- name: trade_request_by_key
SELECT id, request_hash FROM trade_requests WHERE user_id = $1 AND idempotency_key = $2;

-- name: trade_request_status
-- result::text keeps the stored numbers' exact digits (jsonb stores them as numeric).
SELECT id, kind, status, result::text AS result_json, error_code, error_message
FROM trade_requests
WHERE id = $1 AND user_id = $2;

-- name: trade_request_answer_settled
-- In settlement's ledger transaction: the live swap of a manual trade (answered SWAP_UNCONFIRMED, or left
-- pending by a worker that died) was recorded, so the request's answer is that trade's. $1 request id, $2 body.
WITH outcome AS (
    INSERT INTO trade_request_outcomes (request_id, result)
    SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM trade_requests WHERE id = $1)
    ON CONFLICT (request_id) DO NOTHING)
UPDATE trade_requests
SET status = 'succeeded', result = $2, error_code = NULL, error_message = NULL, finished_at = clock_timestamp()
WHERE id = $1;

-- name: trade_request_answer_without_trade
-- The live swap a request answered SWAP_UNCONFIRMED was waiting on resolved without a trade: $2 code, $3 message.
UPDATE trade_requests
SET error_code = $2, error_message = $3, finished_at = clock_timestamp()
WHERE id = $1 AND status = 'failed' AND error_code = 'SWAP_UNCONFIRMED';

-- name: trade_request_claim
SELECT id, user_id, agent_id, kind, params, created_at,
       (created_at < now() - make_interval(secs => $1)) AS expired
FROM trade_requests
WHERE status = 'pending'
ORDER BY created_at
LIMIT 1
FOR NO KEY UPDATE SKIP LOCKED;

-- name: trade_request_has_outcome
SELECT EXISTS (SELECT 1 FROM trade_request_outcomes WHERE request_id = $1);

-- name: trade_request_finish_from_outcome
-- The answer is the outcome the trade's transaction recorded (copied in SQL: numbers keep every digit).
UPDATE trade_requests r
SET status = 'succeeded', result = o.result, error_code = NULL, error_message = NULL, attempts = r.attempts + 1,
    finished_at = clock_timestamp()
FROM trade_request_outcomes o
WHERE r.id = $1 AND o.request_id = r.id;

-- name: trade_request_record_outcome
-- Inside the trade's ledger transaction: the request has been executed.
INSERT INTO trade_request_outcomes (request_id, result) VALUES ($1, $2);

-- name: trade_request_finish
-- $1 id, $2 status, $3 result, $4 error code, $5 error message
UPDATE trade_requests
SET status = $2, result = $3, error_code = $4, error_message = $5, attempts = attempts + 1,
    finished_at = clock_timestamp()
WHERE id = $1;

-- name: trade_request_agent_owned
SELECT EXISTS (SELECT 1 FROM agents WHERE id = $1 AND user_id = $2);

-- name: trade_request_position_of_agent
SELECT EXISTS (SELECT 1 FROM agent_positions WHERE id = $1 AND agent_id = $2);

-- name: trade_request_signal_owned
SELECT EXISTS (SELECT 1 FROM trading_signals WHERE id = $1 AND user_id = $2);

-- ------------------------------------------------------------------------------------------------
-- Ledger audit

-- name: audit_transactions
SELECT wallet_address, transaction_type::text AS transaction_type, input_mint, input_amount, output_mint,
       output_amount, network_fee_sol, fees
FROM agent_transactions
WHERE wallet_address IS NOT NULL
ORDER BY wallet_address, transaction_time, id;

-- name: audit_balances
SELECT agent_id, wallet_address, token_address, balance FROM agent_balances ORDER BY wallet_address, token_address;

-- name: audit_missing_executions
-- Agents that existed before a processed signal was (last) claimed but have no execution row for it.
SELECT s.id AS signal_id, a.id AS agent_id
FROM trading_signals s
JOIN agents a ON a.user_id = s.user_id
LEFT JOIN signal_claims c ON c.signal_id = s.id
WHERE s.processed_at IS NOT NULL
  AND a.created_at < coalesce(c.claimed_at, s.processed_at)
  AND NOT EXISTS (SELECT 1 FROM signal_executions e WHERE e.signal_id = s.id AND e.agent_id = a.id)
ORDER BY s.id, a.id;

-- name: audit_foreign_executions
-- Execution rows for an agent that does not belong to the signal's owner.
SELECT e.signal_id, e.agent_id
FROM signal_executions e
JOIN trading_signals s ON s.id = e.signal_id
JOIN agents a ON a.id = e.agent_id
WHERE s.user_id IS DISTINCT FROM a.user_id;

-- name: audit_success_without_trade
-- A success row must point at the buy it caused (same agent, same signal).
SELECT e.signal_id, e.agent_id, e.transaction_id
FROM signal_executions e
LEFT JOIN agent_transactions t ON t.id = e.transaction_id
WHERE e.status = 'success'
  AND (t.id IS NULL OR t.agent_id <> e.agent_id OR t.signal_id IS DISTINCT FROM e.signal_id);

-- name: audit_positions
SELECT p.id, p.agent_id, p.wallet_address, p.token_address, p.purchase_transaction_id,
       coalesce(p.remaining_amount, p.purchase_amount) AS holding,
       b.balance AS token_balance,
       (t.id IS NOT NULL) AS has_purchase_transaction
FROM agent_positions p
LEFT JOIN agent_balances b ON b.wallet_address = p.wallet_address AND b.token_address = p.token_address
LEFT JOIN agent_transactions t ON t.id = p.purchase_transaction_id
ORDER BY p.id;

-- name: audit_closed_trades
-- Every history row written by the trade path (it carries position_id) with the ledger rows of its position.
SELECT h.id, h.position_id, h.profit_loss_sol,
       coalesce(array_agg(t.transaction_type::text) FILTER (WHERE t.id IS NOT NULL), '{}') AS types,
       coalesce(array_agg(t.input_mint) FILTER (WHERE t.id IS NOT NULL), '{}') AS input_mints,
       coalesce(array_agg(t.input_amount) FILTER (WHERE t.id IS NOT NULL), '{}') AS input_amounts,
       coalesce(array_agg(t.output_mint) FILTER (WHERE t.id IS NOT NULL), '{}') AS output_mints,
       coalesce(array_agg(t.output_amount) FILTER (WHERE t.id IS NOT NULL), '{}') AS output_amounts,
       coalesce(array_agg(t.network_fee_sol) FILTER (WHERE t.id IS NOT NULL), '{}') AS network_fees
FROM agent_historical_swaps h
LEFT JOIN agent_transactions t ON t.position_id = h.position_id
WHERE h.position_id IS NOT NULL
GROUP BY h.id
ORDER BY h.id;

-- name: audit_unrecorded_live_fees
-- Live transactions that landed with an error and paid a fee the ledger does not have yet.
SELECT id, wallet_address, fee_lamports, resolved_at
FROM live_swaps
WHERE status = 'failed' AND fee_lamports > 0 AND fee_recorded_at IS NULL
ORDER BY created_at;
