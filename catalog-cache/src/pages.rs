//! Listing pages (keyset pagination in sku order), cached like products: L1, then one
//! Redis hash of pages that any product write drops whole, then PostgreSQL. Misses are
//! coalesced; a page near or just past expiry is served while one reader refreshes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use flashgate_common::domain::{Category, Sku};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::guarded::Write;
use crate::cache::remote::{self, Entry};
use crate::catalog::{Catalog, STALE_FACTOR};
use crate::error::{Fill, FillError};
use crate::lookup::XFETCH_BETA;
use crate::products::{self, Product};
use crate::stats::{Kind, Layer};

/// Most listing pages cached in Redis at once. Cursors are chosen by clients, so without a
/// bound a crawler of made-up cursors would grow the hash without end (in the Redis that
/// may also hold ticket state); past it a page is served from PostgreSQL (coalesced, and
/// kept in L1) until the hash expires or a product write drops it.
const MAX_CACHED_PAGES: usize = 2000;

/// Logical lifetime of a cached page.
const PAGE_TTL: Duration = Duration::from_secs(30);
/// How long past its logical expiry a page may still be served while it is refreshed
/// (the hash's own expiry keeps being extended, so each field needs its own limit).
const PAGE_STALE_MS: i64 = PAGE_TTL.as_millis() as i64;

/// A validated listing query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    /// Only this category.
    pub category: Option<Category>,
    /// After this sku (decoded cursor).
    pub after: Option<Sku>,
    /// Page size.
    pub limit: i64,
}

/// A page of products.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page {
    /// The products.
    pub products: Vec<Product>,
    /// Opaque cursor of the next page, if any.
    pub next_cursor: Option<String>,
}

/// The opaque cursor that resumes after `sku`.
pub(crate) fn cursor_after(sku: &str) -> String {
    B64.encode(sku)
}

/// Decodes a cursor; `None` if it is not one of ours.
pub(crate) fn decode_cursor(cursor: &str) -> Option<Sku> {
    let raw = B64.decode(cursor).ok()?;
    Sku::parse(String::from_utf8(raw).ok()?).ok()
}

impl PageQuery {
    fn digest(&self) -> String {
        let text = format!(
            "{}|{}|{}",
            self.category.as_ref().map_or("", Category::as_str),
            self.after.as_ref().map_or("", Sku::as_str),
            self.limit
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..12])
    }
}

impl Catalog {
    /// A listing page.
    pub async fn page(self: &Arc<Self>, query: PageQuery) -> Fill<Arc<Page>> {
        let digest = query.digest();
        if let Some(hit) = self.pages.get(&digest) {
            self.counters.hit(Layer::L1, Kind::Page);
            return Ok(hit);
        }
        self.counters.miss(Layer::L1, Kind::Page);
        let this = self.clone();
        let key = format!("l:{digest}");
        let fill = async move { this.fill_page(query, digest).await };
        self.coalesce(
            &self.page_fills,
            Kind::Page,
            key,
            fill,
            Err(FillError::Busy),
        )
        .await
    }

    async fn fill_page(self: &Arc<Self>, query: PageQuery, digest: String) -> Fill<Arc<Page>> {
        // A fill that ended between this reader's miss and now has filled L1 already.
        if let Some(hit) = self.pages.get(&digest) {
            return Ok(hit);
        }
        let Some(entry) = self.cached_page(&digest).await else {
            self.counters.miss(Layer::Redis, Kind::Page);
            return self.load_page(&query, digest, Write::Background).await;
        };
        self.counters.hit(Layer::Redis, Kind::Page);
        if entry.should_refresh(XFETCH_BETA) {
            self.refresh_page_in_background(query, digest.clone());
        }
        let page = Arc::new(entry.value);
        self.pages.insert(digest, page.clone());
        Ok(page)
    }

    /// The page in Redis, unless it is too stale to serve even while refreshing.
    async fn cached_page(&self, digest: &str) -> Option<Entry<Page>> {
        let pages_key = self.remote.redis().keys().product_pages();
        let mut conn = self.remote.redis().conn();
        let read = async {
            redis::cmd("HGET")
                .arg(&pages_key)
                .arg(digest)
                .query_async::<Option<String>>(&mut conn)
                .await
        };
        let entry = self
            .remote
            .call(read)
            .await
            .and_then(remote::decode::<Page>)?;
        (entry.ttl_left_ms() > -PAGE_STALE_MS).then_some(entry)
    }

    fn refresh_page_in_background(self: &Arc<Self>, query: PageQuery, digest: String) {
        let this = self.clone();
        tokio::spawn(async move {
            let key = format!("r:{digest}");
            let reload = {
                let this = this.clone();
                async move { this.load_page(&query, digest, Write::Wait).await }
            };
            let _ = this.page_fills.run(key, reload, Err(FillError::Busy)).await;
        });
    }

    async fn load_page(
        self: &Arc<Self>,
        query: &PageQuery,
        digest: String,
        mode: Write,
    ) -> Fill<Arc<Page>> {
        let started = Instant::now();
        let after = query.after.as_ref().map(Sku::as_str);
        let category = query.category.as_ref();
        let rows = products::page(&self.pool, category, after, query.limit);
        let mut rows = self.with_db(Kind::Page, rows).await?;
        let more = rows.len() as i64 > query.limit;
        rows.truncate(query.limit as usize);
        let next_cursor = more
            .then(|| rows.last().map(|p| cursor_after(&p.sku)))
            .flatten();
        let page = Arc::new(Page {
            products: rows,
            next_cursor,
        });
        let entry = Entry::new(&*page, started.elapsed(), PAGE_TTL);
        if let Ok(json) = serde_json::to_string(&entry) {
            let hash = self.remote.redis().keys().product_pages();
            let keep = PAGE_TTL * (1 + STALE_FACTOR);
            self.remote
                .hset(hash, digest.clone(), json, keep, MAX_CACHED_PAGES, mode)
                .await;
        }
        self.pages.insert(digest, page.clone());
        Ok(page)
    }
}
