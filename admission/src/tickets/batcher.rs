//! Group commit of tickets to the broker. Every issue hands its ticket to one task that
//! publishes what has gathered as one message and waits for the broker's confirm, with a
//! few such messages in flight at once. A ticket that finds a free slot goes out alone
//! and at once; under load, tickets that arrive while every slot awaits its confirm go
//! out together in the next message. The broker's cost is per message, not per ticket,
//! so the door's rate grows with the load instead of being capped by the broker. Each
//! issue is answered only once the message carrying its ticket is confirmed.

use std::sync::Arc;
use std::time::Instant;

use flashgate_common::amqp::messages::{IssuedTicket, TicketMessage};
use flashgate_common::amqp::{Publisher, message_properties, with_ticket_count};
use flashgate_common::live::Redis;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use super::claim;

/// The broker did not confirm the message that carried the ticket (it was refused,
/// timed out or the connection broke): the ticket stays pending and a retry re-publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotConfirmed;

/// The broker confirmed the ticket; `published` is its sale's shared count of confirmed
/// tickets once it was counted in (`None` if Redis did not answer then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    /// The sale's published count, this ticket included.
    pub published: Option<i64>,
}

struct Waiting {
    ticket: IssuedTicket,
    done: oneshot::Sender<Result<Confirmed, NotConfirmed>>,
}

/// Hands tickets to the publishing task (cheap to clone).
#[derive(Clone)]
pub struct TicketBatcher {
    queue: mpsc::UnboundedSender<Waiting>,
}

/// Where and how the batches go.
pub struct Outlet {
    /// The confirmed publisher.
    pub publisher: Publisher,
    /// Where the pending marks are cleared.
    pub redis: Redis,
    /// The tickets queue.
    pub queue: String,
    /// Most tickets per message.
    pub batch_max: usize,
    /// Messages awaiting confirms at once.
    pub in_flight: usize,
}

impl TicketBatcher {
    /// Starts the publishing task; it ends once every handle is dropped and what was
    /// handed over has been published.
    pub fn start(outlet: Outlet) -> Self {
        let (queue, arrivals) = mpsc::unbounded_channel();
        tokio::spawn(run(Arc::new(outlet), arrivals));
        Self { queue }
    }

    /// Publishes `ticket` and waits for the broker's confirm of the message carrying it.
    pub async fn publish(&self, ticket: IssuedTicket) -> Result<Confirmed, NotConfirmed> {
        let (done, confirmed) = oneshot::channel();
        let waiting = Waiting { ticket, done };
        self.queue.send(waiting).map_err(|_| NotConfirmed)?;
        confirmed.await.unwrap_or(Err(NotConfirmed))
    }
}

async fn run(outlet: Arc<Outlet>, mut arrivals: mpsc::UnboundedReceiver<Waiting>) {
    let slots = Arc::new(Semaphore::new(outlet.in_flight));
    loop {
        // A slot first: while all are taken, arrivals gather into the next message.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::new();
        if arrivals.recv_many(&mut batch, outlet.batch_max).await == 0 {
            return;
        }
        let outlet = outlet.clone();
        tokio::spawn(async move {
            flush(&outlet, batch).await;
            drop(slot);
        });
    }
}

/// Publishes one message, clears its tickets' pending marks, then answers their waiters.
async fn flush(outlet: &Outlet, batch: Vec<Waiting>) {
    let started = Instant::now();
    let size = batch.len();
    let (mut tickets, mut waiters) = (Vec::with_capacity(size), Vec::with_capacity(size));
    for waiting in batch {
        tickets.push(waiting.ticket);
        waiters.push(waiting.done);
    }
    let marks: Vec<_> = tickets
        .iter()
        .map(|t| (t.sale_id.clone(), t.customer_id.clone()))
        .collect();
    // A message of one ticket also carries its request id as the AMQP property; a batch's
    // tickets each carry their own inside.
    let (message_id, request_id) = match tickets.as_slice() {
        [one] => (one.ticket_id, one.request_id.as_deref()),
        _ => (Uuid::now_v7(), None),
    };
    let properties = with_ticket_count(
        message_properties(&message_id.to_string(), request_id),
        size,
    );
    let payload = serde_json::to_vec(&TicketMessage::of(tickets)).unwrap_or_default();
    let outcome = outlet
        .publisher
        .publish("", &outlet.queue, &payload, properties)
        .await
        .map_err(|error| {
            tracing::warn!(error = ?error, tickets = size, "ticket message not confirmed by the broker");
            NotConfirmed
        });
    metrics::histogram!("flashgate_admission_publish_batch_tickets").record(size as f64);
    metrics::histogram!("flashgate_admission_publish_batch_seconds")
        .record(started.elapsed().as_secs_f64());
    // The marks go before the answers: a customer who asks again the moment their 202
    // arrives must find the ticket confirmed (200, the same ticket), not pending (which
    // would publish it again and answer 202 a second time). One attempt only before the
    // answers, so a Redis that stalls now delays them by one timeout at most; the
    // answers do not depend on the marks, and the next attempts come after them.
    let counted = match outcome {
        Ok(()) => claim::confirm_all(&outlet.redis, &marks, 1).await.ok(),
        Err(_) => None,
    };
    let unmarked = outcome.is_ok() && counted.is_none();
    for ((sale, _), waiter) in marks.iter().zip(waiters) {
        let published = counted.as_ref().and_then(|c| c.get(sale).copied());
        // A waiter gone (client hung up) changes nothing: the ticket is queued.
        let _ = waiter.send(outcome.map(|()| Confirmed { published }));
    }
    if unmarked && let Err(e) = claim::confirm_all(&outlet.redis, &marks, 2).await {
        tracing::warn!(error = %e, tickets = size, "confirmed tickets still marked pending; a retry re-publishes them");
    }
}
