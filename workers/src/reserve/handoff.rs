//! The second stage of the reservation pipeline: publish each decided batch (statuses,
//! payment task) and answer its deliveries, strictly in the order the batches were
//! decided, while the first stage already decides the next batch. Because the answers
//! go in order, one `multiple` ack answers a whole clean batch.

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

use flashgate_common::amqp::messages::{IssuedTicket, TicketMessage};

use super::decide::Batch;
use super::emit;
use crate::Result;
use crate::context::Context;
use crate::dlq;
use crate::session::{self, Action};

/// Attempts to publish a batch's payment task before its deliveries are requeued instead.
const EMIT_ATTEMPTS: u32 = 5;

/// A batch as the first stage hands it over.
pub(super) struct Handoff {
    /// What was decided and committed (none if the decision failed).
    pub batch: Option<Batch>,
    /// Tickets that can never be decided but came in a message with others: each is
    /// dead-lettered on its own before that message is acked.
    pub strays: Vec<IssuedTicket>,
    /// Every delivery of the batch with its action.
    pub deliveries: Vec<(Delivery, Action)>,
    /// The tickets the deliveries carried (for the trail).
    pub tickets: Vec<IssuedTicket>,
    /// The batch's `reserve_batch` span, whose fields its trail lines carry.
    pub span: tracing::Span,
}

/// Publishes and answers batches in order until the first stage hangs up.
pub(super) async fn emitter(
    ctx: Arc<Context>,
    mut batches: Receiver<Handoff>,
    shutdown: CancellationToken,
) -> Result<()> {
    while let Some(mut handoff) = batches.recv().await {
        let emitted = match &handoff.batch {
            Some(batch) => {
                handoff
                    .span
                    .in_scope(|| super::trail(&handoff.tickets, batch));
                emit_with_retry(&ctx, batch, &shutdown).await
            }
            None => true,
        };
        if !emitted || !bury_strays(&ctx, &handoff.strays).await {
            // Decided but not announced: a redelivery finds the decisions and re-emits.
            for (_, action) in &mut handoff.deliveries {
                if *action == Action::Ack {
                    *action = Action::Requeue;
                }
            }
        }
        acknowledge(handoff.deliveries).await?;
    }
    Ok(())
}

async fn bury_strays(ctx: &Context, strays: &[IssuedTicket]) -> bool {
    for ticket in strays {
        if let Err(e) = dlq::bury(
            ctx,
            &TicketMessage::Issued(ticket.clone()),
            ticket.ticket_id,
        )
        .await
        {
            tracing::warn!(error = ?e, ticket = %ticket.ticket_id, "could not dead-letter a ticket; its message is requeued");
            return false;
        }
    }
    true
}

async fn emit_with_retry(ctx: &Context, batch: &Batch, shutdown: &CancellationToken) -> bool {
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=EMIT_ATTEMPTS {
        match emit::emit(ctx, batch).await {
            Ok(()) => return true,
            Err(e) if attempt < EMIT_ATTEMPTS && !shutdown.is_cancelled() => {
                tracing::warn!(error = ?e, attempt, "payment task not published; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::warn!(error = ?e, "payment task not published; the batch is requeued")
            }
        }
    }
    false
}

/// Acks a clean batch with one frame; otherwise answers each delivery by its action.
async fn acknowledge(deliveries: Vec<(Delivery, Action)>) -> Result<()> {
    if deliveries.iter().all(|(_, action)| *action == Action::Ack) {
        if let Some((last, _)) = deliveries.iter().max_by_key(|(d, _)| d.delivery_tag) {
            last.acker.ack(BasicAckOptions { multiple: true }).await?;
        }
        return Ok(());
    }
    for (delivery, action) in deliveries {
        session::answer(&delivery, action).await?;
    }
    Ok(())
}
