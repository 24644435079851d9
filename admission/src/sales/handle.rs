//! One sale as the door sees it: settings, the live admission limiter (swapped when an
//! operator changes rate or burst), live stock and queue numbers, and counters.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, Utc};
use flashgate_common::domain::{CustomerId, SaleId, SaleTerms};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::counters::Counters;
use super::roll::Roll;
use flashgate_common::ledger::sales::Sale;

/// Live numbers: committed terms, tickets confirmed into the queue, the service rate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    /// Newest terms seen (PostgreSQL or Redis, whichever is newer).
    pub terms: SaleTerms,
    /// Tickets whose publish the broker confirmed (claims never published not counted).
    pub published: i64,
    /// Tickets decided per second, smoothed.
    pub service_rate: f64,
}

impl Live {
    /// Tickets in the queue and not yet decided.
    pub fn queued(&self) -> i64 {
        (self.published - self.terms.decided).max(0)
    }

    /// No unit is available and no hold can expire.
    pub fn sold_out(&self) -> bool {
        self.terms.available() <= 0 && self.terms.reserved <= 0
    }
}

/// The sale's state for arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleState {
    /// Before `starts_at`.
    Scheduled,
    /// Paused by an operator.
    Paused,
    /// No unit is available and no hold can expire.
    SoldOut,
    /// Taking tickets.
    Open,
}

impl SaleState {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Paused => "paused",
            Self::SoldOut => "sold_out",
            Self::Open => "open",
        }
    }
}

/// What the stock says about one more arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// There is a real chance of a unit.
    Admit,
    /// The queue already exceeds what can be had, but the operator keeps a wait-list.
    Waitlist,
    /// The tickets waiting already claim every available unit (until holds expire).
    Oversubscribed,
    /// No unit is available and no hold can expire.
    SoldOut,
}

/// The longest a waiting shopper is asked to wait between polls.
pub(crate) const MAX_POLL_AFTER_MS: u64 = 10_000;

