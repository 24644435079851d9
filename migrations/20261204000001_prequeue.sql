-- The pre-queue: shoppers who arrive before a sale opens wait here, unordered, and at the
-- opening their tickets are drawn into a random order from a seed committed in advance.
--
-- fairness_seed is secret until the draw (no read of a sale shows it before drawn_at);
-- fairness_commitment = SHA-256(seed) is public from the sale's creation. drawn_at is set
-- once, by the draw, which also seals the list of tickets that arrived before starts_at
-- (prequeue_digest, prequeue_sealed of them: numbered 1.. in the drawn order), numbers
-- those that joined between starts_at and the draw after them in arrival order, and
-- counts all it numbered (prequeued): tickets claimed after the draw come after them.
ALTER TABLE sales
    ADD COLUMN prequeue_opens_at TIMESTAMPTZ,
    ADD COLUMN fairness_seed BYTEA,
    ADD COLUMN fairness_commitment BYTEA,
    ADD COLUMN drawn_at TIMESTAMPTZ,
    ADD COLUMN prequeue_digest BYTEA,
    ADD COLUMN prequeued INT NOT NULL DEFAULT 0 CHECK (prequeued >= 0),
    ADD COLUMN prequeue_sealed INT NOT NULL DEFAULT 0 CHECK (prequeue_sealed BETWEEN 0 AND prequeued);

-- The proof-of-work check's difficulty (leading zero bits; 0: off), set live.
ALTER TABLE sales ADD COLUMN pow_difficulty INT NOT NULL DEFAULT 0
    CHECK (pow_difficulty BETWEEN 0 AND 28);

-- The alternative bot check: each arrival solves the door's captcha provider's widget.
ALTER TABLE sales ADD COLUMN captcha BOOLEAN NOT NULL DEFAULT false;

-- Sales from before the pre-queue have nothing to draw.
UPDATE sales SET drawn_at = now();

-- One row per pre-queued ticket (the ticket id is derived from sale and customer, so a
-- customer has one). seq is set by the draw; published once the broker confirmed it.
CREATE TABLE prequeue (
    ticket_id UUID PRIMARY KEY,
    sale_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    token TEXT NOT NULL,
    quantity INT NOT NULL CHECK (quantity > 0),
    payment_method TEXT,
    request_id TEXT,
    arrived_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    seq BIGINT,
    published BOOLEAN NOT NULL DEFAULT false
);

CREATE INDEX prequeue_sale ON prequeue (sale_id, seq);
CREATE INDEX prequeue_unpublished ON prequeue (sale_id, seq) WHERE seq IS NOT NULL AND NOT published;
