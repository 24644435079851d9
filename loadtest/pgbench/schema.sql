-- pgbench's tables: one hot sale row and an order table, shaped like flashgate's, in the
-- load-test database only. Recreated before every pgbench run.
DROP TABLE IF EXISTS lt_pgb_orders, lt_pgb_sales;
CREATE TABLE lt_pgb_sales (
    id       INT PRIMARY KEY,
    stock    BIGINT NOT NULL,
    reserved BIGINT NOT NULL DEFAULT 0,
    CHECK (reserved <= stock)
);
CREATE TABLE lt_pgb_orders (
    id          BIGSERIAL PRIMARY KEY,
    sale_id     INT NOT NULL REFERENCES lt_pgb_sales (id),
    customer_id TEXT NOT NULL,
    quantity    INT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO lt_pgb_sales (id, stock) VALUES (1, 1000000000000);
