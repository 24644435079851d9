//! Delivering one job: signed POST attempts with exponential backoff, each recorded.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Job, signature};
use crate::model::DeliveryAttempt;
use crate::{Sim, ids};

/// Deliveries in flight at once: enough to keep a slow endpoint from stalling the
/// others, few enough not to swamp a test's receiver (and the 2-core machine).
const MAX_CONCURRENT_ATTEMPTS: usize = 16;
/// How long an endpoint may take to answer before the attempt counts as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a delivery task needs; cheap to clone into each task.
#[derive(Clone)]
pub(crate) struct Courier {
    sim: Sim,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
    pub(super) tracker: TaskTracker,
    pub(super) shutdown: CancellationToken,
}

impl Courier {
    /// A courier for `sim`'s events that stops retrying once `shutdown` is cancelled.
    pub(crate) fn new(sim: Sim, shutdown: CancellationToken) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .build()?;
        let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_ATTEMPTS));
        Ok(Self {
            sim,
            http,
            permits,
            tracker: TaskTracker::new(),
            shutdown,
        })
    }

    /// Holds `delay`, then delivers `job` until it succeeds or attempts run out.
    pub(super) async fn deliver(self, job: Job, delay: Duration) {
        if self.pause(delay).await {
            self.keep_trying(job, 1).await;
        }
    }

    /// Holds `delay` once (every job of the batch is that late, not later for its
    /// place), then makes the first attempts strictly in the given order (for
    /// reordering); retries run apart.
    pub(super) async fn deliver_in_order(self, jobs: Vec<Job>, delay: Duration) {
        if !self.pause(delay).await {
            return;
        }
        for job in jobs {
            if self.shutdown.is_cancelled() {
                return;
            }
            if self.attempt(&job, 1).await || self.max_attempts() <= 1 {
                continue;
            }
            let courier = self.clone();
            self.tracker.spawn(async move {
                if courier.pause(courier.backoff(1)).await {
                    courier.keep_trying(job, 2).await;
                }
            });
        }
    }

    async fn keep_trying(&self, job: Job, first: u32) {
        let mut attempt = first;
        while !self.attempt(&job, attempt).await && attempt < self.max_attempts() {
            if !self.pause(self.backoff(attempt)).await {
                return;
            }
            attempt += 1;
        }
    }

    /// One signed POST; records it and says whether the endpoint answered 2xx.
    async fn attempt(&self, job: &Job, attempt: u32) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let (status, error) = self.post(job).await;
        let succeeded = status.is_some_and(|s| (200..300).contains(&s));
        tracing::debug!(event = %job.event_id, url = %job.endpoint.url, attempt, ?status, "webhook attempt");
        let url = job.endpoint.url.clone();
        let record = DeliveryAttempt {
            url,
            attempt,
            status,
            error,
            succeeded,
            at: ids::now(),
        };
        let gave_up = !succeeded && attempt >= self.max_attempts();
        self.sim
            .state()
            .record_attempt(&job.event_id, record, gave_up);
        self.sim.attempt_recorded();
        succeeded
    }

    /// Sends the payload, freshly signed: the status answered, or the transport error.
    async fn post(&self, job: &Job) -> (Option<u16>, Option<String>) {
        let signature = signature::header(&job.endpoint.secret, ids::now(), &job.body);
        let sent = self
            .http
            .post(&job.endpoint.url)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .header(USER_AGENT, "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
            .header("Stripe-Signature", signature)
            .body(job.body.to_string())
            .send()
            .await;
        match sent {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(err) => (None, Some(err.to_string())),
        }
    }

    /// Sleeps `delay`; false if shutdown interrupted it.
    pub(super) async fn pause(&self, delay: Duration) -> bool {
        if delay.is_zero() {
            return !self.shutdown.is_cancelled();
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    /// Wait after failed attempt `n`: base × 2^(n−1), capped.
    fn backoff(&self, n: u32) -> Duration {
        let state = self.sim.state();
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        let wait = state.config.webhook_retry_base.saturating_mul(factor);
        wait.min(state.config.webhook_retry_cap)
    }

    fn max_attempts(&self) -> u32 {
        self.sim.state().config.webhook_max_attempts.max(1)
    }
}
