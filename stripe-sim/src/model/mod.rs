//! The Stripe objects the emulator keeps, each able to render itself as Stripe's JSON.

pub(crate) mod event;
pub(crate) mod payment_intent;
pub(crate) mod payment_method;
pub(crate) mod refund;

pub(crate) use event::{DeliveryAttempt, Event, EventType, Origin};
pub(crate) use payment_intent::{PaymentIntent, Status};
pub(crate) use payment_method::{Outcome, PaymentMethod, test_card};
pub(crate) use refund::Refund;
