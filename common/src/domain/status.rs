//! The lifecycle of a ticket and of its order (the transitions table in `ledger/mod.rs`).

use serde::{Deserialize, Serialize};

/// What a shopper sees of a ticket. Transitions only move forward: see [`TicketStatus::rank`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Accepted before the sale opened, in its pre-queue: the place is drawn at the
    /// opening (then `queued`).
    Prequeued,
    /// Accepted at the door and confirmed by the broker; waiting for a reservation worker.
    Queued,
    /// No unit was free, but reservations that may expire are outstanding and the sale
    /// keeps a wait-list: units that come back go to wait-listed tickets in order.
    Waitlisted,
    /// Units are held for the order; the payment is being created.
    Reserved,
    /// A PaymentIntent exists; waiting for the payment to succeed or fail.
    PaymentPending,
    /// Paid: the units are sold.
    Paid,
    /// The payment failed or was canceled; the units were released.
    Failed,
    /// The hold timed out before payment; the units were released.
    Expired,
    /// No unit was left for this ticket.
    SoldOut,
    /// Paid after the hold was released and no unit was free: the money went back.
    Refunded,
}

impl TicketStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prequeued => "prequeued",
            Self::Queued => "queued",
            Self::Waitlisted => "waitlisted",
            Self::Reserved => "reserved",
            Self::PaymentPending => "payment_pending",
            Self::Paid => "paid",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::SoldOut => "sold_out",
            Self::Refunded => "refunded",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "prequeued" => Self::Prequeued,
            "queued" => Self::Queued,
            "waitlisted" => Self::Waitlisted,
            "reserved" => Self::Reserved,
            "payment_pending" => Self::PaymentPending,
            "paid" => Self::Paid,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            "sold_out" => Self::SoldOut,
            "refunded" => Self::Refunded,
            _ => return None,
        })
    }

    /// Order of the lifecycle: a write with a lower rank than the stored one is stale.
    /// `paid` outranks `failed`/`expired` because a late success takes a unit back.
    pub fn rank(self) -> u8 {
        match self {
            // The draw moves a ticket from the one to the other with its own write.
            Self::Prequeued | Self::Queued => 0,
            Self::Waitlisted => 1,
            Self::Reserved => 2,
            Self::PaymentPending => 3,
            Self::Failed | Self::Expired | Self::SoldOut => 4,
            Self::Paid => 5,
            Self::Refunded => 6,
        }
    }

    /// Whether the shopper can stop polling.
    pub fn is_final(self) -> bool {
        self.rank() >= 4
    }
}

/// The status column of `orders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Units held; no PaymentIntent stored yet.
    Reserved,
    /// Units held; PaymentIntent stored.
    PaymentPending,
    /// Units sold.
    Paid,
    /// Payment failed; units released.
    Failed,
    /// Hold expired; units released.
    Expired,
    /// Paid after release with no unit free; a refund is being issued.
    RefundPending,
    /// Refund issued.
    Refunded,
}

impl OrderStatus {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::PaymentPending => "payment_pending",
            Self::Paid => "paid",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::RefundPending => "refund_pending",
            Self::Refunded => "refunded",
        }
    }

    /// Parses a column value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "reserved" => Self::Reserved,
            "payment_pending" => Self::PaymentPending,
            "paid" => Self::Paid,
            "failed" => Self::Failed,
            "expired" => Self::Expired,
            "refund_pending" => Self::RefundPending,
            "refunded" => Self::Refunded,
            _ => return None,
        })
    }

    /// Whether the order holds units in `sales.reserved`.
    pub fn holds_units(self) -> bool {
        matches!(self, Self::Reserved | Self::PaymentPending)
    }

    /// What the shopper is shown. A pending refund shows nothing new until it is done.
    pub fn ticket_status(self) -> Option<TicketStatus> {
        Some(match self {
            Self::Reserved => TicketStatus::Reserved,
            Self::PaymentPending => TicketStatus::PaymentPending,
            Self::Paid => TicketStatus::Paid,
            Self::Failed => TicketStatus::Failed,
            Self::Expired => TicketStatus::Expired,
            Self::RefundPending => return None,
            Self::Refunded => TicketStatus::Refunded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in [
            TicketStatus::Queued,
            TicketStatus::PaymentPending,
            TicketStatus::SoldOut,
            TicketStatus::Refunded,
        ] {
            assert_eq!(TicketStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(
            OrderStatus::parse("refund_pending"),
            Some(OrderStatus::RefundPending)
        );
    }

    #[test]
    fn a_late_success_outranks_a_release_but_nothing_outranks_a_refund() {
        assert!(TicketStatus::Paid.rank() > TicketStatus::Expired.rank());
        assert!(TicketStatus::Refunded.rank() > TicketStatus::Paid.rank());
        assert!(!TicketStatus::PaymentPending.is_final());
    }
}
