//! Writing a plan: one `UNNEST` insert per table and one bulk update of the sales.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Plan;
use crate::domain::{SaleId, SaleTerms};

impl Plan {
    pub(super) async fn insert_tickets(&self, tx: &mut PgConnection) -> sqlx::Result<()> {
        if self.tickets.is_empty() {
            return Ok(());
        }
        let rows = &self.tickets;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.ticket.ticket_id).collect();
        let sales: Vec<String> = rows.iter().map(|r| r.sale.to_string()).collect();
        let customers: Vec<String> = rows.iter().map(|r| r.ticket.customer_id.clone()).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.ticket.seq).collect();
        let quantities: Vec<i32> = rows.iter().map(|r| r.ticket.quantity).collect();
        let methods: Vec<Option<String>> = rows
            .iter()
            .map(|r| r.ticket.payment_method.clone())
            .collect();
        let decisions: Vec<String> = rows
            .iter()
            .map(|r| r.decision.as_str().to_owned())
            .collect();
        let issued: Vec<DateTime<Utc>> = rows.iter().map(|r| r.ticket.issued_at).collect();
        sqlx::query!(
            r#"INSERT INTO tickets (id, sale_id, customer_id, seq, quantity, payment_method, decision, issued_at)
               SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[],
                                    $7::text[], $8::timestamptz[])"#,
            &ids,
            &sales,
            &customers,
            &seqs,
            &quantities,
            &methods as &[Option<String>],
            &decisions,
            &issued
        )
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    pub(super) async fn insert_orders(&self, tx: &mut PgConnection) -> sqlx::Result<()> {
        if self.orders.is_empty() {
            return Ok(());
        }
        let rows = &self.orders;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let tickets: Vec<Uuid> = rows.iter().map(|r| r.ticket.ticket_id).collect();
        let sales: Vec<String> = rows.iter().map(|r| r.sale.to_string()).collect();
        let customers: Vec<String> = rows.iter().map(|r| r.ticket.customer_id.clone()).collect();
        let quantities: Vec<i32> = rows.iter().map(|r| r.ticket.quantity).collect();
        let amounts: Vec<i64> = rows.iter().map(|r| r.amount).collect();
        let currencies: Vec<String> = rows.iter().map(|r| r.currency.clone()).collect();
        let methods: Vec<Option<String>> = rows
            .iter()
            .map(|r| r.ticket.payment_method.clone())
            .collect();
        let holds: Vec<i32> = rows.iter().map(|r| r.hold_seconds).collect();
        sqlx::query!(
            r#"INSERT INTO orders (id, ticket_id, sale_id, customer_id, quantity, amount, currency, payment_method,
                                   status, hold_expires_at)
               SELECT u.id, u.ticket_id, u.sale_id, u.customer_id, u.quantity, u.amount, u.currency, u.payment_method,
                      'reserved', now() + make_interval(secs => u.hold)
               FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::text[],
                           $8::text[], $9::int[])
                    AS u(id, ticket_id, sale_id, customer_id, quantity, amount, currency, payment_method, hold)"#,
            &ids,
            &tickets,
            &sales,
            &customers,
            &quantities,
            &amounts,
            &currencies,
            &methods as &[Option<String>],
            &holds
        )
        .execute(&mut *tx)
        .await?;
        let mut per_sale: BTreeMap<&SaleId, u64> = BTreeMap::new();
        for order in rows {
            *per_sale.entry(&order.sale).or_default() += 1;
        }
        for (sale, n) in per_sale {
            metrics::counter!("flashgate_reservations_total", "sale" => sale.to_string())
                .increment(n);
        }
        Ok(())
    }

    pub(super) async fn update_sales(
        &self,
        tx: &mut PgConnection,
    ) -> sqlx::Result<BTreeMap<SaleId, SaleTerms>> {
        let sales: Vec<String> = self.deltas.keys().map(SaleId::to_string).collect();
        let units: Vec<i32> = self.deltas.values().map(|d| d.reserved).collect();
        let decided: Vec<i64> = self.deltas.values().map(|d| d.decided).collect();
        let waiting: Vec<i32> = self.deltas.values().map(|d| d.waitlisted).collect();
        let rows = sqlx::query!(
            r#"UPDATE sales SET reserved = sales.reserved + u.units, decided = sales.decided + u.served,
                   waitlisted = sales.waitlisted + u.waiting, version = sales.version + 1, updated_at = now()
               FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::int[]) AS u(id, units, served, waiting)
               WHERE sales.id = u.id
               RETURNING sales.id AS "id: SaleId", sales.version, sales.stock, sales.reserved, sales.sold, sales.decided,
                         sales.waitlisted"#,
            &sales,
            &units,
            &decided,
            &waiting
        )
        .fetch_all(&mut *tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.id, crate::sale_terms!(r)))
            .collect())
    }
}
