//! The invariants of README.md ("Guarantees") for one sale, checked directly in PostgreSQL and, when it
//! is given, in the Stripe emulator:
//! I1 `available + reserved + sold = stock`, every term ≥ 0, and the terms equal what the
//! orders hold; I2 at most one PaymentIntent and one successful charge per order, no
//! charge without a unit (or a refund) and no unit paid without a charge; I3 every ticket
//! decided, every order beside its own reserved ticket, the wait-list counted right; I4
//! every paid order finalized once (one `order.paid.v1` in the ledger's outbox, whichever
//! path finalized it: the payment chain, the webhook, the hold sweep or reconciliation).

use std::collections::{BTreeMap, HashMap};

use flashgate_common::domain::SaleId;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// What was found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verdict {
    /// The sale.
    pub sale_id: String,
    /// Stock terms.
    pub stock: i64,
    /// Units nobody holds.
    pub available: i64,
    /// Units held.
    pub reserved: i64,
    /// Units sold.
    pub sold: i64,
    /// Tickets handed out (when known).
    pub tickets_issued: Option<i64>,
    /// Tickets decided.
    pub tickets_decided: i64,
    /// Tickets decided sold out.
    pub tickets_sold_out: i64,
    /// Orders by status.
    pub orders: BTreeMap<String, i64>,
    /// Tickets or orders not final yet.
    pub in_flight: i64,
    /// Units sold or held beyond stock (must be 0).
    pub oversold: i64,
    /// Orders charged more than once (must be 0).
    pub double_charges: i64,
    /// Orders with more than one PaymentIntent (must be 0).
    pub extra_intents: i64,
    /// Orders whose charge succeeded but that hold no unit and got no refund (must be 0).
    pub charged_without_unit: i64,
    /// Paid orders without a successful charge (must be 0).
    pub paid_without_charge: i64,
    /// Orders finalized by more than one event (must be 0).
    pub finalized_twice: i64,
    /// Orders without their ticket, of the same sale, decided `reserved` (must be 0).
    pub orphan_orders: i64,
    /// Every broken invariant, in words.
    pub violations: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct SimList {
    data: Vec<SimIntent>,
}

#[derive(Debug, Deserialize)]
struct SimIntent {
    #[serde(default)]
    metadata: HashMap<String, String>,
    #[serde(default)]
    sim_successful_charges: i64,
}

/// Checks one sale. `issued` is the number of tickets handed out, if known.
pub async fn verify(
    pool: &PgPool,
    sale: &SaleId,
    issued: Option<i64>,
    stripe_sim: Option<&str>,
) -> anyhow::Result<Verdict> {
    let mut verdict = database(pool, sale, issued).await?;
    if let Some(base) = stripe_sim {
        emulator(pool, sale, base, &mut verdict).await?;
    }
    judge(&mut verdict);
    Ok(verdict)
}

