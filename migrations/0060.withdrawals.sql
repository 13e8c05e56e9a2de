-- depends: 0031.ledger-links 0050.live-trading
-- Withdrawals (docs/withdrawals.md): one row per accepted withdrawal request, and live withdrawals in the
-- live write-ahead log.

-- A withdrawal request: its Idempotency-Key (never reused: this is money leaving), what was asked, and
-- what it became. A simulation withdrawal is complete when its row exists (transaction_id set in the same
-- DB transaction); a live one points at its live_swaps journal row, whose status is the withdrawal's status
-- until settlement writes the ledger row and sets transaction_id here.
-- cost_basis_sol: SOL of cost basis that left an open position with the withdrawn tokens (their share of
-- total_invested_sol). A later close of that position reports P/L net of it, and the audit adds it back
-- when it recomputes the position's P/L from ledger cash flows.
CREATE TABLE withdrawals (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid         NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id            uuid         NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    wallet_address      varchar(44)  NOT NULL,
    wallet_type         text         NOT NULL CHECK (wallet_type IN ('simulation', 'live')),
    idempotency_key     varchar(255),
    request_hash        text         NOT NULL,
    token_address       varchar(255) NOT NULL,
    token_symbol        varchar(20)  NOT NULL,
    amount              numeric(30, 18) NOT NULL CHECK (amount > 0),
    destination_address varchar(44)  NOT NULL,
    live_swap_id        uuid UNIQUE REFERENCES live_swaps (id),
    transaction_id      uuid UNIQUE REFERENCES agent_transactions (id) ON DELETE SET NULL,
    position_id         uuid,
    position_action     text CHECK (position_action IN ('reduced', 'closed')),
    cost_basis_sol      numeric(20, 8),
    created_at          timestamptz  NOT NULL DEFAULT now(),
    updated_at          timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT withdrawals_user_idempotency_key UNIQUE (user_id, idempotency_key),
    CONSTRAINT withdrawals_live_has_journal CHECK ((wallet_type = 'live') = (live_swap_id IS NOT NULL))
);
CREATE INDEX withdrawals_agent_id_created_at_idx ON withdrawals (agent_id, created_at);
CREATE INDEX withdrawals_position_id_idx ON withdrawals (position_id) WHERE position_id IS NOT NULL;

-- Live withdrawals share the swap journal, its one-unresolved-per-wallet index and its settlement loop:
-- a withdrawal and a swap of the same wallet can never be in flight together.
ALTER TABLE live_swaps DROP CONSTRAINT live_swaps_side_check;
ALTER TABLE live_swaps ADD CONSTRAINT live_swaps_side_check CHECK (side IN ('buy', 'sell', 'withdrawal'));
ALTER TABLE live_swaps DROP CONSTRAINT live_swaps_swap_api_check;
ALTER TABLE live_swaps ADD CONSTRAINT live_swaps_swap_api_check
    CHECK (swap_api IN ('metis', 'ultra', 'transfer'));
