SET client_min_messages = warning;
-- pgbench's copy of flashgate's own reservation tables, in the load-test database only:
-- the columns, defaults, checks and indexes of the migrated `sales`, `tickets` and
-- `orders` (the hot path has no foreign keys, migration 20261122000003), one hot sale.
-- Recreated before every pgbench run, so flashgate-writes.sql costs what a batch costs
-- the database on tables the migrations keep shaped like flashgate's.
DROP SCHEMA IF EXISTS lt_pgb_fg CASCADE;
CREATE SCHEMA lt_pgb_fg;
CREATE TABLE lt_pgb_fg.sales (LIKE public.sales INCLUDING ALL);
CREATE TABLE lt_pgb_fg.tickets (LIKE public.tickets INCLUDING ALL);
CREATE TABLE lt_pgb_fg.orders (LIKE public.orders INCLUDING ALL);
INSERT INTO lt_pgb_fg.sales (id, sku, stock, price, currency, rate_per_second, burst)
    VALUES ('pgb', 'lt-pgb', 2000000000, 1500, 'eur', 1000000, 1000000);
