//! The reservation consumer. Takes up to `batch_size` tickets (in at most half its
//! prefetch's messages) or waits `batch_wait_ms`,
//! decides the whole batch (whatever sales it spans) in one transaction, then hands it to
//! a second stage that publishes the outcome and acks the batch together, while the next
//! batch is already being decided. Transient failures are retried in place with backoff
//! (the deliveries stay unacked); poison messages go to the dead-letter queue without
//! holding up the rest.

mod batch;
pub mod decide;
mod emit;
mod handoff;
pub mod waitlist;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashgate_common::amqp::messages::{IssuedTicket, TicketMessage};
use lapin::message::Delivery;
use lapin::options::BasicCancelOptions;
use lapin::{Channel, Consumer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::Context;
use crate::{Error, Result, session};
use decide::Batch;
use handoff::Handoff;
use session::Action;

/// Batches decided but not yet published and settled (the pipeline's depth).
const IN_FLIGHT_BATCHES: usize = 2;

/// Runs `reserve_consumers` consumers until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let queue = ctx.amqp.topology().tickets();
    let prefetch = ctx.config.worker.reserve_prefetch;
    let consumers = (0..ctx.config.worker.reserve_consumers).map(|_| {
        let ctx = ctx.clone();
        let stop = shutdown.clone();
        session::consume(
            ctx.amqp.clone(),
            queue.clone(),
            prefetch,
            shutdown.clone(),
            move |channel, consumer| serve(ctx.clone(), channel, consumer, stop.clone()),
        )
    });
    futures_util::future::join_all(consumers).await;
}

/// Two stages: this task decides batch after batch; the emitter publishes and answers
/// them in order behind it.
async fn serve(
    ctx: Arc<Context>,
    channel: Channel,
    mut consumer: Consumer,
    shutdown: CancellationToken,
) -> Result<()> {
    let (stage, batches) = mpsc::channel(IN_FLIGHT_BATCHES);
    let emitter = tokio::spawn(handoff::emitter(ctx.clone(), batches, shutdown.clone()));
    let decided = decide_loop(&ctx, &mut consumer, &stage, &shutdown).await;
    drop(stage);
    let settled = emitter
        .await
        .map_err(|e| Error::Poison(format!("the emitter panicked: {e}")))?;
    decided.and(settled)?;
    channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await?;
    channel.close(200, "shutdown".into()).await?;
    Ok(())
}

async fn decide_loop(
    ctx: &Context,
    consumer: &mut Consumer,
    stage: &mpsc::Sender<Handoff>,
    shutdown: &CancellationToken,
) -> Result<()> {
    let (size, wait) = (ctx.config.worker.batch_size, ctx.config.worker.batch_wait());
    let messages = batch_messages(ctx.config.worker.reserve_prefetch);
    while let Some(deliveries) = batch::collect(consumer, size, messages, wait, shutdown).await? {
        let handoff = decide_deliveries(ctx, deliveries, shutdown).await;
        if stage.send(handoff).await.is_err() {
            return Err(Error::Poison("the emitter stopped".into()));
        }
    }
    Ok(())
}

/// Most deliveries one batch takes: half the consumer's prefetch, so that the broker
/// delivers the next batch while this one is decided and published. A batch that took
/// the whole window left nothing to deliver until it was acked: deciding, publishing
/// and delivering took turns instead of overlapping.
fn batch_messages(prefetch: u16) -> usize {
    (usize::from(prefetch) / 2).max(1)
}

