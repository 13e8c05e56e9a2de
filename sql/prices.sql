-- Latest prices (table token_prices, migration 0040). Written by the worker's price monitor only.

-- name: upsert_token_prices
-- $1 mints, $2 price_sol, $3 price_usd, $4 liquidity_usd, $5 observed_at, $6 source (parallel arrays).
-- An older observation never overwrites a newer one, so two monitors polling at once cannot move a
-- price backwards in time.
INSERT INTO token_prices AS tp (mint, price_sol, price_usd, liquidity_usd, observed_at, source)
SELECT * FROM unnest($1::text[], $2::numeric[], $3::numeric[], $4::numeric[], $5::timestamptz[], $6::text[])
ON CONFLICT (mint) DO UPDATE
SET price_sol = EXCLUDED.price_sol,
    price_usd = EXCLUDED.price_usd,
    liquidity_usd = EXCLUDED.liquidity_usd,
    observed_at = EXCLUDED.observed_at,
    source = EXCLUDED.source,
    updated_at = now()
WHERE tp.observed_at <= EXCLUDED.observed_at;

-- name: latest_token_prices
-- $1 mints
SELECT mint, price_sol, price_usd, liquidity_usd, observed_at, source
FROM token_prices
WHERE mint = ANY($1::text[]);
