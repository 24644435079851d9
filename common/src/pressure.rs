//! The door's word to the work behind the queue: "I am behind; hold back" (issue 18).
//!
//! The worker and the webhook receiver run at a lower CPU priority than the door
//! ([`crate::priority`]), but the work they ask of PostgreSQL and of Stripe's side runs at
//! those processes' own priority. In a spike of 16,126 arrivals a second on two cores the
//! shoppers' p99 to a first answer was 68 ms with the workers paused and 2.6 s with them
//! running (`loadtest/results/first-second-20261204-221605.md`); most of it the shoppers'
//! side (the load driver) starting late for want of a core (`-223741`: started up to 2.0 s
//! late, p99, of a 2.3 s p99), the door itself seldom 25 ms behind.
//!
//! So a door whose runtime falls behind while a crowd arrives can say so: a timer it sets
//! for [`PROBE`] fires `admission.pressure_lag_ms` late or later when the door's threads
//! wait for a core, and arrivals came in meanwhile (late with only polls to answer, as
//! while the payments catch up after a spike, holding them back would only delay the
//! verdicts of the shoppers waiting on them). It then sets a key in Redis that lasts
//! [`HOLD`] (renewed while it stays behind), and while any door's key is there the
//! workers take up payments at no more than `worker.pressed_payments_per_second`
//! ([`Pressure::turn`]). Reservations are not held back: they give every shopper a
//! verdict, thousands to a transaction. The payments catch up once no door is behind. A
//! Redis that does not answer reads as no pressure: the signal can slow the workers, never
//! stop them.
//!
//! Off by default (`admission.pressure_lag_ms` 0), after an A/B of the 20× step alone at a
//! pinned 18,000 arrivals a second (`loadtest/README.md` History): p99 575 ms without the
//! signal; 178 ms with a first form that counted any late timer, which kept the payments
//! held back while they caught up after the burst and left 29,300 shoppers without a
//! verdict at their 60 s deadline; 2,504 and 725 ms with this form, every shopper final.
//! Within the runs' spread, so no default this turn could defend.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::live::Redis;

/// How long the door's probe timer is set for.
pub const PROBE: Duration = Duration::from_millis(10);
/// How long one signal of the door lasts.
pub const HOLD: Duration = Duration::from_millis(1000);
/// The door renews its signal at most this often while it stays behind.
const RENEW: Duration = Duration::from_millis(250);
/// How often a worker reads whether a door is behind.
const READ_EVERY: Duration = Duration::from_millis(100);

/// Runs the door's probe until `shutdown`: every [`PROBE`], whether its timer fired `lag`
/// late or later while arrivals came in (`arrivals`, a running count of the arrivals it
/// served, moved); if so the door tells the workers (0: never). Late with no arrivals (a door serving only
/// polls while the payments catch up) is not behind on anything the signal would help.
pub async fn probe_door(
    redis: Redis,
    lag: Duration,
    arrivals: impl Fn() -> u64,
    shutdown: CancellationToken,
) {
    if lag.is_zero() {
        return;
    }
    let signals = metrics::counter!("flashgate_admission_pressure_signals_total");
    let mut last_signal: Option<Instant> = None;
    let mut seen = arrivals();
    loop {
        let set = Instant::now();
        if shutdown
            .run_until_cancelled(tokio::time::sleep(PROBE))
            .await
            .is_none()
        {
            return;
        }
        let late = set.elapsed().saturating_sub(PROBE);
        let (before, now) = (seen, arrivals());
        seen = now;
        if !behind(late, lag, now > before) || last_signal.is_some_and(|at| at.elapsed() < RENEW) {
            continue;
        }
        last_signal = Some(Instant::now());
        signals.increment(1);
        tracing::debug!(
            late_ms = late.as_millis() as u64,
            "the door is behind: the workers hold back"
        );
        // Not awaited here: a slow Redis must not stop the probe.
        tokio::spawn(signal(redis.clone()));
    }
}

