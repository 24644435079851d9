//! The payment side of an order: claiming it for payment (from then on a PaymentIntent
//! may exist at Stripe), storing its PaymentIntent (`reserved` → `payment_pending`),
//! finding orders whose payment task was lost, and leasing the Stripe side effects an
//! order still owes (a cancel, a refund). How a payment ends is `apply_intent`'s.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::unpublished::Owed;
use crate::domain::{OrderStatus, SaleId};

/// An order claimed for payment: what its PaymentIntent is made from.
#[derive(Debug, Clone)]
pub struct PaymentClaim {
    /// Amount in minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// Its sale.
    pub sale_id: SaleId,
    /// Its ticket.
    pub ticket_id: Uuid,
    /// Its customer.
    pub customer_id: String,
    /// A saved payment method to confirm with at once, if the ticket carried one.
    pub payment_method: Option<String>,
    /// When a PaymentIntent was first asked for (the idempotency key's age).
    pub requested_at: DateTime<Utc>,
}

/// Claims a `reserved` order whose hold is alive for payment, recording (once) that a
/// PaymentIntent may exist from now on. An order with a saved card that was waiting for
/// the workers (up to `wait_secs` past its hold: `worker.hold_extension_max_secs`) is claimed
/// too, and its hold counts the sale's hold from now: the shopper's time to act (a 3-D
/// Secure step) starts when the payment does. `None` when the order is past this step or
/// its hold ran out.
pub async fn claim_payment(
    db: &PgPool,
    order_id: Uuid,
    wait_secs: f64,
) -> sqlx::Result<Option<PaymentClaim>> {
    let row = sqlx::query!(
        r#"UPDATE orders SET pi_requested_at = COALESCE(pi_requested_at, now()), updated_at = now(),
               hold_expires_at = CASE
                   WHEN pi_requested_at IS NULL AND payment_method IS NOT NULL THEN GREATEST(
                       hold_expires_at,
                       now() + (SELECT make_interval(secs => s.hold_seconds) FROM sales s
                                WHERE s.id = orders.sale_id))
                   ELSE hold_expires_at END
           WHERE id = $1 AND status = 'reserved'
             AND (hold_expires_at > now()
                  OR (pi_requested_at IS NULL AND payment_method IS NOT NULL
                      AND hold_expires_at > now() - make_interval(secs => $2)))
           RETURNING amount, currency, sale_id AS "sale_id: SaleId", ticket_id, customer_id, payment_method,
                     pi_requested_at AS "requested_at!""#,
        order_id,
        wait_secs
    )
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(PaymentClaim {
            amount: r.amount,
            currency: r.currency,
            sale_id: r.sale_id,
            ticket_id: r.ticket_id,
            customer_id: r.customer_id,
            payment_method: r.payment_method,
            requested_at: r.requested_at,
        })
    })
    .transpose()
}

/// Stores an order's PaymentIntent and moves a `reserved` order to `payment_pending`;
/// returns the order's status afterwards (a webhook may have moved it further already)
/// and when its hold runs out. A `payment_pending` order's ticket is kept for the sweep
/// by the same statement ([`super::unpublished::owe`]): a redelivered payment task finds
/// the order moved on and publishes nothing, so a worker dying before its Redis write
/// would leave a shopper who must confirm without the client secret to do it.
pub async fn start_payment(
    db: &PgPool,
    order_id: Uuid,
    payment_intent_id: &str,
    client_secret: Option<&str>,
) -> sqlx::Result<(Option<OrderStatus>, DateTime<Utc>, Owed)> {
    let stored = sqlx::query!(
        r#"WITH stored AS (
               UPDATE orders SET payment_intent_id = COALESCE(payment_intent_id, $2),
                   client_secret = COALESCE(client_secret, $3),
                   status = CASE WHEN status = 'reserved' THEN 'payment_pending' ELSE status END,
                   updated_at = now()
               WHERE id = $1
               RETURNING ticket_id, status, hold_expires_at),
           kept AS (
               INSERT INTO unpublished_tickets (ticket_id)
               SELECT ticket_id FROM stored WHERE status = 'payment_pending'
               ON CONFLICT (ticket_id) DO UPDATE SET since = clock_timestamp()
               RETURNING ticket_id, since)
           SELECT s.status, s.hold_expires_at, k.ticket_id AS "kept?", k.since AS "since?"
           FROM stored s LEFT JOIN kept k ON true"#,
        order_id,
        payment_intent_id,
        client_secret
    )
    .fetch_one(db)
    .await?;
    let owed = Owed::kept(stored.kept.zip(stored.since));
    Ok((
        OrderStatus::parse(&stored.status),
        stored.hold_expires_at,
        owed,
    ))
}

/// Orders still `reserved`, no PaymentIntent asked for, unchanged for `after_secs` and
/// with their hold alive (or, with a saved card, waiting for the workers up to
/// `wait_secs` past it): up to `limit` of them, touched so the next sweep skips them
/// (their payment task is published again by the caller before it commits).
pub async fn unasked(
    tx: &mut PgConnection,
    after_secs: f64,
    wait_secs: f64,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        r#"UPDATE orders SET updated_at = now()
           WHERE id IN (SELECT id FROM orders
                        WHERE status = 'reserved' AND pi_requested_at IS NULL
                          AND updated_at < now() - make_interval(secs => $1)
                          AND (hold_expires_at > now()
                               OR (payment_method IS NOT NULL
                                   AND hold_expires_at > now() - make_interval(secs => $3)))
                        ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING id"#,
        after_secs,
        limit,
        wait_secs
    )
    .fetch_all(&mut *tx)
    .await
}

