//! Applying what Stripe says about a PaymentIntent (a webhook event, or a retrieve during
//! reconciliation) to its order. Events may arrive late, twice or out of order; the
//! ledger's forward-only transitions make every order of arrival end the same.

use sqlx::PgConnection;
use uuid::Uuid;

use super::transitions::release_locked;
use super::{Change, OrderRef, Release, Settlement, lock_order, mark_paid};

/// What a PaymentIntent's state means for its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentOutcome {
    /// The money was taken.
    Succeeded,
    /// The payment attempt failed (declined card, …).
    Failed {
        /// Stripe's error code, if any.
        code: Option<String>,
    },
    /// The PaymentIntent was canceled.
    Canceled,
    /// Still in progress: nothing to do yet.
    Pending,
}

impl IntentOutcome {
    /// Reads a PaymentIntent status as Stripe writes it.
    pub fn from_status(status: &str, last_error_code: Option<&str>) -> Self {
        match status {
            "succeeded" => Self::Succeeded,
            "canceled" => Self::Canceled,
            "requires_payment_method" if last_error_code.is_some() => Self::Failed {
                code: last_error_code.map(str::to_owned),
            },
            _ => Self::Pending,
        }
    }
}

/// What applying an outcome did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The order moved (units released, sold, or taken back).
    Changed(Change),
    /// Paid after release with no unit free: a refund is due.
    RefundNeeded(Change),
    /// Nothing changed (already final, or still pending).
    Unchanged(OrderRef),
    /// The order is bound to another PaymentIntent: ignored.
    ForeignIntent(OrderRef),
    /// No such order.
    UnknownOrder,
}

impl Applied {
    /// The order as it stands after the event, if there is one.
    pub fn order(&self) -> Option<&OrderRef> {
        match self {
            Self::Changed(change) | Self::RefundNeeded(change) => Some(&change.order),
            Self::Unchanged(order) | Self::ForeignIntent(order) => Some(order),
            Self::UnknownOrder => None,
        }
    }
}

/// Applies `outcome` of `payment_intent_id` to `order_id`, in the caller's transaction.
/// A final outcome (succeeded, canceled) also records that Stripe has had its last word on
/// this order, which takes it out of reconciliation.
pub async fn apply_intent(
    tx: &mut PgConnection,
    order_id: Uuid,
    payment_intent_id: &str,
    outcome: &IntentOutcome,
) -> sqlx::Result<Applied> {
    let Some(mut order) = lock_order(tx, order_id).await? else {
        return Ok(Applied::UnknownOrder);
    };
    if order
        .payment_intent_id
        .as_deref()
        .is_some_and(|bound| bound != payment_intent_id)
    {
        return Ok(Applied::ForeignIntent(order));
    }
    // Written before the outcome is applied, which writes the sale's row last.
    if matches!(outcome, IntentOutcome::Succeeded | IntentOutcome::Canceled) {
        if order.payment_intent_id.is_none() {
            super::transitions::attach_intent(tx, order.id, payment_intent_id).await?;
            order.payment_intent_id = Some(payment_intent_id.to_owned());
        }
        sqlx::query!(
            "UPDATE orders SET intent_final = true WHERE id = $1",
            order_id
        )
        .execute(&mut *tx)
        .await?;
    }
    apply_bound(tx, order, payment_intent_id, outcome).await
}

async fn apply_bound(
    tx: &mut PgConnection,
    order: OrderRef,
    payment_intent_id: &str,
    outcome: &IntentOutcome,
) -> sqlx::Result<Applied> {
    let why = match outcome {
        IntentOutcome::Succeeded => return settled(tx, order, payment_intent_id).await,
        IntentOutcome::Pending => return Ok(Applied::Unchanged(order)),
        // The shopper's own attempt in the browser failed (a decline, a failed 3-D Secure
        // step): the PaymentIntent takes another card while the hold lasts, and the hold's
        // expiry cancels it if none comes.
        IntentOutcome::Failed { .. } if shopper_confirms(tx, order.id).await? => {
            return Ok(Applied::Unchanged(order));
        }
        IntentOutcome::Failed { code } => (
            Release::Failed {
                cancel_intent: true,
            },
            code.as_deref(),
        ),
        // The cancel the hold sweep asked for: the hold ran out.
        IntentOutcome::Canceled if hold_ran_out(tx, order.id).await? => (Release::Expired, None),
        IntentOutcome::Canceled => (
            Release::Failed {
                cancel_intent: false,
            },
            Some("canceled"),
        ),
    };
    let mut order = order;
    if order.payment_intent_id.is_none() {
        super::transitions::attach_intent(tx, order.id, payment_intent_id).await?;
        order.payment_intent_id = Some(payment_intent_id.to_owned());
    }
    Ok(
        match release_locked(tx, order.clone(), why.0, why.1).await? {
            Some(change) => Applied::Changed(change),
            None => Applied::Unchanged(order),
        },
    )
}

/// Whether the shopper confirms the order's payment (no saved payment method), still
/// holding its unit.
async fn shopper_confirms(tx: &mut PgConnection, order_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT payment_method IS NULL AND status = 'payment_pending' AS "shopper!"
           FROM orders WHERE id = $1"#,
        order_id
    )
    .fetch_one(&mut *tx)
    .await
}

/// Whether the order's hold is past its expiry (the hold sweep then cancels its
/// PaymentIntent before giving its units back).
async fn hold_ran_out(tx: &mut PgConnection, order_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT hold_expires_at <= now() AS "ran_out!" FROM orders WHERE id = $1"#,
        order_id
    )
    .fetch_one(&mut *tx)
    .await
}

async fn settled(
    tx: &mut PgConnection,
    order: OrderRef,
    payment_intent_id: &str,
) -> sqlx::Result<Applied> {
    Ok(match mark_paid(tx, order, payment_intent_id).await? {
        Settlement::Paid(change) => Applied::Changed(change),
        Settlement::RefundNeeded(change) => Applied::RefundNeeded(change),
        Settlement::AlreadySettled(order) => Applied::Unchanged(order),
        Settlement::ForeignIntent(order) => Applied::ForeignIntent(order),
    })
}