/// Whether a door is behind: its timer fired `lag` late or later while arrivals came in.
fn behind(late: Duration, lag: Duration, arriving: bool) -> bool {
    arriving && late >= lag
}

/// Sets the door's signal for [`HOLD`].
async fn signal(redis: Redis) {
    let key = redis.keys().door_pressed();
    let set: redis::RedisResult<()> = redis::cmd("SET")
        .arg(&key)
        .arg(1)
        .arg("PX")
        .arg(HOLD.as_millis() as u64)
        .query_async(&mut redis.conn())
        .await;
    if let Err(e) = set {
        tracing::debug!(error = %e, "could not tell the workers the door is behind");
    }
}

/// Whether a door is behind, as a worker follows it, and the pace of the work it holds
/// back meanwhile.
#[derive(Debug)]
pub struct Pressure {
    pressed: watch::Receiver<bool>,
    /// Time between two turns while pressed (`None`: never held back).
    spacing: Option<Duration>,
    /// The next free turn.
    next: Mutex<Instant>,
}

impl Pressure {
    /// Follows the doors' signal in Redis until `shutdown`, letting `per_second` turns
    /// a second through while a door is behind (0: never holds back, reads nothing).
    pub fn follow(redis: Redis, per_second: u32, shutdown: CancellationToken) -> Arc<Self> {
        let (tx, rx) = watch::channel(false);
        if per_second > 0 {
            tokio::spawn(read(redis, tx, shutdown));
        }
        Arc::new(Self::new(rx, per_second))
    }

    /// Turns paced at `per_second` while `pressed` says so.
    pub fn new(pressed: watch::Receiver<bool>, per_second: u32) -> Self {
        Self {
            pressed,
            spacing: (per_second > 0).then(|| Duration::from_secs(1) / per_second),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Whether a door is behind now.
    pub fn pressed(&self) -> bool {
        *self.pressed.borrow()
    }

    /// Waits for this piece of work's turn: at once unless a door is behind, and then
    /// until the next of the paced turns or until no door is behind, whichever is first.
    pub async fn turn(&self) {
        let Some(spacing) = self.spacing else { return };
        if !self.pressed() {
            return;
        }
        let slot = {
            let Ok(mut next) = self.next.lock() else {
                return;
            };
            let slot = (*next).max(Instant::now());
            *next = slot + spacing;
            slot
        };
        let mut pressed = self.pressed.clone();
        let waited = Instant::now();
        tokio::select! {
            () = tokio::time::sleep_until(slot) => {}
            // Also when the reader stopped (Err): nothing holds the work back then.
            _ = pressed.wait_for(|p| !*p) => {
                // The turns handed out ahead are void: the next time a door is behind
                // starts from then, not after them.
                if let Ok(mut next) = self.next.lock() {
                    *next = Instant::now();
                }
            }
        }
        metrics::histogram!("flashgate_worker_pressure_wait_seconds")
            .record(waited.elapsed().as_secs_f64());
    }
}

/// Reads the doors' signal every [`READ_EVERY`]; an error reads as no signal.
async fn read(redis: Redis, tx: watch::Sender<bool>, shutdown: CancellationToken) {
    let key = redis.keys().door_pressed();
    let gauge = metrics::gauge!("flashgate_worker_door_pressed");
    loop {
        let exists: redis::RedisResult<bool> = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut redis.conn())
            .await;
        let pressed = exists.unwrap_or(false);
        gauge.set(if pressed { 1.0 } else { 0.0 });
        tx.send_if_modified(|now| std::mem::replace(now, pressed) != pressed);
        if shutdown
            .run_until_cancelled(tokio::time::sleep(READ_EVERY))
            .await
            .is_none()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Turns taken by `n` tasks at once, as offsets from the start (paused clock).
    async fn turns(pressure: &Arc<Pressure>, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let pressure = pressure.clone();
                tokio::spawn(async move {
                    pressure.turn().await;
                    start.elapsed()
                })
            })
            .collect();
        let mut at = Vec::new();
        for task in tasks {
            at.push(task.await.unwrap());
        }
        at.sort();
        at
    }

