//! Live availability of a product's sale: from the per-sale counters the workers keep in
//! Redis, or from the sale's row when Redis is unavailable or does not know the sale;
//! cached in L1 at most `availability_ttl_ms`, capped at a second, and never in Redis.
//! Concurrent misses of one sale share one read. It informs; it never authorizes a sale
//! (the reservation transaction does).

use std::sync::Arc;

use flashgate_common::domain::{SaleId, SaleTerms};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::Fill;
use crate::stats::{Kind, Layer};

/// What a shopper sees of a sale's stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Availability {
    /// The sale.
    pub sale_id: String,
    /// Units nobody holds.
    pub remaining: i64,
    /// Units held by unpaid reservations (some may come back).
    pub reserved: i64,
    /// Units sold.
    pub sold: i64,
    /// Nothing left and nothing that could come back.
    pub sold_out: bool,
}

impl Availability {
    fn from_terms(sale_id: &str, terms: &SaleTerms) -> Self {
        Self {
            sale_id: sale_id.to_owned(),
            remaining: terms.available().max(0),
            reserved: terms.reserved,
            sold: terms.sold,
            sold_out: terms.available() <= 0 && terms.reserved <= 0,
        }
    }
}

impl Catalog {
    /// Availability of `sale_id`, or `None` if nothing is known about it (or the
    /// database could not be asked in time: availability is an extra, not worth a 503).
    pub async fn availability(self: &Arc<Self>, sale_id: &str) -> Option<Arc<Availability>> {
        if let Some(hit) = self.availability.get(sale_id) {
            self.counters.hit(Layer::L1, Kind::Availability);
            return hit;
        }
        self.counters.miss(Layer::L1, Kind::Availability);
        let sale = SaleId::parse(sale_id).ok()?;
        let this = self.clone();
        let key = format!("a:{sale}");
        let fill = async move { this.fill_availability(sale).await };
        self.coalesce(
            &self.availability_fills,
            Kind::Availability,
            key,
            fill,
            None,
        )
        .await
    }

    async fn fill_availability(self: &Arc<Self>, sale: SaleId) -> Option<Arc<Availability>> {
        if let Some(hit) = self.availability.get(sale.as_str()) {
            return hit;
        }
        let live = self
            .remote
            .call(self.remote.redis().read_terms(&sale))
            .await;
        let terms = match live.and_then(|(terms, _seq)| terms) {
            Some(terms) => {
                self.counters.hit(Layer::Redis, Kind::Availability);
                Some(terms)
            }
            None => {
                self.counters.miss(Layer::Redis, Kind::Availability);
                // A failed read is not an answer: leave nothing cached, ask again next time.
                self.terms_from_db(&sale).await.ok()?
            }
        };
        let found = terms.map(|t| Arc::new(Availability::from_terms(sale.as_str(), &t)));
        self.availability.insert(sale.to_string(), found.clone());
        found
    }

    async fn terms_from_db(&self, sale: &SaleId) -> Fill<Option<SaleTerms>> {
        let query = sqlx::query!(
            "SELECT version, stock, reserved, sold, decided, waitlisted FROM sales WHERE id = $1",
            sale.as_str()
        )
        .fetch_optional(&self.pool);
        let row = self.with_db(Kind::Availability, query).await?;
        Ok(row.map(|row| flashgate_common::sale_terms!(row)))
    }
}
