-- An operator's cap on the units one customer may buy in a sale (NULL: the door's
-- admission.max_quantity). A customer holds one ticket per sale, ever, so this caps both
-- the ticket's quantity and the customer's total across the sale.
ALTER TABLE sales ADD COLUMN max_quantity_per_customer INT CHECK (max_quantity_per_customer > 0);
