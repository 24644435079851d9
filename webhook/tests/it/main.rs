//! The webhook receiver's behaviour, on the whole stack against the real services.
#![allow(clippy::unwrap_used)]

mod support {
    pub(crate) use flashgate_testkit::*;
}
mod webhooks;
