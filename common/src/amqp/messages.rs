//! Queue messages: versioned, tagged serde enums. A consumer that meets a `type` it does
//! not know dead-letters the message instead of guessing; a new version is a new variant.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{CustomerId, PaymentMethodId, Quantity, SaleId};

/// Messages on the tickets queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TicketMessage {
    /// A ticket the door issued and the broker confirmed.
    #[serde(rename = "ticket.issued.v1")]
    Issued(IssuedTicket),
    /// Tickets the door issued together and the broker confirmed as one message (group
    /// commit). Each is decided on its own, exactly as if it had come alone.
    #[serde(rename = "ticket.batch.v1")]
    Batch {
        /// The tickets, in the order the door issued them.
        tickets: Vec<IssuedTicket>,
    },
}

impl TicketMessage {
    /// The message for `tickets`: a batch, or the single-ticket message for one.
    pub fn of(mut tickets: Vec<IssuedTicket>) -> Self {
        if tickets.len() == 1
            && let Some(ticket) = tickets.pop()
        {
            return Self::Issued(ticket);
        }
        Self::Batch { tickets }
    }

    /// The tickets it carries.
    pub fn into_tickets(self) -> Vec<IssuedTicket> {
        match self {
            Self::Issued(ticket) => vec![ticket],
            Self::Batch { tickets } => tickets,
        }
    }
}

/// Everything a reservation worker needs to decide a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedTicket {
    /// Unique id; deciding is idempotent on it.
    pub ticket_id: Uuid,
    /// The sale.
    pub sale_id: SaleId,
    /// Who asked.
    pub customer_id: CustomerId,
    /// Place in the sale's queue: tickets are granted in this order.
    pub seq: i64,
    /// Units asked for.
    pub quantity: Quantity,
    /// Charge this method server-side; without it the shopper confirms with the client secret.
    pub payment_method: Option<PaymentMethodId>,
    /// When the door issued it.
    pub issued_at: DateTime<Utc>,
    /// The `x-request-id` of the request that took it, so the worker's log lines about the
    /// ticket carry it even when the ticket travelled in a batch with others. Absent in
    /// messages from doors that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Messages on the payments queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PaymentMessage {
    /// Create (and maybe confirm) one PaymentIntent for each order. One message per
    /// reservation batch; handling each order is idempotent, so a redelivery is safe.
    #[serde(rename = "payments.requested.v1")]
    Requested {
        /// The orders.
        order_ids: Vec<Uuid>,
    },
}

/// Events on the orders exchange, published from the outbox after the commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderEvent {
    /// `order.paid.v1`, `order.failed.v1`, `order.expired.v1` or `order.refunded.v1`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The order.
    pub order_id: Uuid,
    /// Its ticket.
    pub ticket_id: Uuid,
    /// Its sale.
    pub sale_id: String,
    /// The customer.
    pub customer_id: String,
    /// Units.
    pub quantity: i32,
    /// Amount in minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// The PaymentIntent, if one exists.
    pub payment_intent_id: Option<String>,
    /// When the transition committed.
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(seq: i64) -> IssuedTicket {
        IssuedTicket {
            ticket_id: Uuid::now_v7(),
            sale_id: SaleId::parse("drop").unwrap(),
            customer_id: CustomerId::parse(format!("c{seq}")).unwrap(),
            seq,
            quantity: Quantity::parse(1, 10).unwrap(),
            payment_method: None,
            issued_at: Utc::now(),
            request_id: Some(format!("req-{seq}")),
        }
    }

    #[test]
    fn one_ticket_travels_alone_and_several_as_a_batch() {
        let one = TicketMessage::of(vec![ticket(1)]);
        assert_eq!(
            serde_json::to_value(&one).unwrap()["type"],
            "ticket.issued.v1"
        );
        let batch = TicketMessage::of(vec![ticket(1), ticket(2)]);
        let json = serde_json::to_vec(&batch).unwrap();
        let back: TicketMessage = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, batch);
        let seqs: Vec<i64> = back.into_tickets().iter().map(|t| t.seq).collect();
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn each_ticket_of_a_batch_keeps_its_own_request_id() {
        let batch = TicketMessage::of(vec![ticket(1), ticket(2)]);
        let json = serde_json::to_value(&batch).unwrap();
        assert_eq!(json["tickets"][0]["request_id"], "req-1");
        assert_eq!(json["tickets"][1]["request_id"], "req-2");
        // A door that predates the field sends none; the ticket still parses.
        let mut old = json["tickets"][0].clone();
        old.as_object_mut().unwrap().remove("request_id");
        old["type"] = "ticket.issued.v1".into();
        let parsed: TicketMessage = serde_json::from_value(old).unwrap();
        assert_eq!(parsed.into_tickets()[0].request_id, None);
    }

    #[test]
    fn messages_carry_their_version_in_the_type_tag() {
        let message = PaymentMessage::Requested {
            order_ids: vec![Uuid::nil()],
        };
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["type"], "payments.requested.v1");
        let unknown = r#"{"type":"payments.requested.v9","order_ids":[]}"#;
        assert!(serde_json::from_str::<PaymentMessage>(unknown).is_err());
    }
}