/// A Stripe side effect an order owes.
#[derive(Debug, Clone)]
pub struct Effect {
    /// The order.
    pub id: Uuid,
    /// A refund (`refund_pending`); otherwise a cancel of its PaymentIntent.
    pub refund: bool,
    /// Its PaymentIntent, if stored.
    pub payment_intent_id: Option<String>,
    /// When a PaymentIntent was first asked for, if ever.
    pub pi_requested_at: Option<DateTime<Utc>>,
}

/// Leases up to `limit` due side effects for 60 s (another sweeper takes them over if
/// this one dies before it is done).
pub async fn lease_effects(db: &PgPool, limit: i64) -> sqlx::Result<Vec<Effect>> {
    let rows = sqlx::query!(
        r#"UPDATE orders SET effect_leased_at = now()
           WHERE id IN (SELECT id FROM orders
                        WHERE (cancel_pending OR status = 'refund_pending')
                          AND (effect_leased_at IS NULL OR effect_leased_at < now() - interval '60 seconds')
                        ORDER BY updated_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, status, payment_intent_id, pi_requested_at"#,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Effect {
            id: r.id,
            refund: r.status == "refund_pending",
            payment_intent_id: r.payment_intent_id,
            pi_requested_at: r.pi_requested_at,
        })
        .collect())
}

/// An order whose hold was extended, as its shopper is shown it again.
#[derive(Debug, Clone)]
pub struct Extended {
    /// Its sale.
    pub sale_id: SaleId,
    /// Its ticket.
    pub ticket_id: Uuid,
    /// Its PaymentIntent.
    pub payment_intent_id: Option<String>,
    /// The client secret, when the shopper confirms (no saved payment method).
    pub client_secret: Option<String>,
    /// When the hold runs out now.
    pub hold_expires_at: DateTime<Utc>,
}

/// Extends the expired hold of a `payment_pending` order waiting for its cancel (its
/// payment is in progress at Stripe): to `step_secs` from now, never past its creation
/// plus the sale's hold plus `max_secs`, and takes back the cancel. `None` when the
/// bound leaves less than a second (the cancel goes ahead).
pub async fn extend_hold(
    db: &PgPool,
    order_id: Uuid,
    step_secs: f64,
    max_secs: f64,
) -> sqlx::Result<Option<Extended>> {
    let row = sqlx::query!(
        r#"UPDATE orders o
           SET hold_expires_at = LEAST(now() + make_interval(secs => $2),
                                       o.created_at + make_interval(secs => s.hold_seconds + $3::float8)),
               cancel_pending = false, effect_leased_at = NULL, updated_at = now()
           FROM sales s
           WHERE o.id = $1 AND s.id = o.sale_id AND o.cancel_pending AND o.status = 'payment_pending'
             AND o.created_at + make_interval(secs => s.hold_seconds + $3::float8) > now() + interval '1 second'
           RETURNING o.sale_id AS "sale_id: SaleId", o.ticket_id, o.payment_intent_id, o.client_secret,
                     o.payment_method, o.hold_expires_at"#,
        order_id,
        step_secs,
        max_secs
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Extended {
        sale_id: r.sale_id,
        ticket_id: r.ticket_id,
        payment_intent_id: r.payment_intent_id,
        client_secret: r.client_secret.filter(|_| r.payment_method.is_none()),
        hold_expires_at: r.hold_expires_at,
    }))
}

/// A unit held for a shopper who confirms the payment themselves.
#[derive(Debug, Clone)]
pub struct ShopperHold {
    /// The order.
    pub id: Uuid,
    /// Its sale.
    pub sale_id: SaleId,
    /// Its ticket.
    pub ticket_id: Uuid,
}

/// Up to `limit` live holds waiting for their shopper's own payment (no saved payment
/// method), by order id after `after` (a sweep walks all of them in turns).
pub async fn shopper_holds(db: &PgPool, after: Uuid, limit: i64) -> sqlx::Result<Vec<ShopperHold>> {
    let rows = sqlx::query!(
        r#"SELECT id, sale_id AS "sale_id: SaleId", ticket_id FROM orders
           WHERE status = 'payment_pending' AND payment_method IS NULL AND NOT cancel_pending
             AND hold_expires_at > now() AND id > $1
           ORDER BY id LIMIT $2"#,
        after,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ShopperHold {
            id: r.id,
            sale_id: r.sale_id,
            ticket_id: r.ticket_id,
        })
        .collect())
}

/// Ends the holds of `orders` now (their shopper left): the hold sweep then releases
/// them as it does any expired hold, cancelling at Stripe first, and extending one
/// whose payment is in progress after all. Returns how many were ended.
pub async fn end_holds_now(db: &PgPool, orders: &[Uuid]) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE orders SET hold_expires_at = now(), updated_at = now()
         WHERE id = ANY($1) AND status = 'payment_pending' AND NOT cancel_pending
           AND hold_expires_at > now()",
        orders
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Records that an order's cancel is done (its PaymentIntent's end was applied).
pub async fn cancel_done(db: &PgPool, order_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET cancel_pending = false, effect_leased_at = NULL WHERE id = $1",
        order_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Sends an order reconciliation just looked at to the back of its line (the next run
/// looks at the others first), unless Stripe has had its last word on it.
pub async fn reconciled(db: &PgPool, order_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET updated_at = now() WHERE id = $1 AND NOT intent_final",
        order_id
    )
    .execute(db)
    .await?;
    Ok(())
}
