-- flashgate schema. PostgreSQL is the single source of truth for stock, orders and events;
-- the checks below make the invariants of DESIGN.md impossible to break at the database level.

CREATE TABLE products (
    sku         TEXT PRIMARY KEY CHECK (sku ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    category    TEXT NOT NULL DEFAULT 'general' CHECK (category ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    price       BIGINT NOT NULL CHECK (price >= 0),
    currency    TEXT NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    attributes  JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    images      JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(images) = 'array'),
    version     BIGINT NOT NULL DEFAULT 1,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX products_by_category ON products (category, sku);

-- One row per sale. I1: available = stock - reserved - sold, every term >= 0.
-- `version` grows with every change of the stock terms so caches apply updates in order.
CREATE TABLE sales (
    id              TEXT PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    sku             TEXT NOT NULL REFERENCES products (sku),
    stock           INT NOT NULL CHECK (stock >= 0),
    reserved        INT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    sold            INT NOT NULL DEFAULT 0 CHECK (sold >= 0),
    decided         BIGINT NOT NULL DEFAULT 0 CHECK (decided >= 0),
    price           BIGINT NOT NULL CHECK (price > 0),
    currency        TEXT NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    starts_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    hold_seconds    INT NOT NULL DEFAULT 600 CHECK (hold_seconds BETWEEN 5 AND 86400),
    rate_per_second INT NOT NULL CHECK (rate_per_second BETWEEN 1 AND 1000000),
    burst           INT NOT NULL CHECK (burst BETWEEN 1 AND 1000000),
    paused          BOOLEAN NOT NULL DEFAULT false,
    waitlist        BOOLEAN NOT NULL DEFAULT false,
    version         BIGINT NOT NULL DEFAULT 1,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT sales_no_oversell CHECK (reserved + sold <= stock)
);

-- A ticket row is written once, when a reservation worker decides it (I3: unique id).
CREATE TABLE tickets (
    id             UUID PRIMARY KEY,
    sale_id        TEXT NOT NULL REFERENCES sales (id),
    customer_id    TEXT NOT NULL,
    seq            BIGINT NOT NULL CHECK (seq > 0),
    quantity       INT NOT NULL CHECK (quantity > 0),
    payment_method TEXT,
    decision       TEXT NOT NULL CHECK (decision IN ('reserved', 'sold_out')),
    issued_at      TIMESTAMPTZ NOT NULL,
    decided_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX tickets_by_sale ON tickets (sale_id, seq);

-- One order per reserved ticket. Units are held while the order is reserved or
-- payment_pending, and sold once paid; every other status holds nothing.
CREATE TABLE orders (
    id                UUID PRIMARY KEY,
    ticket_id         UUID NOT NULL UNIQUE REFERENCES tickets (id),
    sale_id           TEXT NOT NULL REFERENCES sales (id),
    customer_id       TEXT NOT NULL,
    quantity          INT NOT NULL CHECK (quantity > 0),
    amount            BIGINT NOT NULL CHECK (amount > 0),
    currency          TEXT NOT NULL,
    payment_method    TEXT,
    status            TEXT NOT NULL CHECK (status IN ('reserved', 'payment_pending', 'paid',
                          'failed', 'expired', 'refund_pending', 'refunded')),
    hold_expires_at   TIMESTAMPTZ NOT NULL,
    -- I2: at most one PaymentIntent per order, and no PaymentIntent shared by two orders.
    payment_intent_id TEXT UNIQUE,
    client_secret     TEXT,
    -- Recovery point: set before the first create call, so a retry after a crash or a lost
    -- answer knows a PaymentIntent may already exist at Stripe.
    pi_requested_at   TIMESTAMPTZ,
    -- The PaymentIntent must be canceled at Stripe (hold expired or payment failed).
    cancel_pending    BOOLEAN NOT NULL DEFAULT false,
    -- Lease for the Stripe side effects (cancel, refund) so that one worker runs each.
    effect_leased_at  TIMESTAMPTZ,
    failure_code      TEXT,
    paid_at           TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX orders_by_sale ON orders (sale_id, status);
CREATE INDEX orders_holding ON orders (hold_expires_at) WHERE status IN ('reserved', 'payment_pending');
CREATE INDEX orders_stuck ON orders (updated_at) WHERE status = 'payment_pending';
CREATE INDEX orders_effects ON orders (updated_at) WHERE cancel_pending OR status = 'refund_pending';

-- I4: every Stripe event is applied at most once.
CREATE TABLE stripe_events (
    id                TEXT PRIMARY KEY,
    type              TEXT NOT NULL,
    created           TIMESTAMPTZ NOT NULL,
    payment_intent_id TEXT,
    order_id          UUID REFERENCES orders (id),
    outcome           TEXT NOT NULL,
    received_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Transactional outbox for the `orders` exchange: written with the state change, relayed
-- to RabbitMQ with publisher confirms, so no downstream event is lost.
CREATE TABLE order_events (
    id           BIGSERIAL PRIMARY KEY,
    order_id     UUID NOT NULL REFERENCES orders (id),
    kind         TEXT NOT NULL,
    payload      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ
);
CREATE INDEX order_events_unpublished ON order_events (id) WHERE published_at IS NULL;

CREATE TABLE admission_audit (
    id      BIGSERIAL PRIMARY KEY,
    sale_id TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    old     JSONB,
    new     JSONB NOT NULL,
    at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX admission_audit_by_sale ON admission_audit (sale_id, at);
