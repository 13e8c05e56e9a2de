DROP TABLE IF EXISTS token_prices;