    #[tokio::test(start_paused = true)]
    async fn no_door_behind_lets_every_turn_through_at_once() {
        let (_tx, rx) = watch::channel(false);
        let pressure = Arc::new(Pressure::new(rx, 10));
        assert_eq!(turns(&pressure, 5).await, vec![Duration::ZERO; 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_door_behind_paces_the_turns_until_it_is_not() {
        let (tx, rx) = watch::channel(true);
        let pressure = Arc::new(Pressure::new(rx, 10));
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(turns(&pressure, 3).await, vec![ms(0), ms(100), ms(200)]);
        // The next free turn is 300 ms from the first; told the door caught up at 50 ms,
        // the waiting turns go at once.
        let waiting = {
            let pressure = pressure.clone();
            tokio::spawn(async move { turns(&pressure, 4).await })
        };
        tokio::time::sleep(ms(50)).await;
        tx.send(false).unwrap();
        assert!(waiting.await.unwrap().iter().all(|at| *at <= ms(50)));
        // Behind again at once: the first turn is now, not after the turns handed out
        // the last time (up to 600 ms ahead).
        tx.send(true).unwrap();
        assert_eq!(turns(&pressure, 2).await, vec![ms(0), ms(100)]);
    }

    #[tokio::test(start_paused = true)]
    async fn no_pace_set_never_holds_back() {
        let (_tx, rx) = watch::channel(true);
        let pressure = Arc::new(Pressure::new(rx, 0));
        assert_eq!(turns(&pressure, 3).await, vec![Duration::ZERO; 3]);
    }

    #[test]
    fn a_door_is_behind_only_when_late_while_arrivals_come_in() {
        let ms = |v: u64| Duration::from_millis(v);
        assert!(behind(ms(5), ms(5), true));
        assert!(behind(ms(90), ms(5), true));
        assert!(!behind(ms(4), ms(5), true), "on time");
        assert!(
            !behind(ms(90), ms(5), false),
            "late, serving polls only: the payments catching up are not held back"
        );
    }

    fn redis() -> Redis {
        let mut config = crate::Config::default();
        config.redis.prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
        Redis::connect(&config.redis).unwrap()
    }

    async fn until_pressed(pressure: &Pressure, want: bool) {
        let mut rx = pressure.pressed.clone();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|p| *p == want))
            .await
            .expect("the worker's view of the door within 10 s")
            .unwrap();
    }

    /// A door whose runtime cannot run its timer (a task blocks its only thread, as a
    /// starved core would) tells a worker, whose view clears once the signal lapses.
    #[tokio::test(flavor = "current_thread")]
    async fn a_door_that_falls_behind_is_seen_by_the_workers_until_its_signal_lapses() {
        let redis = redis();
        let stop = CancellationToken::new();
        let pressure = Pressure::follow(redis.clone(), 10, stop.clone());
        until_pressed(&pressure, false).await;
        let stop_probe = CancellationToken::new();
        let arrivals = std::sync::atomic::AtomicU64::new(0);
        // A crowd arriving: the count moves between any two looks.
        let arriving = move || arrivals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let probe = tokio::spawn(probe_door(
            redis.clone(),
            Duration::from_millis(25),
            arriving,
            stop_probe.clone(),
        ));
        // Hold the runtime's only thread for 100 ms at a time, letting the other tasks
        // run in between, until the worker sees the door behind.
        let starve = async {
            loop {
                tokio::task::yield_now().await;
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        tokio::select! {
            () = until_pressed(&pressure, true) => {}
            () = starve => {}
        }
        // A probe stopped renews nothing: the signal lapses after `HOLD`.
        stop_probe.cancel();
        probe.await.unwrap();
        until_pressed(&pressure, false).await;
        stop.cancel();
        let _: () = redis::cmd("DEL")
            .arg(redis.keys().door_pressed())
            .query_async(&mut redis.conn())
            .await
            .unwrap();
    }
}
