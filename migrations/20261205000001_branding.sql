-- A sale's look in the waiting room, set by the operator without a rebuild: the shop's
-- name, a logo, an accent colour, a page background and a message (validated by the
-- admin API; an empty object is the default look).
ALTER TABLE sales ADD COLUMN branding JSONB NOT NULL DEFAULT '{}'::jsonb
    CHECK (jsonb_typeof(branding) = 'object');
