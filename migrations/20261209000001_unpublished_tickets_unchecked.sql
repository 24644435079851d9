-- Every row of unpublished_tickets is now written by the transaction that changes its
-- ticket (ledger::unpublished::owe), so the ticket exists by construction; the foreign
-- key's check per row was half of the cost of keeping a closed wait-list chunk (5,000
-- rows: 86-133 ms with it, 45-69 without, on the door benchmark's database). Nothing
-- deletes tickets; a row whose ticket is gone would be skipped by the sweep's join.
ALTER TABLE unpublished_tickets DROP CONSTRAINT unpublished_tickets_ticket_id_fkey;
