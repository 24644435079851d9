//! One customer per bot-check answer (a solved proof-of-work challenge, a captcha
//! answer): the first customer to use one keeps it until it expires; the same customer
//! using it again (a retry) is let through, any other is refused. Shared by every door.

use std::sync::LazyLock;

use redis::Script;

use super::Redis;
use crate::Result;
use crate::domain::{CustomerId, SaleId};

/// KEYS[1] the answer's use; ARGV customer, ttl. 1 if this customer may use it (first
/// use, or the same customer again), 0 if another customer holds it.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local used = redis.call('GET', KEYS[1])
        if not used then
            redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
            return 1
        end
        if used == ARGV[1] then return 1 end
        return 0
        ",
    )
});

impl Redis {
    /// Claims `answer` of `sale` for `customer` for `ttl_secs`: false if another customer
    /// already used it.
    pub async fn claim_answer(
        &self,
        sale: &SaleId,
        answer: &str,
        customer: &CustomerId,
        ttl_secs: u64,
    ) -> Result<bool> {
        let mine: i64 = CLAIM
            .key(self.keys().answer_used(sale, answer))
            .arg(customer.as_str())
            .arg(ttl_secs)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(mine == 1)
    }

    /// Who used `answer` of `sale`, if anyone did.
    pub async fn answer_user(&self, sale: &SaleId, answer: &str) -> Result<Option<String>> {
        Ok(redis::cmd("GET")
            .arg(self.keys().answer_used(sale, answer))
            .query_async(&mut self.conn())
            .await?)
    }
}