fn limiter(rate: i32, burst: i32) -> DefaultDirectRateLimiter {
    let rate = std::num::NonZeroU32::new(rate.max(1) as u32).unwrap_or(std::num::NonZeroU32::MIN);
    let burst = std::num::NonZeroU32::new(burst.max(1) as u32).unwrap_or(std::num::NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

/// A sale in the door's memory.
pub struct SaleHandle {
    settings: ArcSwap<Sale>,
    limiter: ArcSwap<DefaultDirectRateLimiter>,
    live: ArcSwap<Live>,
    sampled: Mutex<(Instant, i64)>,
    /// The holders of the sale while it is sealed ([`super::roll`]).
    roll: ArcSwapOption<Roll>,
    /// When the refresh that last found the seal asked ([`super::roll::now_ms`]).
    sealed_at: AtomicU64,
    /// Admission outcomes.
    pub counters: Counters,
}

impl SaleHandle {
    /// A handle for freshly loaded settings.
    pub fn new(settings: Sale) -> Self {
        let live = Live {
            terms: settings.terms,
            ..Live::default()
        };
        publish_gauges(&settings);
        let counters = Counters::new(settings.id.as_str());
        Self {
            limiter: ArcSwap::from_pointee(limiter(settings.rate_per_second, settings.burst)),
            sampled: Mutex::new((Instant::now(), settings.terms.decided)),
            settings: ArcSwap::from_pointee(settings),
            live: ArcSwap::from_pointee(live),
            roll: ArcSwapOption::empty(),
            sealed_at: AtomicU64::new(0),
            counters,
        }
    }

    /// The sale id.
    pub fn id(&self) -> SaleId {
        self.settings.load().id.clone()
    }

    /// Current settings.
    pub fn settings(&self) -> Arc<Sale> {
        self.settings.load_full()
    }

    /// Current live numbers.
    pub fn live(&self) -> Live {
        **self.live.load()
    }

    /// Applies reloaded settings; a new rate or burst takes effect at once.
    pub fn apply_settings(&self, settings: Sale) {
        let old = self.settings.load();
        if (old.rate_per_second, old.burst) != (settings.rate_per_second, settings.burst) {
            self.limiter
                .store(Arc::new(limiter(settings.rate_per_second, settings.burst)));
        }
        publish_gauges(&settings);
        self.merge_live(Some(settings.terms), 0);
        self.settings.store(Arc::new(settings));
    }

    /// Merges terms and the sequence counter read from Redis (newer versions win).
    pub fn merge_live(&self, terms: Option<SaleTerms>, published: i64) {
        self.live.rcu(|live| {
            let mut next = **live;
            if let Some(terms) = terms.filter(|t| t.version > next.terms.version) {
                next.terms = terms;
            }
            next.published = next.published.max(published);
            next
        });
    }

    /// Updates the smoothed service rate; called by the refresh task about once a second.
    pub fn sample(&self) {
        let decided = self.live().terms.decided;
        let Ok(mut sampled) = self.sampled.lock() else {
            return;
        };
        let elapsed = sampled.0.elapsed().as_secs_f64();
        let instant_rate = (decided - sampled.1).max(0) as f64 / elapsed.max(0.001);
        *sampled = (Instant::now(), decided);
        drop(sampled);
        self.counters.sample(elapsed);
        self.live.rcu(|live| Live {
            service_rate: 0.7 * live.service_rate + 0.3 * instant_rate,
            ..**live
        });
        publish_live(&self.id(), &self.live());
    }

    /// No unit is available and no hold can expire (as this door last saw the stock).
    pub fn sold_out(&self) -> bool {
        self.live().sold_out()
    }

    /// Whether this door knows, without asking Redis, that `customer` holds no ticket of
    /// the sale: the sale is sealed (found so less than `trust` ago) and `customer` is
    /// not on its roll.
    pub fn surely_holds_nothing(&self, customer: &CustomerId, trust: Duration) -> bool {
        let roll = self.roll.load();
        let Some(roll) = roll.as_ref() else {
            return false;
        };
        let age = super::roll::now_ms().saturating_sub(self.sealed_at.load(Ordering::SeqCst));
        u128::from(age) < trust.as_millis() && !roll.holds(customer.as_str())
    }

    /// The seal was found by a refresh that asked at `asked_at` ([`super::roll::now_ms`]).
    pub fn confirm_seal(&self, asked_at: u64) {
        self.sealed_at.fetch_max(asked_at, Ordering::SeqCst);
    }

    /// Whether this door keeps the sale's roll.
    pub fn has_roll(&self) -> bool {
        self.roll.load().is_some()
    }

    /// Keeps a roll read (and sealed) by a request sent at `asked_at`. A claim after it
    /// waits until the roll is no longer trusted, so it needs no other guard.
    pub fn keep_roll(&self, roll: Roll, asked_at: u64) {
        self.confirm_seal(asked_at);
        self.roll.store(Some(Arc::new(roll)));
        metrics::gauge!("flashgate_admission_sealed", "sale" => self.id().to_string()).set(1.0);
    }

    /// Forgets the roll: the sale's seal is gone.
    pub fn drop_roll(&self) {
        self.roll.store(None);
        metrics::gauge!("flashgate_admission_sealed", "sale" => self.id().to_string()).set(0.0);
    }

    /// The sale's state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> SaleState {
        let settings = self.settings.load();
        if settings.paused {
            SaleState::Paused
        } else if now < settings.starts_at {
            SaleState::Scheduled
        } else if self.sold_out() {
            SaleState::SoldOut
        } else {
            SaleState::Open
        }
    }

    /// Whether one more ticket can still come to anything. Sold out: no unit available
    /// and no hold that could expire. Oversubscribed: the tickets already waiting reach
    /// the available units times `factor` (holds that expire put units back, reopening
    /// admission). Past that, arrivals are refused, or queued if the wait-list is on.
    pub fn admission(&self, factor: f64) -> Admission {
        let live = self.live();
        let available = live.terms.available().max(0);
        if live.sold_out() {
            Admission::SoldOut
        } else if live.queued() as f64 >= available as f64 * factor {
            // The wait-list takes as many as the units that could still come back (all
            // held ones) could serve, times the factor, unless the operator set a cap;
            // past that an arrival's chance is nil, and it is told so at once instead of
            // waiting for the list to close.
            let settings = self.settings.load();
            let room = settings.waitlist_limit.map_or_else(
                || (available + live.terms.reserved.max(0)) as f64 * factor,
                f64::from,
            );
            let waiting = (live.queued() + live.terms.waitlisted) as f64;
            if settings.waitlist && waiting < room {
                Admission::Waitlist
            } else {
                Admission::Oversubscribed
            }
        } else {
            Admission::Admit
        }
    }

    /// Takes one admission from the sale's GCRA limiter, or says how long to wait.
    pub fn check_rate(&self) -> Result<(), Duration> {
        self.limiter
            .load()
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Tickets ahead of `seq`, counting itself (at least 1 while queued).
    pub fn position(&self, seq: i64) -> i64 {
        (seq - self.live().terms.decided).max(1)
    }

    /// Expected wait for a position, from the measured service rate.
    pub fn estimated_wait_ms(&self, position: i64) -> Option<u64> {
        let rate = self.live().service_rate;
        (rate >= 0.5).then(|| (position as f64 / rate * 1000.0) as u64)
    }

    /// When a queued shopper should poll again: sooner near the front, never hammering,
    /// and never sooner than `spread_ms` (the sale's poll budget: [`Self::poll_spread_ms`]).
    pub fn poll_after_ms(&self, position: i64, spread_ms: u64) -> u64 {
        let own = self
            .estimated_wait_ms(position)
            .map_or(1000, |wait| wait / 3);
        own.max(spread_ms).clamp(500, MAX_POLL_AFTER_MS)
    }

    /// The interval at which every shopper still waiting on the sale (queued, wait-listed
    /// or holding a unit) polls `budget` times a second in all; 0 without a budget. A
    /// crowd ten times larger is asked to come back ten times later, up to
    /// [`MAX_POLL_AFTER_MS`], rather than poll the door ten times as often.
    pub fn poll_spread_ms(&self, budget: u32) -> u64 {
        if budget == 0 {
            return 0;
        }
        let live = self.live();
        let waiting = live.queued() + live.terms.waitlisted.max(0) + live.terms.reserved.max(0);
        (waiting.max(0) as u64 * 1000 / u64::from(budget)).min(MAX_POLL_AFTER_MS)
    }
}

/// The queue and the stock as this door last saw them (every door reports its view: take
/// the `max` across doors).
fn publish_live(sale: &SaleId, live: &Live) {
    let sale = sale.to_string();
    metrics::gauge!("flashgate_queue_depth_tickets", "sale" => sale.clone())
        .set(live.queued() as f64);
    let terms = &live.terms;
    for (state, units) in [
        ("available", terms.available()),
        ("reserved", terms.reserved),
        ("sold", terms.sold),
    ] {
        metrics::gauge!("flashgate_stock_units", "sale" => sale.clone(), "state" => state)
            .set(units as f64);
    }
}

fn publish_gauges(settings: &Sale) {
    let sale = settings.id.to_string();
    metrics::gauge!("flashgate_admission_rate_per_second", "sale" => sale.clone())
        .set(f64::from(settings.rate_per_second));
    metrics::gauge!("flashgate_admission_burst_tickets", "sale" => sale)
        .set(f64::from(settings.burst));
}
