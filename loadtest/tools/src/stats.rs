//! Latency percentiles of a run.

use std::time::Duration;

use serde_json::{Value, json};

/// p50, p99 and max of `samples`, in milliseconds.
pub(crate) fn latency(samples: &mut [Duration]) -> Value {
    samples.sort_unstable();
    let at = |q: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index].as_secs_f64() * 1000.0
    };
    json!({ "p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": at(1.0) })
}
