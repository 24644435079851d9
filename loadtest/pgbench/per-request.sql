-- The textbook reservation as pgbench runs it: lock the hot row, reserve one unit, write
-- one order, commit. A reference for the lock-bench number (pgbench is a lean C client).
BEGIN;
SELECT stock, reserved FROM lt_pgb_sales WHERE id = 1 FOR UPDATE;
UPDATE lt_pgb_sales SET reserved = reserved + 1 WHERE id = 1 AND stock - reserved >= 1;
INSERT INTO lt_pgb_orders (sale_id, customer_id, quantity) VALUES (1, 'pgb-' || :client_id, 1);
COMMIT;
