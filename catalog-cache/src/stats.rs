//! What the caches did: hits and misses per layer, coalesced waits, database reads
//! (fall-through), Redis failures and bypasses, invalidations received. Each event goes to
//! the process's Prometheus recorder and to counters of this one catalog, which tests and
//! operators can read without sharing the global recorder.
//!
//! The metric handles are registered once, so counting a hit is two atomic adds: no key
//! building and no allocation on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::Counter;

/// What was read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// One product document.
    Product = 0,
    /// One listing page.
    Page = 1,
    /// One sale's availability.
    Availability = 2,
}

const KINDS: [&str; 3] = ["product", "page", "availability"];

/// Where it was looked for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layer {
    /// The in-process cache.
    L1 = 0,
    /// Redis.
    Redis = 1,
}

const LAYERS: [&str; 2] = ["l1", "redis"];

/// A counter of this catalog mirrored to a Prometheus counter.
pub(crate) struct Tally {
    local: AtomicU64,
    metric: Counter,
}

impl Tally {
    fn new(metric: Counter) -> Self {
        Self {
            local: AtomicU64::new(0),
            metric,
        }
    }

    /// Counts one event.
    pub(crate) fn add(&self) {
        self.local.fetch_add(1, Ordering::Relaxed);
        self.metric.increment(1);
    }

    fn get(&self) -> u64 {
        self.local.load(Ordering::Relaxed)
    }
}

/// Every counter of one catalog.
pub(crate) struct Counters {
    hits: [[Tally; 3]; 2],
    misses: [[Tally; 3]; 2],
    coalesced: [Tally; 3],
    db_reads: [Tally; 3],
    /// Redis calls that failed or timed out.
    pub(crate) redis_failures: Tally,
    /// Redis calls skipped because the breaker was open.
    pub(crate) redis_bypassed: Tally,
    /// Invalidation messages received.
    pub(crate) invalidations: Tally,
    /// Invalidations (deletes and announcements) Redis did not take; they are retried.
    pub(crate) undelivered: Tally,
}

impl Counters {
    /// Registers the metrics (installing the process's recorder first, so the handles
    /// are live rather than no-ops bound before it existed).
    pub(crate) fn new() -> Self {
        flashgate_common::telemetry::metrics();
        let by_layer = |name: &'static str| {
            std::array::from_fn(|l| {
                std::array::from_fn(|k| {
                    Tally::new(metrics::counter!(name, "layer" => LAYERS[l], "kind" => KINDS[k]))
                })
            })
        };
        let by_kind = |name: &'static str| {
            std::array::from_fn(|k| Tally::new(metrics::counter!(name, "kind" => KINDS[k])))
        };
        Self {
            hits: by_layer("flashgate_catalog_hits_total"),
            misses: by_layer("flashgate_catalog_misses_total"),
            coalesced: by_kind("flashgate_catalog_coalesced_waits_total"),
            db_reads: by_kind("flashgate_catalog_db_fallthrough_total"),
            redis_failures: Tally::new(metrics::counter!("flashgate_catalog_redis_errors_total")),
            redis_bypassed: Tally::new(metrics::counter!("flashgate_catalog_redis_bypassed_total")),
            invalidations: Tally::new(metrics::counter!("flashgate_catalog_invalidations_total")),
            undelivered: Tally::new(metrics::counter!(
                "flashgate_catalog_invalidations_undelivered_total"
            )),
        }
    }

    /// A value was found in `layer`.
    pub(crate) fn hit(&self, layer: Layer, kind: Kind) {
        self.hits[layer as usize][kind as usize].add();
    }

    /// A value was not found in `layer`.
    pub(crate) fn miss(&self, layer: Layer, kind: Kind) {
        self.misses[layer as usize][kind as usize].add();
    }

    /// A reader waited for another reader's fill instead of starting its own.
    pub(crate) fn coalesced(&self, kind: Kind) {
        self.coalesced[kind as usize].add();
    }

    /// A read reached PostgreSQL.
    pub(crate) fn db_read(&self, kind: Kind) {
        self.db_reads[kind as usize].add();
    }

    /// The counts so far.
    pub(crate) fn snapshot(&self) -> Stats {
        let sum = |row: &[Tally; 3]| row.iter().map(Tally::get).sum();
        let (l1, redis) = (Layer::L1 as usize, Layer::Redis as usize);
        Stats {
            l1_hits: sum(&self.hits[l1]),
            l1_misses: sum(&self.misses[l1]),
            redis_hits: sum(&self.hits[redis]),
            redis_misses: sum(&self.misses[redis]),
            coalesced_waits: sum(&self.coalesced),
            db_product_reads: self.db_reads[Kind::Product as usize].get(),
            db_page_reads: self.db_reads[Kind::Page as usize].get(),
            db_availability_reads: self.db_reads[Kind::Availability as usize].get(),
            redis_failures: self.redis_failures.get(),
            redis_bypassed: self.redis_bypassed.get(),
            invalidations: self.invalidations.get(),
            undelivered_invalidations: self.undelivered.get(),
        }
    }
}

/// One catalog's counts since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reads answered by the in-process cache.
    pub l1_hits: u64,
    /// Reads the in-process cache could not answer.
    pub l1_misses: u64,
    /// Fills answered by Redis.
    pub redis_hits: u64,
    /// Fills Redis could not answer (absent, failed, or bypassed).
    pub redis_misses: u64,
    /// Readers that waited for another reader's fill of the same key.
    pub coalesced_waits: u64,
    /// Product queries sent to PostgreSQL.
    pub db_product_reads: u64,
    /// Listing-page queries sent to PostgreSQL.
    pub db_page_reads: u64,
    /// Sale-terms queries sent to PostgreSQL.
    pub db_availability_reads: u64,
    /// Redis calls that failed or timed out.
    pub redis_failures: u64,
    /// Redis calls skipped because the breaker was open.
    pub redis_bypassed: u64,
    /// Invalidation messages received.
    pub invalidations: u64,
    /// Attempts to delete and announce a write that Redis did not take (retried).
    pub undelivered_invalidations: u64,
}

impl Stats {
    /// Every query sent to PostgreSQL.
    pub fn db_reads(&self) -> u64 {
        self.db_product_reads + self.db_page_reads + self.db_availability_reads
    }
}
