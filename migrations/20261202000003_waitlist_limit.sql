-- An operator's own cap on the wait-list (NULL: the door's default, as many as the units
-- that could still come back could serve times the oversubscription factor).
ALTER TABLE sales ADD COLUMN waitlist_limit INT CHECK (waitlist_limit > 0);
