//! The ledger: every write to `sales` and `orders` happens here, inside the caller's
//! transaction, together with the order's transition and its outbox event, so I1
//! (`available + reserved + sold = stock`) holds at every commit and transitions only
//! move forward. Callers publish the returned terms and status to Redis after commit.
//! A test below fails if any other module of the system writes either table.
//!
//! | order moves | from | to | units (`reserved`, `sold`) | where |
//! |---|---|---|---|---|
//! | reserve many (fresh tickets, first fit, never past `available`) | — | `reserved` | +q, 0 | [`reserve::Plan`] |
//! | promote from the wait-list | — (ticket `waitlisted`) | `reserved` | +q, 0 | [`reserve::Plan::promote`] |
//! | close the wait-list (nothing can come back) | — (ticket `waitlisted`) | — (ticket `sold_out`) | 0, 0 | [`reserve::close_waitlist`] |
//! | claim for payment (a PaymentIntent may exist from now on) | `reserved` | `reserved` | 0, 0 | [`payment::claim_payment`] |
//! | start payment (PaymentIntent stored) | `reserved` | `payment_pending` | 0, 0 | [`payment::start_payment`] |
//! | expire (no PaymentIntent ever asked for) | `reserved` | `expired` | −q, 0 | [`expire::expire_due`] |
//! | expire (PaymentIntent may exist: cancel at Stripe first) | `reserved`, `payment_pending` | same, `cancel_pending` | 0, 0 | [`expire::expire_due`] |
//! | pay | `reserved`, `payment_pending` | `paid` | −q, +q | [`mark_paid`] via [`apply_intent`] |
//! | pay after release, a unit free | `failed`, `expired` | `paid` | 0, +q | [`mark_paid`] |
//! | pay after release, no unit free | `failed`, `expired` | `refund_pending` | 0, 0 | [`mark_paid`] |
//! | fail (declined, canceled) | `reserved`, `payment_pending` | `failed` | −q, 0 | [`release`] via [`apply_intent`] |
//! | expire (PaymentIntent canceled) | `reserved`, `payment_pending` | `expired` | −q, 0 | [`release`] via [`apply_intent`] |
//! | refund confirmed | `refund_pending` | `refunded` | 0, 0 | [`mark_refunded`] |
//!
//! A sale's own row (stock, price, admission settings) is written by [`sales`]; the
//! table's check keeps `stock ≥ reserved + sold` when an operator lowers the stock.

pub mod audit;
pub mod branding;
pub mod controller;
pub mod expire;
mod intents;
pub mod payment;
pub mod prequeue;
mod publish;
pub mod reserve;
pub mod sales;
mod transitions;
pub mod unpublished;
pub mod vitals;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{OrderStatus, SaleId, SaleTerms};
pub use intents::{Applied, IntentOutcome, apply_intent};
pub use publish::publish_changes;
pub use transitions::{attach_intent, mark_paid, mark_refunded, release};

/// An order as the ledger sees it, after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRef {
    /// The order.
    pub id: Uuid,
    /// Its ticket.
    pub ticket_id: Uuid,
    /// Its sale.
    pub sale_id: SaleId,
    /// Units.
    pub quantity: i32,
    /// Status after the change.
    pub status: OrderStatus,
    /// Its PaymentIntent, if known.
    pub payment_intent_id: Option<String>,
}

/// A JSON object field of an operator's input, or `null` (`None`): serde would also
/// build a struct from an array of its fields in order, which no client means.
pub fn object_or_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::Deserialize as _;
    use serde::de::Error as _;
    match Option::<serde_json::Value>::deserialize(d)? {
        None => Ok(None),
        Some(value @ serde_json::Value::Object(_)) => serde_json::from_value(value)
            .map(Some)
            .map_err(D::Error::custom),
        Some(_) => Err(D::Error::custom("expected an object or null")),
    }
}

/// What a state change did: the order afterwards and the sale's new terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The order after the change.
    pub order: OrderRef,
    /// The sale's terms after the change, when units moved.
    pub terms: Option<SaleTerms>,
}

/// The outcome of a successful payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The order is now paid (its held units, or a free unit taken back, are sold).
    Paid(Change),
    /// Paid after release with no unit free: the order awaits a refund.
    RefundNeeded(Change),
    /// Nothing to do: already paid, refunded or being refunded.
    AlreadySettled(OrderRef),
    /// The order is bound to another PaymentIntent; nothing was changed.
    ForeignIntent(OrderRef),
}

