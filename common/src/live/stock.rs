//! A sale's stock terms in Redis: the read path's "remaining" and the queue's served
//! position, rewritten from every commit and applied only when newer.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::{Pipeline, Script};

use super::Redis;
use crate::Result;
use crate::domain::{SaleId, SaleTerms};

/// KEYS[1] terms hash; ARGV version, stock, reserved, sold, decided, waitlisted. Older
/// versions lose.
static SET_TERMS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
        if tonumber(ARGV[1]) <= current then return 0 end
        redis.call('HSET', KEYS[1], 'version', ARGV[1], 'stock', ARGV[2],
            'reserved', ARGV[3], 'sold', ARGV[4], 'decided', ARGV[5], 'waitlisted', ARGV[6])
        return 1
        ",
    )
});

impl Redis {
    /// Adds a versioned write of `terms` to `pipe`, loading the script first.
    pub fn queue_terms(&self, pipe: &mut Pipeline, sale: &SaleId, terms: &SaleTerms) {
        pipe.load_script(&SET_TERMS).ignore();
        let mut invocation = SET_TERMS.key(self.keys().terms(sale));
        invocation
            .arg(terms.version)
            .arg(terms.stock)
            .arg(terms.reserved)
            .arg(terms.sold)
            .arg(terms.decided)
            .arg(terms.waitlisted);
        pipe.invoke_script(&invocation).ignore();
    }

    /// Publishes one sale's terms.
    pub async fn write_terms(&self, sale: &SaleId, terms: &SaleTerms) -> Result<()> {
        let mut pipe = redis::pipe();
        self.queue_terms(&mut pipe, sale, terms);
        pipe.query_async::<()>(&mut self.conn()).await?;
        Ok(())
    }

    /// Reads one sale's terms and how many of its tickets the broker confirmed.
    pub async fn read_terms(&self, sale: &SaleId) -> Result<(Option<SaleTerms>, i64)> {
        let mut all = self.read_terms_many(std::slice::from_ref(sale)).await?;
        Ok(all.pop().unwrap_or((None, 0)))
    }

    /// Reads the terms and confirmed-ticket counts of several sales in one round trip.
    /// (Confirmed, not claimed: a claim whose publish failed is not in the queue, and
    /// counting it would keep the door shut for a queue that is not there.)
    pub async fn read_terms_many(&self, sales: &[SaleId]) -> Result<Vec<(Option<SaleTerms>, i64)>> {
        if sales.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for sale in sales {
            pipe.hgetall(self.keys().terms(sale))
                .get(self.keys().published(sale));
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        Ok(replies
            .chunks(2)
            .map(|pair| {
                let fields = redis::from_redis_value_ref::<HashMap<String, i64>>(&pair[0])
                    .unwrap_or_default();
                let published = pair
                    .get(1)
                    .and_then(|v| redis::from_redis_value_ref::<Option<i64>>(v).ok().flatten());
                (parse_terms(&fields), published.unwrap_or(0))
            })
            .collect())
    }
}

fn parse_terms(fields: &HashMap<String, i64>) -> Option<SaleTerms> {
    Some(SaleTerms {
        version: *fields.get("version")?,
        stock: *fields.get("stock")?,
        reserved: *fields.get("reserved")?,
        sold: *fields.get("sold")?,
        decided: *fields.get("decided")?,
        waitlisted: fields.get("waitlisted").copied().unwrap_or(0),
    })
}
