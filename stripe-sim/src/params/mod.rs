//! Request parameters: Stripe's bracketed form encoding decoded, then parsed into typed
//! values with Stripe's validation messages, before any state is touched.

mod form;
mod lifecycle;
mod list;
pub(crate) mod metadata;
mod payment_intent;
mod refund;

pub(crate) use form::Form;
pub(crate) use lifecycle::{ConfirmParams, cancellation_reason};
pub(crate) use list::{ListEventsParams, SearchParams, page_token};
pub(crate) use metadata::Metadata;
pub(crate) use payment_intent::CreateParams;
pub(crate) use refund::{RefundParams, RefundTarget};
