//! Reading one product through the layers: L1 → Redis → PostgreSQL. Concurrent misses of
//! one key in this process share one fill (coalescing); an entry near or past its logical
//! expiry is refreshed by one reader while the others keep serving it (XFetch, then
//! stale-while-revalidate); unknown skus are cached too, briefly (negative cache).

use std::sync::Arc;
use std::time::{Duration, Instant};

use flashgate_common::domain::Sku;

use crate::cache::guarded::Write;
use crate::cache::remote::Entry;
use crate::catalog::Catalog;
use crate::error::{Fill, FillError};
use crate::products::{self, Product};
use crate::stats::{Kind, Layer};

/// How long "no such product" is cached in Redis.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// XFetch's β: 1 is the paper's optimum for one recomputation per expiry.
pub(crate) const XFETCH_BETA: f64 = 1.0;

impl Catalog {
    /// A product, or `None` if there is no such sku.
    pub async fn product(self: &Arc<Self>, sku: &Sku) -> Fill<Option<Arc<Product>>> {
        if let Some(hit) = self.products.get(sku.as_str()) {
            self.counters.hit(Layer::L1, Kind::Product);
            return Ok(hit);
        }
        self.counters.miss(Layer::L1, Kind::Product);
        let (this, owned) = (self.clone(), sku.clone());
        let fill = async move { this.fill_product(&owned).await };
        let key = format!("p:{sku}");
        self.coalesce(
            &self.product_fills,
            Kind::Product,
            key,
            fill,
            Err(FillError::Busy),
        )
        .await
    }

    async fn fill_product(self: &Arc<Self>, sku: &Sku) -> Fill<Option<Arc<Product>>> {
        // A fill that ended between this reader's miss and now has filled L1 already.
        if let Some(hit) = self.products.get(sku.as_str()) {
            return Ok(hit);
        }
        let key = self.remote.redis().keys().product(sku);
        let Some(entry) = self.remote.get::<Option<Product>>(&key).await else {
            self.counters.miss(Layer::Redis, Kind::Product);
            return self.load_product(sku, Write::Background).await;
        };
        self.counters.hit(Layer::Redis, Kind::Product);
        if entry.should_refresh(XFETCH_BETA) {
            self.refresh_in_background(sku.clone());
        }
        let value = entry.value.map(Arc::new);
        self.products.insert(sku.to_string(), value.clone());
        Ok(value)
    }

    fn refresh_in_background(self: &Arc<Self>, sku: Sku) {
        let this = self.clone();
        tokio::spawn(async move {
            let key = format!("r:{sku}");
            let reload = {
                let this = this.clone();
                async move { this.load_product(&sku, Write::Wait).await }
            };
            let _ = this
                .product_fills
                .run(key, reload, Err(FillError::Busy))
                .await;
        });
    }

    async fn load_product(self: &Arc<Self>, sku: &Sku, mode: Write) -> Fill<Option<Arc<Product>>> {
        let started = Instant::now();
        let query = products::fetch(&self.pool, sku);
        let product = self.with_db(Kind::Product, query).await?;
        let ttl = match product {
            Some(_) => Duration::from_secs(self.config.redis_ttl_secs),
            None => NEGATIVE_TTL,
        };
        let key = self.remote.redis().keys().product(sku);
        let entry = Entry::new(&product, started.elapsed(), ttl);
        self.store(key, &entry, ttl, mode).await;
        let value = product.map(Arc::new);
        self.products.insert(sku.to_string(), value.clone());
        Ok(value)
    }
}
