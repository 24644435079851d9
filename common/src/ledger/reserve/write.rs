//! Writing a plan: one `UNNEST` insert per table and one bulk update of the sales.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use flashgate_common::domain::{SaleId, SaleTerms};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Plan;
use crate::Result;

impl Plan {
    pub(super) async fn insert_tickets(&self, tx: &mut PgConnection) -> Result<()> {
        if self.tickets.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = self.tickets.iter().map(|(_, c, _)| c.ticket_id).collect();
        let sales: Vec<String> = self.tickets.iter().map(|(s, _, _)| s.to_string()).collect();
        let customers: Vec<String> = self
            .tickets
            .iter()
            .map(|(_, c, _)| c.customer_id.clone())
            .collect();
        let seqs: Vec<i64> = self.tickets.iter().map(|(_, c, _)| c.seq).collect();
        let quantities: Vec<i32> = self.tickets.iter().map(|(_, c, _)| c.quantity).collect();
        let methods: Vec<Option<String>> = self
            .tickets
            .iter()
            .map(|(_, c, _)| c.payment_method.clone())
            .collect();
        let decisions: Vec<String> = self
            .tickets
            .iter()
            .map(|(_, _, d)| d.as_str().to_owned())
            .collect();
        let issued: Vec<DateTime<Utc>> = self.tickets.iter().map(|(_, c, _)| c.issued_at).collect();
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

    pub(super) async fn insert_orders(&self, tx: &mut PgConnection) -> Result<()> {
        if self.orders.is_empty() {
            return Ok(());
        }
        let rows = &self.orders;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.2).collect();
        let tickets: Vec<Uuid> = rows.iter().map(|r| r.1.ticket_id).collect();
        let sales: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
        let customers: Vec<String> = rows.iter().map(|r| r.1.customer_id.clone()).collect();
        let quantities: Vec<i32> = rows.iter().map(|r| r.1.quantity).collect();
        let amounts: Vec<i64> = rows.iter().map(|r| r.3).collect();
        let currencies: Vec<String> = rows.iter().map(|r| r.4.clone()).collect();
        let methods: Vec<Option<String>> =
            rows.iter().map(|r| r.1.payment_method.clone()).collect();
        let holds: Vec<i32> = rows.iter().map(|r| r.5).collect();
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
        for (sale, ..) in rows {
            *per_sale.entry(sale).or_default() += 1;
        }
        for (sale, n) in per_sale {
            metrics::counter!("reservations_total", "sale" => sale.to_string()).increment(n);
        }
        Ok(())
    }

    pub(super) async fn update_sales(
        &self,
        tx: &mut PgConnection,
    ) -> Result<BTreeMap<SaleId, SaleTerms>> {
        let sales: Vec<String> = self.deltas.keys().map(SaleId::to_string).collect();
        let units: Vec<i32> = self.deltas.values().map(|d| d.0).collect();
        let decided: Vec<i64> = self.deltas.values().map(|d| d.1).collect();
        let waiting: Vec<i32> = self.deltas.values().map(|d| d.2).collect();
        let rows = sqlx::query!(
            r#"UPDATE sales SET reserved = sales.reserved + u.units, decided = sales.decided + u.served,
                   waitlisted = sales.waitlisted + u.waiting, version = sales.version + 1, updated_at = now()
               FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::int[]) AS u(id, units, served, waiting)
               WHERE sales.id = u.id
               RETURNING sales.id, sales.version, sales.stock, sales.reserved, sales.sold, sales.decided,
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
            .filter_map(|r| {
                let terms = flashgate_common::sale_terms!(r);
                Some((SaleId::parse(r.id).ok()?, terms))
            })
            .collect())
    }
}
