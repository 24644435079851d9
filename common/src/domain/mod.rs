//! Domain newtypes: parse, don't validate. Every value that crosses a boundary (HTTP body,
//! queue message, database row) is one of these, so code past the boundary never re-checks.

mod ids;
mod quantity;
mod status;

pub use ids::{Category, Currency, CustomerId, PaymentMethodId, SaleId, Sku};
pub use quantity::Quantity;
pub use status::{OrderStatus, TicketStatus};

/// Why a value was refused at a boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct InvalidValue {
    /// The field, as the client named it.
    pub field: &'static str,
    /// What is wrong with it, in words a client can act on.
    pub reason: String,
}

impl InvalidValue {
    /// A refusal of `field` for `reason`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A sale's stock terms as committed in PostgreSQL, with the version that orders updates.
/// I1: `available() + reserved + sold = stock`, every term ≥ 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct SaleTerms {
    /// Grows with every change; caches drop writes older than what they hold.
    pub version: i64,
    /// Units for sale.
    pub stock: i64,
    /// Units held by reserved or payment-pending orders.
    pub reserved: i64,
    /// Units paid for.
    pub sold: i64,
    /// Tickets decided so far (reserved or sold out): the queue's served position.
    pub decided: i64,
    /// Tickets waiting on the wait-list for units to come back.
    pub waitlisted: i64,
}

/// Builds [`SaleTerms`] from a query row with the `sales` columns `version`, `stock`,
/// `reserved`, `sold`, `waitlisted` (`int`) and `decided` (`bigint`).
#[macro_export]
macro_rules! sale_terms {
    ($row:expr) => {
        $crate::domain::SaleTerms {
            version: $row.version,
            stock: i64::from($row.stock),
            reserved: i64::from($row.reserved),
            sold: i64::from($row.sold),
            decided: $row.decided,
            waitlisted: i64::from($row.waitlisted),
        }
    };
}

impl SaleTerms {
    /// Units nobody holds.
    pub fn available(&self) -> i64 {
        self.stock - self.reserved - self.sold
    }
}
