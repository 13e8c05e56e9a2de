-- The schema of the user's Tables Reference (../shared/seed/tables-reference.txt), column for column.
-- Engine-specific additions live in later migrations so this file stays a faithful copy of the seed.
-- Extra defaults (gen_random_uuid(), now() on updated_at) are allowed by the seed and save every
-- INSERT from repeating them.

CREATE TYPE "TransactionType" AS ENUM ('DEPOSIT', 'WITHDRAWAL', 'SWAP', 'BURN');

CREATE TABLE users (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email                 varchar(255) NOT NULL,
    password_hash         varchar(255),
    created_at            timestamptz NOT NULL DEFAULT now(),
    failed_login_attempts integer NOT NULL DEFAULT 0,
    locked_until          timestamptz,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE api_keys (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       varchar(100) NOT NULL,
    key_hash   text NOT NULL,
    key_prefix varchar(12) NOT NULL,
    scopes     text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);

CREATE TABLE agents (
    id                           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                         varchar(255) NOT NULL,
    trading_mode                 varchar(20) NOT NULL DEFAULT 'simulation',
    automated_trading_simulation boolean NOT NULL DEFAULT true,
    automated_trading_live       boolean NOT NULL DEFAULT true,
    trading_config               jsonb,
    created_at                   timestamptz NOT NULL DEFAULT now(),
    updated_at                   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_user_id_idx ON agents (user_id);

CREATE TABLE agent_wallets (
    wallet_address varchar(44) PRIMARY KEY,
    agent_id       uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    wallet_type    varchar(20) NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_wallets_agent_id_wallet_type_key UNIQUE (agent_id, wallet_type)
);
CREATE INDEX agent_wallets_agent_id_idx ON agent_wallets (agent_id);

CREATE TABLE trading_signals (
    id                serial PRIMARY KEY,
    token_address     varchar(255) NOT NULL,
    symbol            varchar(50),
    signal_type       varchar(50) NOT NULL,
    activation_reason text,
    signal_strength   integer NOT NULL,
    source            varchar(100),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trading_signals_token_address_idx ON trading_signals (token_address);
CREATE INDEX trading_signals_signal_type_idx ON trading_signals (signal_type);
CREATE INDEX trading_signals_created_at_idx ON trading_signals (created_at);

CREATE TABLE agent_transactions (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id              uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    wallet_address        varchar(44) REFERENCES agent_wallets (wallet_address)
                              ON UPDATE CASCADE ON DELETE CASCADE,
    transaction_type      "TransactionType" NOT NULL,
    transaction_value_usd numeric(20, 8) NOT NULL,
    transaction_time      timestamptz NOT NULL,
    destination_address   varchar(255),
    signal_id             integer REFERENCES trading_signals (id) ON DELETE SET NULL,
    fees                  numeric(20, 8),
    routes                jsonb,
    input_mint            varchar(255),
    input_symbol          varchar(20),
    input_amount          numeric(30, 18),
    input_price           numeric(30, 18),
    output_mint           varchar(255),
    output_symbol         varchar(20),
    output_amount         numeric(30, 18),
    output_price          numeric(30, 18),
    slippage              numeric(10, 4),
    price_impact          numeric(10, 4),
    is_dca                boolean NOT NULL DEFAULT false,
    transaction_hash      varchar(255),
    swap_payload          jsonb,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_transactions_agent_id_idx ON agent_transactions (agent_id);
CREATE INDEX agent_transactions_wallet_address_idx ON agent_transactions (wallet_address);
CREATE INDEX agent_transactions_agent_id_wallet_address_idx ON agent_transactions (agent_id, wallet_address);
CREATE INDEX agent_transactions_transaction_type_idx ON agent_transactions (transaction_type);
CREATE INDEX agent_transactions_transaction_time_idx ON agent_transactions (transaction_time);
CREATE INDEX agent_transactions_signal_id_idx ON agent_transactions (signal_id);
CREATE INDEX agent_transactions_agent_id_transaction_time_idx ON agent_transactions (agent_id, transaction_time);
CREATE INDEX agent_transactions_agent_id_transaction_type_idx ON agent_transactions (agent_id, transaction_type);

CREATE TABLE agent_balances (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id       uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    wallet_address varchar(44) NOT NULL REFERENCES agent_wallets (wallet_address)
                       ON UPDATE CASCADE ON DELETE CASCADE,
    token_address  varchar(255) NOT NULL,
    token_symbol   varchar(20) NOT NULL,
    balance        text NOT NULL,
    last_updated   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_balances_wallet_address_token_address_key UNIQUE (wallet_address, token_address)
);
CREATE INDEX agent_balances_agent_id_idx ON agent_balances (agent_id);
CREATE INDEX agent_balances_wallet_address_idx ON agent_balances (wallet_address);
CREATE INDEX agent_balances_agent_id_wallet_address_idx ON agent_balances (agent_id, wallet_address);
CREATE INDEX agent_balances_token_address_idx ON agent_balances (token_address);

CREATE TABLE agent_positions (
    id                           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id                     uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    wallet_address               varchar(44) NOT NULL REFERENCES agent_wallets (wallet_address)
                                     ON UPDATE CASCADE ON DELETE CASCADE,
    token_address                varchar(255) NOT NULL,
    token_symbol                 varchar(20) NOT NULL,
    -- RESTRICT, not the reference's CASCADE: deleting a ledger row must never silently drop a position.
    purchase_transaction_id      uuid REFERENCES agent_transactions (id) ON DELETE RESTRICT,
    purchase_price               numeric(30, 18) NOT NULL,
    purchase_amount              numeric(30, 18) NOT NULL,
    current_stop_loss_percentage numeric(5, 2),
    peak_price                   numeric(30, 18),
    lowest_price                 numeric(30, 18),
    last_stop_loss_update        timestamptz,
    dca_count                    integer NOT NULL DEFAULT 0,
    dca_transaction_ids          uuid[] NOT NULL DEFAULT '{}',
    last_dca_time                timestamptz,
    total_invested_sol           numeric(20, 8) NOT NULL DEFAULT 0,
    created_at                   timestamptz NOT NULL DEFAULT now(),
    updated_at                   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_positions_purchase_transaction_id_key UNIQUE (purchase_transaction_id),
    CONSTRAINT agent_positions_agent_wallet_token_key UNIQUE (agent_id, wallet_address, token_address)
);
CREATE INDEX agent_positions_agent_id_idx ON agent_positions (agent_id);
CREATE INDEX agent_positions_token_address_idx ON agent_positions (token_address);
CREATE INDEX agent_positions_agent_id_wallet_address_idx ON agent_positions (agent_id, wallet_address);

CREATE TABLE agent_historical_swaps (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id                uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    wallet_address          varchar(44) REFERENCES agent_wallets (wallet_address)
                                ON UPDATE CASCADE ON DELETE CASCADE,
    token_address           varchar(255) NOT NULL,
    token_symbol            varchar(20) NOT NULL,
    amount                  numeric(30, 18) NOT NULL,
    purchase_price          numeric(30, 18) NOT NULL,
    sale_price              numeric(30, 18) NOT NULL,
    change_percent          numeric(10, 4) NOT NULL,
    profit_loss_usd         numeric(20, 8) NOT NULL,
    profit_loss_sol         numeric(20, 8) NOT NULL,
    purchase_time           timestamptz NOT NULL,
    sale_time               timestamptz NOT NULL,
    purchase_transaction_id uuid REFERENCES agent_transactions (id) ON DELETE SET NULL,
    sale_transaction_id     uuid REFERENCES agent_transactions (id) ON DELETE SET NULL,
    signal_id               integer REFERENCES trading_signals (id) ON DELETE SET NULL,
    close_reason            varchar(20),
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_historical_swaps_agent_id_idx ON agent_historical_swaps (agent_id);
CREATE INDEX agent_historical_swaps_wallet_address_idx ON agent_historical_swaps (wallet_address);
CREATE INDEX agent_historical_swaps_agent_id_wallet_address_idx ON agent_historical_swaps (agent_id, wallet_address);
CREATE INDEX agent_historical_swaps_token_address_idx ON agent_historical_swaps (token_address);
CREATE INDEX agent_historical_swaps_signal_id_idx ON agent_historical_swaps (signal_id);
CREATE INDEX agent_historical_swaps_purchase_transaction_id_idx ON agent_historical_swaps (purchase_transaction_id);
CREATE INDEX agent_historical_swaps_sale_transaction_id_idx ON agent_historical_swaps (sale_transaction_id);
CREATE INDEX agent_historical_swaps_purchase_time_idx ON agent_historical_swaps (purchase_time);
CREATE INDEX agent_historical_swaps_sale_time_idx ON agent_historical_swaps (sale_time);
CREATE INDEX agent_historical_swaps_agent_id_token_address_idx ON agent_historical_swaps (agent_id, token_address);
CREATE INDEX agent_historical_swaps_agent_id_purchase_time_idx ON agent_historical_swaps (agent_id, purchase_time);
CREATE INDEX agent_historical_swaps_agent_id_sale_time_idx ON agent_historical_swaps (agent_id, sale_time);
CREATE INDEX agent_historical_swaps_agent_id_created_at_idx ON agent_historical_swaps (agent_id, created_at);
CREATE INDEX agent_historical_swaps_agent_id_signal_id_idx ON agent_historical_swaps (agent_id, signal_id);

CREATE TABLE agent_balance_snapshots (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id              uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    wallet_address        varchar(44) NOT NULL REFERENCES agent_wallets (wallet_address)
                              ON UPDATE CASCADE ON DELETE CASCADE,
    snapshot_timestamp    timestamptz NOT NULL,
    portfolio_balance_sol numeric(20, 8) NOT NULL,
    sol_balance           numeric(20, 8) NOT NULL,
    positions_value_sol   numeric(20, 8) NOT NULL,
    unrealized_pnl_sol    numeric(20, 8) NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_balance_snapshots_agent_wallet_time_key UNIQUE (agent_id, wallet_address, snapshot_timestamp)
);
CREATE INDEX agent_balance_snapshots_wallet_address_idx ON agent_balance_snapshots (wallet_address);
CREATE INDEX agent_balance_snapshots_snapshot_timestamp_idx ON agent_balance_snapshots (snapshot_timestamp);

CREATE TABLE signal_executions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    signal_id      integer NOT NULL REFERENCES trading_signals (id) ON DELETE CASCADE,
    agent_id       uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    status         varchar(20) NOT NULL,
    transaction_id uuid REFERENCES agent_transactions (id) ON DELETE SET NULL,
    error          text,
    executed_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT signal_executions_signal_id_agent_id_key UNIQUE (signal_id, agent_id)
);
CREATE INDEX signal_executions_agent_id_idx ON signal_executions (agent_id);