/// Decodes and decides one batch of deliveries, and says what to do with each.
#[tracing::instrument(name = "reserve_batch", skip_all, fields(messages = deliveries.len(), tickets))]
async fn decide_deliveries(
    ctx: &Context,
    deliveries: Vec<Delivery>,
    shutdown: &CancellationToken,
) -> Handoff {
    let started = Instant::now();
    let mut actions = vec![Action::Ack; deliveries.len()];
    let mut tickets: Vec<IssuedTicket> = Vec::with_capacity(deliveries.len());
    // Which delivery carried each ticket, and whether it carried others too.
    let mut owners: HashMap<Uuid, (usize, bool)> = HashMap::with_capacity(deliveries.len());
    for (i, delivery) in deliveries.iter().enumerate() {
        match serde_json::from_slice::<TicketMessage>(&delivery.data) {
            Ok(message) => {
                let carried = message.into_tickets();
                let shared = carried.len() > 1;
                for ticket in carried {
                    owners.insert(ticket.ticket_id, (i, shared));
                    tickets.push(ticket);
                }
            }
            Err(e) => {
                metrics::counter!("flashgate_worker_poison_messages_total", "queue" => "tickets")
                    .increment(1);
                tracing::error!(error = %e, tag = delivery.delivery_tag, "undecodable ticket message: dead-lettering it");
                actions[i] = Action::DeadLetter;
            }
        }
    }
    tracing::Span::current().record("tickets", tickets.len());
    let lookup = if deliveries.iter().any(|d| d.redelivered) {
        decide::Lookup::First
    } else {
        decide::Lookup::OnConflict
    };
    let mut strays = Vec::new();
    let batch = match decide_isolating(ctx, &tickets, lookup, shutdown).await {
        Ok(batch) => {
            for ticket in &batch.unknown {
                tracing::error!(%ticket, "ticket that can never be decided: dead-lettering it");
                match owners.get(ticket) {
                    // Alone in its message: the message goes.
                    Some((i, false)) => actions[*i] = Action::DeadLetter,
                    // Among others: it goes alone, the others stay decided.
                    Some((_, true)) => {
                        strays.extend(tickets.iter().find(|t| t.ticket_id == *ticket).cloned())
                    }
                    None => {}
                }
            }
            Some(batch)
        }
        Err(e) => {
            let action = if e.is_transient() {
                Action::Requeue
            } else {
                Action::DeadLetter
            };
            tracing::error!(error = ?e, ?action, "batch not decided");
            owners.values().for_each(|(i, _)| actions[*i] = action);
            None
        }
    };
    metrics::histogram!("flashgate_reserve_batch_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("flashgate_reserve_batch_tickets").record(tickets.len() as f64);
    Handoff {
        batch,
        strays,
        deliveries: deliveries.into_iter().zip(actions).collect(),
        tickets,
        span: tracing::Span::current(),
    }
}

/// One trail line per ticket decided (promotions from the wait-list included), with the
/// request id the door put in the ticket. The emitter writes them, before it publishes
/// the batch (so a ticket's "decided" comes before its "payment started"), while the
/// next batch is decided: on the deciding stage a line for each of a batch's thousands
/// of tickets held up the next batch.
fn trail(tickets: &[IssuedTicket], batch: &Batch) {
    if !tracing::enabled!(target: flashgate_common::trail::TARGET, tracing::Level::INFO) {
        return;
    }
    let requests: HashMap<Uuid, &str> = tickets
        .iter()
        .filter_map(|t| Some((t.ticket_id, t.request_id.as_deref()?)))
        .collect();
    for sale in &batch.sales {
        for outcome in &sale.tickets {
            flashgate_common::trail::decided(
                outcome.ticket,
                &sale.sale,
                outcome.status,
                outcome.order_id,
                requests.get(&outcome.ticket).copied(),
            );
        }
    }
}

/// Decides `tickets`; when the database refuses them for good, decides each half on its
/// own, down to the single tickets that cannot be decided, which are reported with the
/// batch's unknown ones: one bad ticket never sinks the others. Halves keep their order.
async fn decide_isolating(
    ctx: &Context,
    tickets: &[IssuedTicket],
    lookup: decide::Lookup,
    shutdown: &CancellationToken,
) -> Result<Batch> {
    match decide_with_retry(ctx, tickets, lookup, shutdown).await {
        Err(e) if !e.is_transient() && tickets.len() > 1 => {
            tracing::warn!(error = ?e, tickets = tickets.len(), "batch refused; deciding its halves apart");
            let (first, second) = tickets.split_at(tickets.len() / 2);
            let mut batch = Box::pin(decide_isolating(ctx, first, lookup, shutdown)).await?;
            let rest = Box::pin(decide_isolating(ctx, second, lookup, shutdown)).await?;
            batch.sales.extend(rest.sales);
            batch.unknown.extend(rest.unknown);
            Ok(batch)
        }
        Err(e) if !e.is_transient() => {
            tracing::error!(error = ?e, ticket = ?tickets.first().map(|t| t.ticket_id), "ticket refused for good");
            Ok(Batch {
                sales: Vec::new(),
                unknown: tickets.iter().map(|t| t.ticket_id).collect(),
            })
        }
        decided => decided,
    }
}

async fn decide_with_retry(
    ctx: &Context,
    tickets: &[IssuedTicket],
    lookup: decide::Lookup,
    shutdown: &CancellationToken,
) -> Result<Batch> {
    if tickets.is_empty() {
        return Ok(Batch::default());
    }
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match decide::decide(&ctx.pool, tickets, lookup).await {
            Ok(batch) => return Ok(batch),
            Err(e)
                if e.is_transient()
                    && started.elapsed() < crate::error::TRANSIENT_PATIENCE
                    && !shutdown.is_cancelled() =>
            {
                metrics::counter!("flashgate_worker_transient_retries_total", "queue" => "tickets")
                    .increment(1);
                tracing::warn!(error = ?e, ?delay, "transient failure deciding a batch; retrying");
                shutdown
                    .run_until_cancelled(tokio::time::sleep(delay))
                    .await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}
