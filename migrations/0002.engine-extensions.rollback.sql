DROP TABLE IF EXISTS worker_heartbeats;
ALTER TABLE agent_positions
    DROP COLUMN remaining_amount,
    DROP COLUMN take_profit_levels_hit,
    DROP COLUMN take_profit_transaction_ids,
    DROP COLUMN last_take_profit_time,
    DROP COLUMN moon_bag_activated,
    DROP COLUMN moon_bag_amount,
    DROP COLUMN realized_profit_sol,
    DROP COLUMN tp_batch_start_level,
    DROP COLUMN total_take_profit_levels;
ALTER TABLE agent_transactions
    DROP COLUMN is_take_profit,
    DROP COLUMN protocol_fee_sol,
    DROP COLUMN network_fee_sol;
DROP INDEX IF EXISTS users_email_lower_key;
ALTER TABLE signal_executions DROP CONSTRAINT signal_executions_status_valid;
ALTER TABLE agent_wallets DROP CONSTRAINT agent_wallets_wallet_type_valid;
ALTER TABLE agents DROP CONSTRAINT agents_trading_mode_valid;
DROP TRIGGER IF EXISTS trading_signals_notify ON trading_signals;
DROP FUNCTION IF EXISTS notify_signal_created();
ALTER TABLE trading_signals
    DROP CONSTRAINT trading_signals_strength_range,
    DROP COLUMN last_error,
    DROP COLUMN attempts,
    DROP COLUMN processed_at,
    DROP COLUMN user_id;
