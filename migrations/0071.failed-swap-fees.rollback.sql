DROP INDEX IF EXISTS live_swaps_fee_unrecorded_idx;
ALTER TABLE live_swaps DROP COLUMN IF EXISTS fee_recorded_at;
