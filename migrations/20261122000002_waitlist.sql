-- The wait-list: tickets that found no unit while reservations that could expire were
-- outstanding wait, in sequence order, for units to come back, instead of ending sold out.
ALTER TABLE tickets DROP CONSTRAINT tickets_decision_check;
ALTER TABLE tickets ADD CONSTRAINT tickets_decision_check
    CHECK (decision IN ('reserved', 'sold_out', 'waitlisted'));
CREATE INDEX tickets_waitlisted ON tickets (sale_id, seq) WHERE decision = 'waitlisted';
