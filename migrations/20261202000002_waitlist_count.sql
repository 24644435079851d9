-- Tickets on the wait-list, kept with the stock terms so the door can bound the list:
-- it admits to the wait-list only as many as the units that could come back could serve
-- (issue 12, item 5). Kept by the reservation plan (waitlisted decisions, promotions)
-- and by closing the list, each under the sale's row lock.
ALTER TABLE sales ADD COLUMN waitlisted INT NOT NULL DEFAULT 0 CHECK (waitlisted >= 0);
UPDATE sales s SET waitlisted = (SELECT count(*) FROM tickets t
                                 WHERE t.sale_id = s.id AND t.decision = 'waitlisted');
