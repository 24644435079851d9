//! The dispatcher: takes jobs off the queue, applies the webhook faults (drop,
//! duplicate, delay, reorder) in force when the batch's first job was queued, and hands
//! deliveries to tasks; drains them on shutdown.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::{Courier, Job};
use crate::Faults;

/// Runs until shutdown (or until the queue closes), then waits for deliveries in
/// flight; deliveries waiting to retry stop at shutdown.
pub(crate) async fn run(courier: Courier, mut queue: UnboundedReceiver<Job>) {
    while let Some(first) = next(&courier, &mut queue, None).await {
        let faults = first.faults.clone();
        let mut batch = vec![first];
        if faults.webhook_reorder {
            let window = Duration::from_millis(faults.webhook_reorder_window_ms);
            gather(&courier, &mut queue, &mut batch, window).await;
            batch.reverse();
        }
        if faults.webhook_drop {
            tracing::debug!(jobs = batch.len(), "webhook_drop: deliveries discarded");
            continue;
        }
        if faults.webhook_duplicate {
            batch = batch
                .into_iter()
                .flat_map(|job| [job.clone(), job])
                .collect();
        }
        dispatch(&courier, batch, &faults);
    }
    courier.tracker.close();
    courier.tracker.wait().await;
}

/// Adds to `batch` every job queued within `window`.
async fn gather(
    courier: &Courier,
    queue: &mut UnboundedReceiver<Job>,
    batch: &mut Vec<Job>,
    window: Duration,
) {
    let deadline = Instant::now() + window;
    while let Some(job) = next(courier, queue, Some(deadline)).await {
        batch.push(job);
    }
}

/// Hands the batch to delivery tasks: one per job, or one in-order task when reordering.
fn dispatch(courier: &Courier, batch: Vec<Job>, faults: &Faults) {
    let delay = Duration::from_millis(faults.webhook_delay_ms);
    if faults.webhook_reorder {
        courier
            .tracker
            .spawn(courier.clone().deliver_in_order(batch, delay));
        return;
    }
    for job in batch {
        courier.tracker.spawn(courier.clone().deliver(job, delay));
    }
}

/// The next job, or `None` at shutdown, when the queue closes or at `deadline`.
async fn next(
    courier: &Courier,
    queue: &mut UnboundedReceiver<Job>,
    deadline: Option<Instant>,
) -> Option<Job> {
    let until = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = courier.shutdown.cancelled() => None,
        () = until => None,
        job = queue.recv() => job,
    }
}
