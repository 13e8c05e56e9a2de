-- depends: 0070.access-token-revocation-notify
-- A live transaction that lands with an error still pays its network fee. Settlement now writes that fee to the
-- ledger as a fee-only SWAP row (app/trading/ledger.py, docs/live-trading.md) and stamps the journal row here;
-- until then the wallet counts as busy, like a swap awaiting settlement.
ALTER TABLE live_swaps ADD COLUMN fee_recorded_at timestamptz;

-- Failures resolved before this version left their fee out of the ledger on purpose: reconciliation reported it
-- as drift and owners acknowledged it. Recording those fees now would move acknowledged baselines, so they count
-- as handled.
UPDATE live_swaps SET fee_recorded_at = coalesce(resolved_at, updated_at) WHERE status = 'failed';

CREATE INDEX live_swaps_fee_unrecorded_idx ON live_swaps (created_at)
    WHERE status = 'failed' AND fee_recorded_at IS NULL AND fee_lamports > 0;
