-- The limit for batched reservations: one transaction reserves 100 units on the hot row
-- and writes their 100 orders, as a reservation worker's batch does. Units/s = tps x 100.
BEGIN;
UPDATE lt_pgb_sales SET reserved = reserved + 100 WHERE id = 1 AND stock - reserved >= 100;
INSERT INTO lt_pgb_orders (sale_id, customer_id, quantity)
    SELECT 1, 'pgb-' || :client_id || '-' || g, 1 FROM generate_series(1, 100) AS g;
COMMIT;
