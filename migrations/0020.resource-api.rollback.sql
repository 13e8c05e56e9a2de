DROP INDEX IF EXISTS trading_signals_user_id_created_at_id_idx;
DROP INDEX IF EXISTS agent_transactions_wallet_address_transaction_time_idx;
DROP INDEX IF EXISTS trading_signals_user_id_id_idx;
DROP TABLE IF EXISTS idempotency_keys;
DROP TABLE IF EXISTS signal_dedupe;
