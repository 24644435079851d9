-- Each worker's Stripe latency over its last ten seconds, written every few seconds,
-- so that the operators' console on any door can show it (ledger::vitals).
CREATE TABLE stripe_latency (
    worker TEXT PRIMARY KEY,
    at     TIMESTAMPTZ NOT NULL,
    calls  BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    p50_ms DOUBLE PRECISION,
    p99_ms DOUBLE PRECISION
);