/// Why an order gave its units back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The payment failed; `cancel_intent` asks for the PaymentIntent to be canceled too.
    Failed {
        /// Cancel the PaymentIntent at Stripe (it could still succeed otherwise).
        cancel_intent: bool,
    },
    /// The hold timed out, and its PaymentIntent (if one was ever asked for) is known
    /// canceled at Stripe: nothing can charge the order any more.
    Expired,
}

/// Locks and reads an order.
pub async fn lock_order(tx: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Option<OrderRef>> {
    let row = sqlx::query!(
        r#"SELECT id, ticket_id, sale_id AS "sale_id: SaleId", quantity, status, payment_intent_id
           FROM orders WHERE id = $1 FOR UPDATE"#,
        order_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    row.map(|r| {
        Ok(OrderRef {
            id: r.id,
            ticket_id: r.ticket_id,
            sale_id: r.sale_id,
            quantity: r.quantity,
            status: order_status(&r.status)?,
            payment_intent_id: r.payment_intent_id,
        })
    })
    .transpose()
}

/// An order status read back from the database (the column's check allows no other).
fn order_status(value: &str) -> sqlx::Result<OrderStatus> {
    OrderStatus::parse(value)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown order status {value:?}").into()))
}

/// Moves units between the terms; `None` when that would leave `available` negative.
pub async fn move_units(
    tx: &mut PgConnection,
    sale: &SaleId,
    reserved_delta: i32,
    sold_delta: i32,
) -> sqlx::Result<Option<SaleTerms>> {
    let row = sqlx::query!(
        r#"UPDATE sales
           SET reserved = reserved + $2, sold = sold + $3, version = version + 1, updated_at = now()
           WHERE id = $1 AND stock - (reserved + $2) - (sold + $3) >= 0
           RETURNING version, stock, reserved, sold, decided, waitlisted"#,
        sale.as_str(),
        reserved_delta,
        sold_delta
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|r| crate::sale_terms!(r)))
}

/// Records order events in the outbox, in the same transaction as the change.
pub async fn record_events(
    tx: &mut PgConnection,
    order_ids: &[Uuid],
    kind: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO order_events (order_id, kind, payload)
           SELECT o.id, $2, jsonb_build_object(
               'type', $2::text, 'order_id', o.id, 'ticket_id', o.ticket_id,
               'sale_id', o.sale_id, 'customer_id', o.customer_id, 'quantity', o.quantity,
               'amount', o.amount, 'currency', o.currency,
               'payment_intent_id', o.payment_intent_id, 'at', now())
           FROM orders o WHERE o.id = ANY($1)"#,
        order_ids,
        kind
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read a source folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                rust_files(&path, into);
            } else if path.extension().is_some_and(|e| e == "rs") {
                into.push(path);
            }
        }
    }

    /// The statements that write the two tables, whitespace folded.
    fn writes(source: &str) -> Vec<String> {
        let folded = source.split_whitespace().collect::<Vec<_>>().join(" ");
        let lower = folded.to_ascii_lowercase();
        ["insert into", "update", "delete from"]
            .iter()
            .flat_map(|verb| ["sales", "orders"].map(|table| format!("{verb} {table} ")))
            .filter(|statement| lower.contains(statement.as_str()))
            .collect()
    }

    #[test]
    fn only_the_ledger_writes_sales_and_orders() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let ledger = root.join("common/src/ledger");
        let mut files = Vec::new();
        // The system's crates; tests and the load-test tools write fixtures of their own.
        for krate in [
            "common",
            "admission",
            "workers",
            "webhook",
            "catalog-cache",
            "stripe-sim",
            "flashgate",
        ] {
            rust_files(&root.join(krate).join("src"), &mut files);
        }
        assert!(
            files.len() > 50,
            "the sources were not found under {}",
            root.display()
        );
        let offenders: Vec<String> = files
            .iter()
            .filter(|file| !file.starts_with(&ledger))
            .filter_map(|file| {
                let found = writes(&std::fs::read_to_string(file).expect("read a source file"));
                (!found.is_empty()).then(|| format!("{}: {found:?}", file.display()))
            })
            .collect();
        assert!(
            offenders.is_empty(),
            "sales or orders written outside the ledger: {offenders:#?}"
        );
    }

    #[test]
    fn a_write_is_seen_however_it_is_laid_out() {
        assert_eq!(
            writes("r#\"UPDATE  orders\n  SET status = $2\"#"),
            ["update orders "]
        );
        assert_eq!(writes("INSERT INTO sales (id)"), ["insert into sales "]);
        assert!(writes("SELECT id FROM orders; UPDATE tickets SET seq = 1").is_empty());
    }
}
