//! A customer's ticket when Redis has lost what it knew of the sale (a restart without
//! persistence, a failover that lost the last writes): found in PostgreSQL, where every
//! decided ticket is, and put back into Redis, so a shopper who holds a ticket is never
//! told "sold out". PostgreSQL is asked only when Redis shows the loss (the sale's
//! sequence counter is gone although tickets were decided), so a refusal stays one Redis
//! round trip in the common case.

use chrono::Utc;
use flashgate_common::domain::CustomerId;

use super::claim::{self, Held};
use crate::Result;
use crate::sales::SaleHandle;
use crate::state::AppState;
use crate::ticket_token::TicketClaims;

/// The ticket `customer` holds in `sale`: Redis's, or after a loss PostgreSQL's.
pub(super) async fn held(
    state: &AppState,
    sale: &SaleHandle,
    customer: &CustomerId,
) -> Result<Option<Held>> {
    let sale_id = sale.id();
    let (held, counter_kept) = claim::held_by(&state.redis, &sale_id, customer).await?;
    if held.is_some() || counter_kept || sale.live().terms.decided == 0 {
        return Ok(held);
    }
    let ticket = claim::ticket_id(&sale_id, customer);
    let Some(seq) = sqlx::query_scalar!("SELECT seq FROM tickets WHERE id = $1", ticket)
        .fetch_optional(&state.pool)
        .await?
    else {
        return Ok(None);
    };
    let token = state.signer.sign(&TicketClaims {
        sale: sale_id.clone(),
        ticket,
        expires_at: Utc::now().timestamp() + state.config.admission.ticket_ttl_secs as i64,
    });
    claim::restore(&state.redis, &sale_id, customer, &token, seq).await?;
    metrics::counter!("flashgate_tickets_recovered_total").increment(1);
    Ok(Some(Held {
        token,
        seq,
        pending: false,
    }))
}
