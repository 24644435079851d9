//! Request coalescing ("single flight"): concurrent calls with one key in this process
//! share one run of the work; the first starts it, the others await its result. The work
//! runs in its own task, so a caller that goes away (a client disconnecting) cannot leave
//! it half-done: a ticket claim is always confirmed or rolled back, a cache fill always
//! completes for the others waiting on it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

type SharedWork<T> = Shared<BoxFuture<'static, T>>;

/// Work in flight, by key.
pub struct InFlight<T: Clone + Send + Sync + 'static> {
    work: Arc<Mutex<HashMap<String, SharedWork<T>>>>,
}

impl<T: Clone + Send + Sync + 'static> Default for InFlight<T> {
    fn default() -> Self {
        Self {
            work: Arc::default(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> InFlight<T> {
    /// Runs `work` for `key` unless the same key is already running, and returns its
    /// result and whether this call started it. `failed` stands in for a task that died.
    pub async fn run<F>(&self, key: String, work: F, failed: T) -> (T, bool)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let (shared, leader) = {
            let mut map = self.work.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&key) {
                Some(running) => (running.clone(), false),
                None => {
                    let registry = self.work.clone();
                    let task_key = key.clone();
                    let task = tokio::spawn(async move {
                        let result = work.await;
                        registry
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&task_key);
                        result
                    });
                    let shared = task
                        .map(move |joined| joined.unwrap_or(failed))
                        .boxed()
                        .shared();
                    map.insert(key, shared.clone());
                    (shared, true)
                }
            }
        };
        (shared.await, leader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_calls_with_one_key_run_the_work_once() {
        let inflight = InFlight::<usize>::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let calls = (0..20).map(|_| {
            let (runs, gate) = (runs.clone(), gate.clone());
            let work = async move {
                gate.notified().await;
                runs.fetch_add(1, Ordering::SeqCst) + 1
            };
            inflight.run("k".into(), work, 0)
        });
        // join_all polls every call once (all register) before the gate opens.
        let (results, ()) = tokio::join!(futures_util::future::join_all(calls), async {
            gate.notify_one();
        });
        assert!(results.iter().all(|(value, _)| *value == 1));
        assert_eq!(results.iter().filter(|(_, leader)| *leader).count(), 1);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(inflight.work.lock().unwrap().is_empty());
    }
}
