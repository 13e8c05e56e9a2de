-- Live trading: the write-ahead swap log (live_swaps), kill switch, per-agent limits and reconciliation.
-- Status life cycle: pending → sent → confirmed → settled, or → failed / expired (terminal, no ledger row).
-- pending/sent/confirmed are "unresolved": at most one per wallet (partial unique index).

-- name: live_lock_halts
-- Read FOR SHARE inside the journaling transaction: a halt committed before it stops the order, and
-- a halt being written waits for in-flight journal writes (which are then already counted as sent).
SELECT scope, halted, reason
FROM live_trading_halts
WHERE scope = ANY ($1::text[])
FOR SHARE;

-- name: live_insert_swap
INSERT INTO live_swaps (
    agent_id, wallet_address, side, swap_api, input_mint, output_mint, in_amount, quoted_out_amount,
    min_out_amount, quote, intent, request_id, signature, signed_transaction, last_valid_block_height,
    lease_owner, lease_until)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, now() + make_interval(secs => $17))
RETURNING id;

-- name: live_mark_sent
UPDATE live_swaps
SET status = 'sent', sent_at = coalesce(sent_at, now()), updated_at = now()
WHERE id = $1 AND status = 'pending'
RETURNING id;

-- name: live_mark_confirmed
-- $1 id, $2 slot, $3 fee lamports, $4 actual in, $5 actual out, $6 SOL delta, $7 chain facts.
UPDATE live_swaps
SET status = 'confirmed', slot = $2, fee_lamports = $3, actual_in_amount = $4, actual_out_amount = $5,
    sol_delta_lamports = $6, chain = $7, sent_at = coalesce(sent_at, now()), error = NULL, updated_at = now()
WHERE id = $1 AND status IN ('pending', 'sent')
RETURNING id;

-- name: live_mark_resolved_without_trade
-- failed (landed with an error, or refused before reaching the network) or expired (never landed).
UPDATE live_swaps
SET status = $2, error = $3, slot = coalesce($4, slot), fee_lamports = coalesce($5, fee_lamports),
    chain = coalesce($6, chain), resolved_at = now(), lease_owner = NULL, lease_until = NULL, updated_at = now()
WHERE id = $1 AND status IN ('pending', 'sent')
RETURNING id, intent;

-- name: live_mark_settled
-- Runs inside the ledger transaction, after the ledger rows: 0 rows (someone settled it first) makes
-- the caller roll the whole ledger write back.
UPDATE live_swaps
SET status = 'settled', transaction_id = $2, resolved_at = now(), lease_owner = NULL, lease_until = NULL,
    error = NULL, updated_at = now()
WHERE id = $1 AND status = 'confirmed'
RETURNING id;

-- name: live_note_error
UPDATE live_swaps
SET error = $2, settle_attempts = settle_attempts + $3, updated_at = now()
WHERE id = $1;

-- name: live_extend_lease
UPDATE live_swaps
SET lease_owner = $2, lease_until = now() + make_interval(secs => $3), updated_at = now()
WHERE id = $1 AND status IN ('pending', 'sent', 'confirmed')
RETURNING id;

-- name: live_release_lease
UPDATE live_swaps SET lease_owner = NULL, lease_until = NULL, updated_at = now()
WHERE id = $1 AND lease_owner = $2;

-- name: live_claim_unresolved
-- Settlement: take one unresolved swap nobody is working on ($2 = wallet filter or NULL; $4 = ids this
-- pass already looked at) and lease it.
UPDATE live_swaps
SET lease_owner = $1, lease_until = now() + make_interval(secs => $3), updated_at = now()
WHERE id = (SELECT id FROM live_swaps
            WHERE status IN ('pending', 'sent', 'confirmed')
              AND ($2::text IS NULL OR wallet_address = $2)
              AND (lease_until IS NULL OR lease_until < now())
              AND NOT (id = ANY ($4::uuid[]))
            ORDER BY created_at
            LIMIT 1
            FOR UPDATE SKIP LOCKED)
RETURNING *;

-- name: live_get_swap
SELECT * FROM live_swaps WHERE id = $1;

-- name: live_get_swap_by_signature
SELECT * FROM live_swaps WHERE signature = $1;

-- name: live_transaction_for_signature
-- The ledger row just written for a swap (same transaction, so visible before commit).
SELECT id FROM agent_transactions
WHERE transaction_hash = $1 AND wallet_address = $2
ORDER BY created_at DESC
LIMIT 1;

-- name: live_unresolved_for_wallet
-- Swaps the wallet waits on before its next order: unresolved ones, and failures whose fee the ledger lacks.
SELECT id, status, signature, lease_owner, lease_until, created_at
FROM live_swaps
WHERE wallet_address = $1
  AND (status IN ('pending', 'sent', 'confirmed')
       OR (status = 'failed' AND fee_recorded_at IS NULL AND fee_lamports > 0));

-- name: live_failed_fees_unrecorded
-- $1 wallet (NULL = every wallet): landed failures whose fee is not in the ledger yet, oldest first.
SELECT id FROM live_swaps
WHERE status = 'failed' AND fee_recorded_at IS NULL AND fee_lamports > 0
  AND ($1::varchar IS NULL OR wallet_address = $1)
ORDER BY created_at
LIMIT 100;

-- name: live_mark_fee_recorded
-- Inside the ledger transaction that wrote the fee row: 0 rows (recorded meanwhile) rolls that write back.
UPDATE live_swaps
SET fee_recorded_at = now(), transaction_id = $2, updated_at = now()
WHERE id = $1 AND status = 'failed' AND fee_recorded_at IS NULL
RETURNING id;

-- name: live_count_unresolved
SELECT count(*) FROM live_swaps WHERE status IN ('pending', 'sent', 'confirmed');

