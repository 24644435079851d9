-- Money can only be lost where an order and its PaymentIntent disagree for good: an order
-- released while its PaymentIntent could still succeed, or a success nobody applied.
-- `intent_final` records that Stripe has told us the PaymentIntent's last word (succeeded or
-- canceled) and the order has applied it. Until then reconciliation keeps asking Stripe,
-- whatever the order's status (payment_pending, expired, failed), so a lost webhook can
-- delay an order but never leave a charge without a unit or a refund.
ALTER TABLE orders ADD COLUMN intent_final BOOLEAN NOT NULL DEFAULT false;
UPDATE orders SET intent_final = true WHERE status IN ('paid', 'refund_pending', 'refunded');
CREATE INDEX orders_unreconciled ON orders (updated_at)
    WHERE payment_intent_id IS NOT NULL AND NOT intent_final;

-- An expired hold whose PaymentIntent may exist keeps its units (and `cancel_pending`)
-- until Stripe answers the cancel: the hold sweep must not select it again meanwhile.
DROP INDEX orders_holding;
CREATE INDEX orders_holding ON orders (hold_expires_at)
    WHERE status IN ('reserved', 'payment_pending') AND NOT cancel_pending;

-- Units that come back (a declined card, an expired hold) go to the shoppers who were
-- turned away while they were held, not to nobody: the wait-list is on unless a sale
-- turns it off (issue 12, item 4).
ALTER TABLE sales ALTER COLUMN waitlist SET DEFAULT true;

-- Reserved orders nobody has asked to pay yet (the maintenance loop asks again a minute on).
CREATE INDEX orders_unasked ON orders (updated_at)
    WHERE status = 'reserved' AND pi_requested_at IS NULL;

-- Retention (workers/src/maintenance/retention.rs) deletes by insertion time from these
-- append-only tables; BRIN indexes cost next to nothing on insert and let each delete
-- find the old rows without reading the table.
CREATE INDEX stripe_events_received_brin ON stripe_events USING brin (received_at);
CREATE INDEX order_events_created_brin ON order_events USING brin (created_at);
CREATE INDEX admission_audit_at_brin ON admission_audit USING brin (at);
