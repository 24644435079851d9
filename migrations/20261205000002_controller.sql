-- The closed-loop admission controller: a sale's bounds and targets (NULL: off, the
-- operator's rate stands), and where its last tick saw the queue (the drain rate is the
-- decided tickets between two ticks).
ALTER TABLE sales ADD COLUMN controller JSONB
    CHECK (controller IS NULL OR jsonb_typeof(controller) = 'object');

CREATE TABLE admission_controller (
    sale_id TEXT PRIMARY KEY REFERENCES sales (id),
    at      TIMESTAMPTZ NOT NULL,
    decided BIGINT NOT NULL
);