-- name: live_list_swaps_for_wallet
-- Owner's view ($2 = user id), newest first.
SELECT s.id, s.agent_id, s.wallet_address, s.side, s.swap_api, s.input_mint, s.output_mint, s.in_amount,
       s.quoted_out_amount, s.min_out_amount, s.signature, s.last_valid_block_height, s.status, s.error, s.slot,
       s.fee_lamports, s.actual_in_amount, s.actual_out_amount, s.sol_delta_lamports, s.transaction_id,
       s.created_at, s.updated_at, s.sent_at, s.resolved_at
FROM live_swaps s
JOIN agents a ON a.id = s.agent_id
WHERE s.wallet_address = $1 AND a.user_id = $2
ORDER BY s.created_at DESC
LIMIT $3;

-- name: live_get_halts
SELECT scope, halted, reason, updated_by, updated_at FROM live_trading_halts WHERE scope = ANY ($1::text[]);

-- name: live_set_halt
INSERT INTO live_trading_halts (scope, halted, reason, updated_by, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (scope) DO UPDATE
SET halted = EXCLUDED.halted, reason = EXCLUDED.reason, updated_by = EXCLUDED.updated_by, updated_at = now()
RETURNING scope, halted, reason, updated_by, updated_at;

-- name: live_get_agent_limits
SELECT agent_id, daily_loss_limit_sol, max_open_positions, updated_at FROM live_agent_limits WHERE agent_id = $1;

-- name: live_upsert_agent_limits
INSERT INTO live_agent_limits (agent_id, daily_loss_limit_sol, max_open_positions, updated_at)
VALUES ($1, $2, $3, now())
ON CONFLICT (agent_id) DO UPDATE
SET daily_loss_limit_sol = EXCLUDED.daily_loss_limit_sol, max_open_positions = EXCLUDED.max_open_positions,
    updated_at = now()
RETURNING agent_id, daily_loss_limit_sol, max_open_positions, updated_at;

-- name: live_realized_pnl_today
-- Realized P/L of the agent's closed live trades since 00:00 UTC (the sessions run in UTC).
SELECT coalesce(sum(h.profit_loss_sol), 0)
FROM agent_historical_swaps h
JOIN agent_wallets w ON w.wallet_address = h.wallet_address
WHERE h.agent_id = $1 AND w.wallet_type = 'live' AND h.sale_time >= date_trunc('day', now());

-- name: live_open_positions_count
SELECT count(*)
FROM agent_positions p
JOIN agent_wallets w ON w.wallet_address = p.wallet_address
WHERE p.agent_id = $1 AND w.wallet_type = 'live';

-- name: live_agent_owner
SELECT a.user_id, a.trading_mode FROM agents a WHERE a.id = $1;

-- name: live_wallet_for_user
-- The live wallet row when the user owns its agent (404 otherwise).
SELECT w.wallet_address, w.agent_id, w.wallet_type
FROM agent_wallets w
JOIN agents a ON a.id = w.agent_id
WHERE w.wallet_address = $1 AND a.user_id = $2;

-- name: live_wallets
SELECT w.wallet_address, w.agent_id, a.user_id
FROM agent_wallets w
JOIN agents a ON a.id = w.agent_id
WHERE w.wallet_type = 'live'
ORDER BY w.wallet_address;

-- name: live_wallets_for_user
SELECT w.wallet_address, w.agent_id
FROM agent_wallets w
JOIN agents a ON a.id = w.agent_id
WHERE w.wallet_type = 'live' AND a.user_id = $1
ORDER BY w.wallet_address;

-- name: live_wallet_balances
SELECT token_address, token_symbol, balance FROM agent_balances WHERE wallet_address = $1 ORDER BY token_address;

-- name: live_wallet_ledger_mark
-- Changes whenever the wallet's ledger or swap log moves; equal before and after a chain read means
-- the comparison saw one consistent moment.
SELECT (SELECT count(*) FROM agent_transactions WHERE wallet_address = $1) AS transactions,
       (SELECT max(last_updated) FROM agent_balances WHERE wallet_address = $1) AS balances_updated,
       (SELECT count(*) FROM live_swaps WHERE wallet_address = $1 AND status IN ('pending', 'sent', 'confirmed'))
           AS unresolved,
       (SELECT max(updated_at) FROM live_swaps WHERE wallet_address = $1) AS swaps_updated;

-- name: live_get_reconciliation
SELECT wallet_address, agent_id, status, blocked, report, checked_at, acknowledged_at, acknowledged_by,
       acknowledged_drift
FROM live_wallet_reconciliations
WHERE wallet_address = $1;

-- name: live_upsert_reconciliation
INSERT INTO live_wallet_reconciliations (wallet_address, agent_id, status, blocked, report, checked_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (wallet_address) DO UPDATE
SET agent_id = EXCLUDED.agent_id, status = EXCLUDED.status, blocked = EXCLUDED.blocked, report = EXCLUDED.report,
    checked_at = now()
RETURNING wallet_address, agent_id, status, blocked, report, checked_at, acknowledged_at, acknowledged_by,
          acknowledged_drift;

-- name: live_acknowledge_drift
UPDATE live_wallet_reconciliations
SET status = CASE WHEN blocked OR status = 'drift' THEN 'acknowledged' ELSE status END, blocked = false,
    acknowledged_at = now(), acknowledged_by = $2, acknowledged_drift = report -> 'drift'
WHERE wallet_address = $1
RETURNING wallet_address, agent_id, status, blocked, report, checked_at, acknowledged_at, acknowledged_by,
          acknowledged_drift;

-- name: live_wallet_blocked
SELECT blocked FROM live_wallet_reconciliations WHERE wallet_address = $1;
