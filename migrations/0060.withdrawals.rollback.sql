DROP TABLE IF EXISTS withdrawals;
ALTER TABLE live_swaps DROP CONSTRAINT IF EXISTS live_swaps_side_check;
ALTER TABLE live_swaps ADD CONSTRAINT live_swaps_side_check CHECK (side IN ('buy', 'sell'));
ALTER TABLE live_swaps DROP CONSTRAINT IF EXISTS live_swaps_swap_api_check;
ALTER TABLE live_swaps ADD CONSTRAINT live_swaps_swap_api_check CHECK (swap_api IN ('metis', 'ultra'));
