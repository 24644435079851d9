-- The database's limit for flashgate's own reservation writes: one transaction is a
-- worker's batch of :units fresh tickets (pgbench -D units=N) for one hot sale, statement
-- for statement
-- (common/src/ledger/reserve.rs, workers/src/reserve/decide.rs): lock the sale row,
-- read the sale's highest sequence number (a batch of first deliveries does not look
-- its tickets up: their primary key refuses one decided already), insert
-- the tickets and their orders (one UNNEST each, with time-ordered ids as the worker's),
-- update the sale's counters, commit. On flashgate-schema.sql's copy of the tables.
-- Units/s = tps x units; beside batched.sql, whose one order row a unit is the floor.
SELECT array_agg((lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
                  || substr(md5(random()::text), 1, 20))::uuid) AS tickets,
       array_agg((lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
                  || substr(md5(random()::text), 1, 20))::uuid) AS orders
FROM generate_series(1, :units) \gset
BEGIN;
SELECT * FROM lt_pgb_fg.sales WHERE id = ANY('{pgb}'::text[]) ORDER BY id FOR UPDATE;
SELECT s.id, (SELECT max(t.seq) FROM lt_pgb_fg.tickets t WHERE t.sale_id = s.id)
FROM lt_pgb_fg.sales s WHERE s.id = ANY('{pgb}'::text[]);
INSERT INTO lt_pgb_fg.tickets (id, sale_id, customer_id, seq, quantity, payment_method, decision, issued_at)
SELECT u.id, 'pgb', 'pgb-' || :client_id || '-' || u.n,
       (SELECT decided FROM lt_pgb_fg.sales WHERE id = 'pgb') + u.n, 1, NULL, 'reserved', now()
FROM UNNEST(:tickets::uuid[]) WITH ORDINALITY AS u(id, n);
INSERT INTO lt_pgb_fg.orders (id, ticket_id, sale_id, customer_id, quantity, amount, currency, payment_method,
                              status, hold_expires_at)
SELECT u.order_id, u.ticket_id, 'pgb', 'pgb-' || :client_id || '-' || u.n, 1, 1500, 'eur', NULL,
       'reserved', now() + make_interval(secs => 600)
FROM UNNEST(:tickets::uuid[], :orders::uuid[]) WITH ORDINALITY AS u(ticket_id, order_id, n);
UPDATE lt_pgb_fg.sales SET reserved = reserved + :units, decided = decided + :units, version = version + 1,
       updated_at = now()
WHERE id = 'pgb'
RETURNING id, version, stock, reserved, sold, decided, waitlisted;
COMMIT;
