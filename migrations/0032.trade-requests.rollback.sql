DROP TRIGGER IF EXISTS trade_requests_notify ON trade_requests;
DROP FUNCTION IF EXISTS notify_trade_request();
DROP TABLE IF EXISTS trade_request_outcomes;
DROP TABLE IF EXISTS trade_requests;