/// Tickets the ledger has decided for `sale` (0 for a sale it does not know).
pub async fn decided(pool: &PgPool, sale: &SaleId) -> anyhow::Result<i64> {
    let decided: Option<i64> = sqlx::query_scalar("SELECT decided FROM sales WHERE id = $1")
        .bind(sale.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(decided.unwrap_or(0))
}

async fn database(pool: &PgPool, sale: &SaleId, issued: Option<i64>) -> anyhow::Result<Verdict> {
    let t = sqlx::query!(
        r#"SELECT s.stock, s.reserved, s.sold, s.decided, s.waitlisted AS waitlist_count,
              (SELECT COALESCE(sum(quantity), 0) FROM orders
                WHERE sale_id = s.id AND status IN ('reserved', 'payment_pending')) AS "held!",
              (SELECT COALESCE(sum(quantity), 0) FROM orders WHERE sale_id = s.id AND status = 'paid') AS "paid!",
              (SELECT count(*) FROM orders
                WHERE sale_id = s.id AND status IN ('reserved', 'payment_pending', 'refund_pending')) AS "pending!",
              (SELECT count(*) FROM tickets WHERE sale_id = s.id AND decision = 'waitlisted') AS "waitlisted!",
              (SELECT count(*) FROM tickets WHERE sale_id = s.id AND decision = 'sold_out') AS "sold_out!",
              (SELECT count(*) FROM (SELECT e.order_id FROM order_events e JOIN orders o ON o.id = e.order_id
                WHERE o.sale_id = s.id AND e.kind = 'order.paid.v1' GROUP BY e.order_id HAVING count(*) > 1) twice)
                AS "finalized_twice!",
              (SELECT count(*) FROM orders o LEFT JOIN tickets tk ON tk.id = o.ticket_id
                WHERE o.sale_id = s.id AND (tk.id IS NULL OR tk.sale_id <> o.sale_id OR tk.decision <> 'reserved'))
                AS "orphan_orders!"
           FROM sales s WHERE s.id = $1"#,
        sale.as_str()
    )
    .fetch_one(pool)
    .await?;
    let orders = sqlx::query!(
        r#"SELECT status AS "status!", count(*) AS "n!" FROM orders WHERE sale_id = $1 GROUP BY status"#,
        sale.as_str()
    )
    .fetch_all(pool)
    .await?;
    let (stock, reserved, sold) = (i64::from(t.stock), i64::from(t.reserved), i64::from(t.sold));
    let mut verdict = Verdict {
        sale_id: sale.to_string(),
        stock,
        available: stock - reserved - sold,
        reserved,
        sold,
        tickets_issued: issued,
        tickets_decided: t.decided,
        tickets_sold_out: t.sold_out,
        orders: orders.into_iter().map(|o| (o.status, o.n)).collect(),
        in_flight: t.pending + t.waitlisted + issued.map_or(0, |i| (i - t.decided).max(0)),
        oversold: (reserved + sold - stock)
            .max(0)
            .max(t.held + t.paid - stock),
        finalized_twice: t.finalized_twice,
        orphan_orders: t.orphan_orders,
        ..Verdict::default()
    };
    if i64::from(t.waitlist_count) != t.waitlisted {
        let (kept, counted) = (t.waitlist_count, t.waitlisted);
        verdict.violations.push(format!(
            "I3: the sale counts {kept} wait-listed tickets but {counted} are wait-listed"
        ));
    }
    if reserved != t.held || sold != t.paid {
        let (held, paid) = (t.held, t.paid);
        verdict.violations.push(format!(
            "I1: terms reserved={reserved} sold={sold} but orders hold {held} and paid {paid}"
        ));
    }
    Ok(verdict)
}

/// PaymentIntents and successful charges per order, as the emulator has them.
async fn charges_per_order(
    base: &str,
    sale: &SaleId,
) -> anyhow::Result<HashMap<String, (i64, i64)>> {
    let url = format!(
        "{}/_sim/payment_intents?metadata_key=flashgate_sale&metadata_value={sale}",
        base.trim_end_matches('/')
    );
    let intents = reqwest::get(&url)
        .await?
        .error_for_status()?
        .json::<SimList>()
        .await?
        .data;
    let mut per_order: HashMap<String, (i64, i64)> = HashMap::new();
    for intent in intents {
        if let Some(order) = intent.metadata.get("flashgate_order") {
            let entry = per_order.entry(order.clone()).or_default();
            entry.0 += 1;
            entry.1 += intent.sim_successful_charges;
        }
    }
    Ok(per_order)
}

async fn emulator(
    pool: &PgPool,
    sale: &SaleId,
    base: &str,
    verdict: &mut Verdict,
) -> anyhow::Result<()> {
    let per_order = charges_per_order(base, sale).await?;
    verdict.extra_intents = per_order
        .values()
        .filter(|(intents, _)| *intents > 1)
        .count() as i64;
    verdict.double_charges = per_order
        .values()
        .filter(|(_, charges)| *charges > 1)
        .count() as i64;
    let statuses: HashMap<String, String> = sqlx::query!(
        "SELECT id, status FROM orders WHERE sale_id = $1",
        sale.as_str()
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.id.to_string(), r.status))
    .collect();
    // Money taken is matched by a unit sold or a refund (or is still being settled).
    let answered = |status: &str| {
        matches!(
            status,
            "paid" | "refund_pending" | "refunded" | "payment_pending"
        )
    };
    verdict.charged_without_unit = per_order
        .iter()
        .filter(|(order, (_, charges))| {
            *charges > 0 && !statuses.get(*order).is_some_and(|s| answered(s))
        })
        .count() as i64;
    verdict.paid_without_charge = statuses
        .iter()
        .filter(|(order, status)| {
            *status == "paid"
                && per_order
                    .get(*order)
                    .is_none_or(|(_, charges)| *charges == 0)
        })
        .count() as i64;
    Ok(())
}

fn judge(verdict: &mut Verdict) {
    let checks = [
        (
            verdict.available < 0 || verdict.reserved < 0 || verdict.sold < 0,
            "I1: a stock term is negative",
        ),
        (verdict.oversold > 0, "I1: oversold"),
        (
            verdict.extra_intents > 0,
            "I2: an order has more than one PaymentIntent",
        ),
        (
            verdict.double_charges > 0,
            "I2: an order was charged more than once",
        ),
        (
            verdict.charged_without_unit > 0,
            "I2: a charge without a unit or a refund",
        ),
        (
            verdict.paid_without_charge > 0,
            "I2: a paid order without a charge",
        ),
        (verdict.finalized_twice > 0, "I4: an order finalized twice"),
        (
            verdict.orphan_orders > 0,
            "I3: an order without its reserved ticket of the same sale",
        ),
        (
            verdict
                .tickets_issued
                .is_some_and(|i| i < verdict.tickets_decided),
            "I3: more tickets decided than issued",
        ),
    ];
    verdict.violations.extend(
        checks
            .iter()
            .filter(|(broken, _)| *broken)
            .map(|(_, what)| (*what).to_owned()),
    );
}
