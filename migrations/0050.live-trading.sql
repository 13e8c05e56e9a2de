-- depends: 0002.engine-extensions
-- Live trading (docs/live-trading.md): the write-ahead swap log, balance reconciliation, kill switch
-- and per-agent limits.

-- One row per live swap, written BEFORE the signed transaction is sent. The signature is the first
-- signature of the signed transaction, so it is known before sending and is the key to look the
-- swap up on chain after a crash. The signed bytes are public once sent and safe to rebroadcast
-- (same signature = same transaction) until last_valid_block_height passes.
-- No foreign keys on agent/wallet: this is the audit trail of real money and must outlive a wallet
-- reset; the trigger below refuses to drop a wallet while one of its swaps is unresolved.
CREATE TABLE live_swaps (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id                uuid         NOT NULL,
    wallet_address          varchar(44)  NOT NULL,
    side                    text         NOT NULL CHECK (side IN ('buy', 'sell')),
    swap_api                text         NOT NULL CHECK (swap_api IN ('metis', 'ultra')),
    input_mint              varchar(255) NOT NULL,
    output_mint             varchar(255) NOT NULL,
    in_amount               numeric(39, 0) NOT NULL CHECK (in_amount > 0),
    quoted_out_amount       numeric(39, 0) NOT NULL,
    min_out_amount          numeric(39, 0),
    quote                   jsonb        NOT NULL,
    intent                  jsonb        NOT NULL DEFAULT '{}'::jsonb,
    request_id              text,
    signature               varchar(88)  NOT NULL UNIQUE,
    signed_transaction      text         NOT NULL,
    last_valid_block_height bigint       NOT NULL,
    status                  text         NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'confirmed', 'failed', 'expired', 'settled')),
    error                   text,
    slot                    bigint,
    fee_lamports            bigint,
    actual_in_amount        numeric(39, 0),
    actual_out_amount       numeric(39, 0),
    sol_delta_lamports      numeric(39, 0),
    chain                   jsonb,
    -- The ledger row that recorded the swap; NULL again if a wallet reset deletes the ledger (the
    -- signature and chain facts stay here).
    transaction_id          uuid REFERENCES agent_transactions (id) ON DELETE SET NULL,
    lease_owner             text,
    lease_until             timestamptz,
    settle_attempts         integer      NOT NULL DEFAULT 0,
    created_at              timestamptz  NOT NULL DEFAULT now(),
    updated_at              timestamptz  NOT NULL DEFAULT now(),
    sent_at                 timestamptz,
    resolved_at             timestamptz
);
-- At most one unresolved swap per wallet: a new order must wait until the previous one is settled
-- from chain, across every process (the unique index is the last guard, not the application check).
CREATE UNIQUE INDEX live_swaps_one_unresolved_per_wallet
    ON live_swaps (wallet_address) WHERE status IN ('pending', 'sent', 'confirmed');
CREATE INDEX live_swaps_unresolved_idx ON live_swaps (created_at) WHERE status IN ('pending', 'sent', 'confirmed');
CREATE INDEX live_swaps_agent_id_created_at_idx ON live_swaps (agent_id, created_at);
CREATE INDEX live_swaps_wallet_address_created_at_idx ON live_swaps (wallet_address, created_at);
-- One ledger row per on-chain swap.
CREATE UNIQUE INDEX live_swaps_transaction_id_key ON live_swaps (transaction_id) WHERE transaction_id IS NOT NULL;

CREATE FUNCTION live_swaps_guard_wallet() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.wallet_address = OLD.wallet_address THEN
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT 1 FROM live_swaps
               WHERE wallet_address = OLD.wallet_address AND status IN ('pending', 'sent', 'confirmed')) THEN
        RAISE EXCEPTION 'wallet % has a live swap awaiting settlement', OLD.wallet_address
            USING ERRCODE = 'object_in_use';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$;
CREATE TRIGGER agent_wallets_live_swaps_guard
    BEFORE DELETE OR UPDATE OF wallet_address ON agent_wallets
    FOR EACH ROW EXECUTE FUNCTION live_swaps_guard_wallet();

-- Emergency stop for new live orders: scope 'global' (operator) or 'user:<uuid>' (one user's agents).
-- Read FOR SHARE in the transaction that journals a swap, so a committed halt stops every later order
-- in every process at once.
CREATE TABLE live_trading_halts (
    scope      text        PRIMARY KEY CHECK (scope = 'global' OR scope LIKE 'user:%'),
    halted     boolean     NOT NULL,
    reason     text,
    updated_by uuid,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO live_trading_halts (scope, halted) VALUES ('global', false);

-- Per-agent rails; NULL falls back to the LIVE_DAILY_LOSS_LIMIT_SOL / LIVE_MAX_OPEN_POSITIONS defaults.
CREATE TABLE live_agent_limits (
    agent_id             uuid PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    daily_loss_limit_sol numeric(20, 8) CHECK (daily_loss_limit_sol > 0),
    max_open_positions   integer CHECK (max_open_positions >= 0),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Latest on-chain vs ledger comparison per live wallet. blocked = drift beyond the thresholds that the
-- owner has not acknowledged; new live orders for the wallet are refused while it is set.
CREATE TABLE live_wallet_reconciliations (
    wallet_address      varchar(44) PRIMARY KEY,
    agent_id            uuid        NOT NULL,
    status              text        NOT NULL CHECK (status IN ('ok', 'drift', 'acknowledged')),
    blocked             boolean     NOT NULL DEFAULT false,
    report              jsonb       NOT NULL,
    checked_at          timestamptz NOT NULL DEFAULT now(),
    acknowledged_at     timestamptz,
    acknowledged_by     uuid,
    acknowledged_drift  jsonb
);
