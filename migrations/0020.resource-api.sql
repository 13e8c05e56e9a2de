-- depends: 0002.engine-extensions
-- Tables behind the resource API: race-free signal de-duplication and client idempotency keys.

-- The reference's 60 s duplicate window (same user, token, type, strength) lived in Redis. Here one row
-- per key: INSERT .. ON CONFLICT DO UPDATE .. WHERE window expired serialises concurrent posts on the
-- unique index, so exactly one of two simultaneous identical signals gets the slot.
CREATE TABLE signal_dedupe (
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_address   varchar(255) NOT NULL,
    signal_type     varchar(50) NOT NULL,
    signal_strength integer     NOT NULL,
    signal_id       integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, token_address, signal_type, signal_strength)
);
CREATE INDEX signal_dedupe_created_at_idx ON signal_dedupe (created_at);

-- Client-supplied Idempotency-Key: the first successful response is stored with a hash of the request,
-- and a retry with the same key replays it. Written in the same transaction as the resource itself.
CREATE TABLE idempotency_keys (
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope           text        NOT NULL,
    idempotency_key varchar(255) NOT NULL,
    request_hash    text        NOT NULL,
    status_code     integer     NOT NULL,
    response_body   bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, scope, idempotency_key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- Keyset order of the CSV exports and the signal list per user.
CREATE INDEX trading_signals_user_id_id_idx ON trading_signals (user_id, id);
CREATE INDEX agent_transactions_wallet_address_transaction_time_idx
    ON agent_transactions (wallet_address, transaction_time);
-- The signal list pages newest first with the id as tie-breaker: (user_id, created_at, id) serves it
-- from the index (scanned backwards) without sorting the user's whole history.
CREATE INDEX trading_signals_user_id_created_at_id_idx ON trading_signals (user_id, created_at, id);
