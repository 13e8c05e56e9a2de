-- depends: 0031.ledger-links
-- Manual trades submitted over HTTP and executed by the worker (docs/worker.md "Manual trades").
--
-- The API never trades: it inserts a request and waits for the worker's answer. The worker claims a
-- pending request with FOR NO KEY UPDATE SKIP LOCKED; the trade's ledger transaction writes the
-- request's outcome into trade_request_outcomes, so "trade recorded" and "request answered" commit
-- together and a crash between the two is resolved by reading the outcome on the next claim.
CREATE TABLE trade_requests (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id        uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    kind            varchar(20) NOT NULL CHECK (kind IN ('buy', 'close')),
    params          jsonb NOT NULL,
    -- Client-supplied Idempotency-Key; the same key with the same body returns the same request.
    idempotency_key varchar(255),
    request_hash    text NOT NULL,
    status          varchar(20) NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'succeeded', 'failed')),
    result          jsonb,
    error_code      varchar(64),
    error_message   text,
    attempts        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CONSTRAINT trade_requests_user_idempotency_key UNIQUE (user_id, idempotency_key)
);
CREATE INDEX trade_requests_pending_idx ON trade_requests (created_at) WHERE status = 'pending';

-- Written by the trade's own ledger transaction: the request was executed (exactly once).
CREATE TABLE trade_request_outcomes (
    request_id uuid PRIMARY KEY REFERENCES trade_requests (id) ON DELETE CASCADE,
    result     jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION notify_trade_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('trade_request_created', NEW.id::text);
    ELSIF NEW.status <> OLD.status THEN
        PERFORM pg_notify('trade_request_done', NEW.id::text);
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER trade_requests_notify AFTER INSERT OR UPDATE OF status ON trade_requests
    FOR EACH ROW EXECUTE FUNCTION notify_trade_request();
