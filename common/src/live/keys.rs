//! Every Redis key and channel name. Keys of one sale share the hash tag `{sale}` so a
//! sale's scripts and pipelines stay on one Redis Cluster slot.

use std::sync::Arc;

use uuid::Uuid;

use crate::domain::{CustomerId, SaleId, Sku};

/// Builds key names under a deployment prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: Arc<str>,
}

impl Keys {
    /// Keys under `prefix` (e.g. `fg:`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    fn sale_key(&self, sale: &SaleId, part: &str) -> String {
        format!("{}{{{}}}:{}", self.prefix, sale, part)
    }

    /// Set while a door is behind ([`crate::pressure`]), for every sale.
    pub fn door_pressed(&self) -> String {
        format!("{}door:pressed", self.prefix)
    }

    /// Counter that hands out the sale's ticket sequence numbers.
    pub fn seq(&self, sale: &SaleId) -> String {
        self.sale_key(sale, "seq")
    }

    /// Counter of the sale's tickets whose publish the broker confirmed (each once).
    pub fn published(&self, sale: &SaleId) -> String {
        self.sale_key(sale, "published")
    }

    /// Hash of the sale's stock terms ([`crate::domain::SaleTerms`]).
    pub fn terms(&self, sale: &SaleId) -> String {
        self.sale_key(sale, "terms")
    }

    /// The ticket token a customer holds for a sale.
    pub fn customer(&self, sale: &SaleId, customer: &CustomerId) -> String {
        self.sale_key(sale, &format!("c:{customer}"))
    }

    /// Set of the customers who ever claimed a ticket of the sale (every claim adds its
    /// customer in the same script that numbers it).
    pub fn holders(&self, sale: &SaleId) -> String {
        self.sale_key(sale, "holders")
    }

    /// Present while the sale is sealed: sold out, [`Self::holders`] read whole by a
    /// door, and no claim since (a new claim deletes it).
    pub fn sealed(&self, sale: &SaleId) -> String {
        self.sale_key(sale, "sealed")
    }

    /// Present, with the time left as its TTL, while a broken seal may still be trusted
    /// by a door: no claim is made, and no door seals the sale, until it is gone.
    pub fn unsealing(&self, sale: &SaleId) -> String {
        self.sale_key(sale, "unsealing")
    }

    /// Hash of one ticket's status.
    pub fn ticket(&self, sale: &SaleId, ticket: Uuid) -> String {
        self.sale_key(sale, &format!("t:{}", ticket.simple()))
    }

    /// The stored first response for an `Idempotency-Key`.
    pub fn idempotency(&self, sale: &SaleId, key: &str) -> String {
        self.sale_key(sale, &format!("i:{key}"))
    }

    /// The customer who used a bot-check answer (a challenge's nonce, a captcha
    /// answer's hash).
    pub fn answer_used(&self, sale: &SaleId, answer: &str) -> String {
        self.sale_key(sale, &format!("w:{answer}"))
    }

    /// Channel announcing that a sale's settings changed (payload: sale id).
    pub fn sales_channel(&self) -> String {
        format!("{}sales:changed", self.prefix)
    }

    /// Cached product document.
    pub fn product(&self, sku: &Sku) -> String {
        format!("{}catalog:p:{}", self.prefix, sku)
    }

    /// Hash of cached listing pages (field: a digest of the query), dropped whole on any
    /// product write.
    pub fn product_pages(&self) -> String {
        format!("{}catalog:pages", self.prefix)
    }

    /// Channel announcing product writes (payload: sku).
    pub fn catalog_channel(&self) -> String {
        format!("{}catalog:changed", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_sale_share_a_hash_tag() {
        let keys = Keys::new("fg:");
        let sale = SaleId::parse("drop-1").unwrap();
        assert_eq!(keys.seq(&sale), "fg:{drop-1}:seq");
        assert!(
            keys.ticket(&sale, Uuid::nil())
                .starts_with("fg:{drop-1}:t:")
        );
    }
}
