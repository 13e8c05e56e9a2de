-- Trading signals of the resource API. Signals are private to the user who posted them (user_id).

-- name: api_claim_signal_slot
-- The 60 s duplicate window (same user, token, type, strength). Returns a row when this request owns the
-- slot; none when an identical signal was accepted less than 60 s ago. Concurrent identical posts queue
-- on the primary key, and the loser re-checks the winner's committed row, so only one gets through.
INSERT INTO signal_dedupe AS d (user_id, token_address, signal_type, signal_strength, created_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (user_id, token_address, signal_type, signal_strength)
DO UPDATE SET created_at = now(), signal_id = NULL
WHERE d.created_at <= now() - interval '60 seconds'
RETURNING created_at;

-- name: api_set_signal_slot_id
UPDATE signal_dedupe SET signal_id = $5
WHERE user_id = $1 AND token_address = $2 AND signal_type = $3 AND signal_strength = $4;

-- name: api_prune_signal_slots
-- A few expired windows per call keep the table small without a separate job.
DELETE FROM signal_dedupe
WHERE ctid IN (SELECT ctid FROM signal_dedupe WHERE created_at < now() - interval '1 hour' LIMIT 20);

-- name: api_insert_signal
INSERT INTO trading_signals (token_address, symbol, signal_type, activation_reason, signal_strength, source, user_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, created_at, updated_at, token_address, symbol, signal_type, activation_reason, signal_strength, source;

-- name: api_list_signals
-- Newest first; NULL filters are ignored. Served by (user_id, created_at).
SELECT id, created_at, updated_at, token_address, symbol, signal_type, activation_reason, signal_strength, source
FROM trading_signals
WHERE user_id = $1
  AND ($2::text IS NULL OR token_address = $2)
  AND ($3::text IS NULL OR signal_type = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at <= $5)
ORDER BY created_at DESC, id DESC
LIMIT $6 OFFSET $7;

-- name: api_export_signals
-- Keyset batch for the CSV export in id order; $6 = last id sent (0 at the start).
SELECT id, created_at, updated_at, token_address, symbol, signal_type, activation_reason, signal_strength, source
FROM trading_signals
WHERE user_id = $1
  AND ($2::text IS NULL OR token_address = $2)
  AND ($3::text IS NULL OR signal_type = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at <= $5)
  AND id > $6
ORDER BY id
LIMIT $7;

-- name: api_get_signal
SELECT id, created_at, updated_at, token_address, symbol, signal_type, activation_reason, signal_strength, source
FROM trading_signals
WHERE id = $1 AND user_id = $2;

-- name: api_update_signal
UPDATE trading_signals
SET token_address = $3, symbol = $4, signal_type = $5, activation_reason = $6, signal_strength = $7, source = $8,
    updated_at = now()
WHERE id = $1 AND user_id = $2
RETURNING id, created_at, updated_at, token_address, symbol, signal_type, activation_reason, signal_strength, source;

-- name: api_delete_signal
DELETE FROM trading_signals WHERE id = $1 AND user_id = $2;

-- name: api_delete_all_signals
DELETE FROM trading_signals WHERE user_id = $1;

-- name: api_get_idempotent_response
SELECT request_hash, status_code, response_body
FROM idempotency_keys
WHERE user_id = $1 AND scope = $2 AND idempotency_key = $3 AND created_at > now() - interval '24 hours';

-- name: api_claim_idempotency_key
-- Inserted with the resource in one transaction: a concurrent request with the same key waits here on
-- the primary key and then finds the stored response. An expired key (> 24 h) is taken over.
INSERT INTO idempotency_keys AS k (user_id, scope, idempotency_key, request_hash, status_code, response_body)
VALUES ($1, $2, $3, $4, 0, '')
ON CONFLICT (user_id, scope, idempotency_key)
DO UPDATE SET request_hash = EXCLUDED.request_hash, status_code = 0, response_body = '', created_at = now()
WHERE k.created_at <= now() - interval '24 hours'
RETURNING 1;

-- name: api_store_idempotent_response
UPDATE idempotency_keys SET status_code = $4, response_body = $5
WHERE user_id = $1 AND scope = $2 AND idempotency_key = $3;

-- name: api_prune_idempotency_keys
DELETE FROM idempotency_keys
WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE created_at < now() - interval '24 hours' LIMIT 20);
