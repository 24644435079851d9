-- Tickets whose status change committed in the ledger but did not reach Redis (the write
-- failed: Redis away, failing over, or a connection it had dropped). Polls read Redis
-- first, so without this a paid shopper whose "paid" was lost kept reading the status
-- before it. The workers' sweep publishes each one's state from the ledger until Redis
-- takes it (ledger::unpublished). `since` is when it was last kept: a newer failure
-- moves it, so a sweep that read the ledger before it never forgets the row.
CREATE TABLE unpublished_tickets (
    ticket_id UUID PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
    since     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
