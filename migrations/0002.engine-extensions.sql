-- depends: 0001.seed-schema
-- Columns the reference engine has beyond the seed document (domain spec §1), the worker's intake
-- bookkeeping, and guards the seed leaves out. Only additions: the seed's columns stay as they are.

-- Signals belong to the user who posted them; the worker fans a signal out to that user's agents only.
ALTER TABLE trading_signals
    ADD COLUMN user_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    -- NULL until the worker has written one signal_executions row per agent; the partial index below
    -- is the worker's queue (claimed with FOR UPDATE SKIP LOCKED, oldest first).
    ADD COLUMN processed_at timestamptz,
    ADD COLUMN attempts     integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error   text,
    ADD CONSTRAINT trading_signals_strength_range CHECK (signal_strength BETWEEN 1 AND 5);
CREATE INDEX trading_signals_user_id_created_at_idx ON trading_signals (user_id, created_at);
CREATE INDEX trading_signals_unprocessed_idx ON trading_signals (id) WHERE processed_at IS NULL;

-- LISTEN/NOTIFY is only the wake-up call; the table above is the truth, so a missed notification
-- costs latency, never a signal.
CREATE FUNCTION notify_signal_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('signal_created', NEW.id::text);
    RETURN NEW;
END;
$$;
CREATE TRIGGER trading_signals_notify AFTER INSERT ON trading_signals
    FOR EACH ROW EXECUTE FUNCTION notify_signal_created();

ALTER TABLE agents
    ADD CONSTRAINT agents_trading_mode_valid CHECK (trading_mode IN ('simulation', 'live'));
ALTER TABLE agent_wallets
    ADD CONSTRAINT agent_wallets_wallet_type_valid CHECK (wallet_type IN ('simulation', 'live'));
ALTER TABLE signal_executions
    ADD CONSTRAINT signal_executions_status_valid CHECK (status IN ('success', 'failed', 'skipped'));

-- E-mails are stored trimmed and lower-cased; the index makes a mixed-case duplicate impossible even
-- for rows imported from a Nexgent database.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

ALTER TABLE agent_transactions
    ADD COLUMN is_take_profit   boolean NOT NULL DEFAULT false,
    ADD COLUMN protocol_fee_sol numeric(20, 8),
    ADD COLUMN network_fee_sol  numeric(20, 8);

-- Take-profit and moon-bag state (domain spec §1, §6).
ALTER TABLE agent_positions
    ADD COLUMN remaining_amount            numeric(30, 18),
    ADD COLUMN take_profit_levels_hit      integer NOT NULL DEFAULT 0,
    ADD COLUMN take_profit_transaction_ids uuid[] NOT NULL DEFAULT '{}',
    ADD COLUMN last_take_profit_time       timestamptz,
    ADD COLUMN moon_bag_activated          boolean NOT NULL DEFAULT false,
    ADD COLUMN moon_bag_amount             numeric(30, 18),
    ADD COLUMN realized_profit_sol         numeric(20, 8) NOT NULL DEFAULT 0,
    ADD COLUMN tp_batch_start_level        integer NOT NULL DEFAULT 0,
    ADD COLUMN total_take_profit_levels    integer;

-- One row per worker process; /health/ready reads the freshest beat.
CREATE TABLE worker_heartbeats (
    worker_id  text PRIMARY KEY,
    hostname   text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    beat_at    timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz
);
