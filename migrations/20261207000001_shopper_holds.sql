-- The presence sweep (ledger::payment::shopper_holds) walks the holds of shoppers who pay
-- in the page, by order id. Without an index of its own it read every live hold through
-- orders_holding and dropped the ones it does not want: with a payment backlog, or a sale
-- of many units, that is most of them, every sweep (27 ms a pass for 200,000 unpaid
-- holds, 225 ms for 1.2 million). Orders enter this index only once their shopper's
-- payment starts in the page, so reserving a unit writes nothing more.
CREATE INDEX orders_shopper_holds ON orders (id)
    WHERE status = 'payment_pending' AND payment_method IS NULL AND NOT cancel_pending;
