-- depends: 0030.worker-intake
-- Links that make every closed trade auditable from its own rows (docs/worker.md "Audit").
--
-- position_id ties the buy, DCA, take-profit, sale and burn rows of one position together (positions
-- are deleted on close, so the link cannot be a foreign key); a history row carries it too, so its
-- P/L can be recomputed from the ledger. sol_usd_price is the SOL/USD used to value the row in USD:
-- NULL means no price was known at the time and the USD figures were recorded as 0 (we never invent
-- a SOL price, unlike the reference's hard-coded 100).
ALTER TABLE agent_transactions
    ADD COLUMN position_id   uuid,
    ADD COLUMN sol_usd_price numeric(20, 8);
CREATE INDEX agent_transactions_position_id_idx ON agent_transactions (position_id) WHERE position_id IS NOT NULL;

ALTER TABLE agent_historical_swaps
    ADD COLUMN position_id   uuid,
    ADD COLUMN sol_usd_price numeric(20, 8);
