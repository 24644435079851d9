//! Every metric flashgate exports, with its kind and the HELP text `/metrics` shows.
//! Names follow Prometheus's conventions: the `flashgate_` prefix, base units in the name
//! (`_seconds`; `_tickets` for counts of tickets), `_total` on counters and only there. A
//! test holds the sources to this list: a name used anywhere must be here, and every
//! name here must be used.

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

use Kind::{Counter, Gauge, Histogram};

/// Name, kind and HELP of each metric.
pub const METRICS: &[(&str, Kind, &str)] = &[
    (
        "flashgate_build_info",
        Gauge,
        "Always 1; the labels say which build runs (version)",
    ),
    (
        "flashgate_http_request_duration_seconds",
        Histogram,
        "Time to answer an HTTP request, by route, method and status",
    ),
    (
        "flashgate_http_connections_open",
        Gauge,
        "Connections a listener holds (connections.max bounds the public one), by listener address",
    ),
    (
        "flashgate_http_connections_parked",
        Gauge,
        "Held connections waiting for their next request with no HTTP state (the socket alone), by listener address",
    ),
    (
        "flashgate_http_header_timeouts_total",
        Counter,
        "Connections closed for sending no whole request head within connections.header_timeout_ms (idle kept-alive ones included), by listener address",
    ),
    (
        "flashgate_amqp_publish_confirm_seconds",
        Histogram,
        "Time from publishing a message to the broker's confirm, by routing key",
    ),
    (
        "flashgate_admission_tickets_issued_total",
        Counter,
        "Tickets the door issued (confirmed by the broker), by sale",
    ),
    (
        "flashgate_admission_tickets_prequeued_total",
        Counter,
        "Tickets the door put in a sale's pre-queue before the opening, by sale",
    ),
    (
        "flashgate_prequeue_draw_seconds",
        Histogram,
        "Time to draw a sale's pre-queue at its opening and write the places to Redis",
    ),
    (
        "flashgate_admission_rejected_total",
        Counter,
        "Arrivals the door turned away, by sale and reason",
    ),
    (
        "flashgate_admission_pressure_signals_total",
        Counter,
        "Times the door, its timers firing late, told the workers to hold payments back",
    ),
    (
        "flashgate_admission_sealed",
        Gauge,
        "1 while this door keeps a sold-out sale's roll of holders and refuses everyone else from memory, by sale",
    ),
    (
        "flashgate_statuses_kept_total",
        Counter,
        "Ticket statuses Redis did not take, kept in PostgreSQL until the workers' sweep publishes them",
    ),
    (
        "flashgate_admission_rate_per_second",
        Gauge,
        "A sale's admission rate as set by the operator",
    ),
    (
        "flashgate_admission_burst_tickets",
        Gauge,
        "A sale's admission burst as set by the operator",
    ),
    (
        "flashgate_admission_publish_batch_tickets",
        Histogram,
        "Tickets the door published to the broker in one batch",
    ),
    (
        "flashgate_admission_publish_batch_seconds",
        Histogram,
        "Time to publish one batch of tickets and have it confirmed",
    ),
    (
        "flashgate_tickets_recovered_total",
        Counter,
        "Tickets the door gave back from PostgreSQL after Redis lost them",
    ),
    (
        "flashgate_queue_depth_tickets",
        Gauge,
        "Tickets the broker confirmed that no worker decided yet, by sale, as a door sees it",
    ),
    (
        "flashgate_stock_units",
        Gauge,
        "A sale's units by state (available, reserved, sold), as a door sees them",
    ),
    (
        "flashgate_ticket_queue_seconds",
        Histogram,
        "Time from the door issuing a ticket to a worker deciding it",
    ),
    (
        "flashgate_ticket_final_seconds",
        Histogram,
        "Time from the door issuing a ticket to its final answer, by outcome (paid, failed, expired, sold_out)",
    ),
    (
        "flashgate_tickets_out_of_sequence_total",
        Counter,
        "Tickets decided after a ticket of the same sale with a later sequence number (FIFO inversions), by sale",
    ),
    (
        "flashgate_reservations_total",
        Counter,
        "Units reserved by the workers, by sale",
    ),
    (
        "flashgate_sold_out_decisions_total",
        Counter,
        "Tickets decided sold out, by sale",
    ),
    (
        "flashgate_waitlist_promoted_total",
        Counter,
        "Wait-listed tickets that got a unit that came back",
    ),
    (
        "flashgate_reserve_batch_tickets",
        Histogram,
        "Tickets a worker decided in one batch",
    ),
    (
        "flashgate_reserve_batch_seconds",
        Histogram,
        "Time for a worker to decide one batch",
    ),
    (
        "flashgate_reserve_batches_decided_again_total",
        Counter,
        "Batches of first deliveries decided again, looking every ticket up, because one was decided already",
    ),
    (
        "flashgate_payments_in_flight",
        Gauge,
        "Payments a worker holds in memory now",
    ),
    (
        "flashgate_worker_door_pressed",
        Gauge,
        "1 while a door says it is behind and payments are held back",
    ),
    (
        "flashgate_worker_pressure_wait_seconds",
        Histogram,
        "How long a payment waited for its turn while a door was behind",
    ),
    (
        "flashgate_payments_declined_total",
        Counter,
        "Payments Stripe declined (their units released)",
    ),
    (
        "flashgate_admission_controller_rate",
        Gauge,
        "Admission rate the closed-loop controller set at its last tick, arrivals/s",
    ),
    (
        "flashgate_holds_released_absent_total",
        Counter,
        "Holds ended early because the shopper's waiting room stopped asking for the ticket",
    ),
    (
        "flashgate_holds_extended_total",
        Counter,
        "Holds extended at their expiry because their payment was in progress at Stripe (3-D Secure, processing)",
    ),
    (
        "flashgate_payments_refunded_total",
        Counter,
        "Payments refunded because they succeeded after their hold was gone",
    ),
    (
        "flashgate_payments_asked_again_total",
        Counter,
        "Reserved orders whose payment was asked for again after a worker lost it",
    ),
    (
        "flashgate_stripe_retries_total",
        Counter,
        "Stripe API calls retried after a transient failure",
    ),
    (
        "flashgate_holds_expired_total",
        Counter,
        "Unpaid holds expired and their units released",
    ),
    (
        "flashgate_orders_reconciled_total",
        Counter,
        "Orders settled from Stripe's view of their payment",
    ),
    (
        "flashgate_order_events_published_total",
        Counter,
        "Order events relayed from the outbox",
    ),
    (
        "flashgate_worker_poison_messages_total",
        Counter,
        "Messages dead-lettered as undecodable or undecidable, by queue",
    ),
    (
        "flashgate_worker_transient_retries_total",
        Counter,
        "Work retried in place after a transient failure, by queue",
    ),
    (
        "flashgate_worker_session_restarts_total",
        Counter,
        "Consumer sessions reconnected after they ended, by queue",
    ),
    (
        "flashgate_worker_redis_write_failures_total",
        Counter,
        "Ticket statuses not written to Redis (PostgreSQL still has them)",
    ),
    (
        "flashgate_redis_primary_changes_total",
        Counter,
        "Redis primaries followed after a Sentinel failover",
    ),
    (
        "flashgate_webhook_events_applied_total",
        Counter,
        "Stripe events taken, by type and outcome",
    ),
    (
        "flashgate_catalog_hits_total",
        Counter,
        "Catalog reads answered from a cache, by layer and kind",
    ),
    (
        "flashgate_catalog_misses_total",
        Counter,
        "Catalog reads a cache could not answer, by layer and kind",
    ),
    (
        "flashgate_catalog_coalesced_waits_total",
        Counter,
        "Catalog reads that waited for a fill already under way, by kind",
    ),
    (
        "flashgate_catalog_db_fallthrough_total",
        Counter,
        "Catalog reads that went to PostgreSQL, by kind",
    ),
    (
        "flashgate_catalog_redis_errors_total",
        Counter,
        "Catalog calls to Redis that failed",
    ),
    (
        "flashgate_catalog_redis_bypassed_total",
        Counter,
        "Catalog reads that skipped Redis while its breaker was open",
    ),
    (
        "flashgate_catalog_invalidations_total",
        Counter,
        "Catalog invalidations applied",
    ),
    (
        "flashgate_catalog_invalidations_undelivered_total",
        Counter,
        "Catalog invalidations that could not be announced",
    ),
    (
        "flashgate_catalog_redis_breaker_state",
        Gauge,
        "The catalog's Redis breaker: 0 closed, 1 half-open, 2 open",
    ),
];

/// Gives every metric its HELP text, and sets `flashgate_build_info`.
pub(crate) fn describe() {
    for &(name, kind, help) in METRICS {
        match kind {
            Counter => metrics::describe_counter!(name, help),
            Gauge => metrics::describe_gauge!(name, help),
            Histogram => metrics::describe_histogram!(name, help),
        }
    }
    metrics::gauge!("flashgate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every `"flashgate_…"` string in the workspace's sources.
    fn names_in_sources() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() {
                    if !name.starts_with('.') && !matches!(name.as_str(), "target" | "tests") {
                        dirs.push(path);
                    }
                } else if name.ends_with(".rs") && !path.ends_with("telemetry/catalogue.rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (at, _) in text.match_indices("\"flashgate_") {
                        // A metric's name is the first argument of a metrics macro (or of
                        // the catalog's helpers that pass it on).
                        let before = text[..at].trim_end();
                        let callers = [
                            "counter!(",
                            "gauge!(",
                            "histogram!(",
                            "by_layer(",
                            "by_kind(",
                        ];
                        if !callers.iter().any(|s| before.ends_with(s)) {
                            continue;
                        }
                        let metric: String = text[at + 1..]
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'
                            })
                            .collect();
                        found.push((metric, path.display().to_string()));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_metric_used_is_described_and_every_described_one_is_used() {
        let used = names_in_sources();
        assert!(used.len() > 30, "the sources were read: {used:?}");
        for (name, file) in &used {
            assert!(
                METRICS.iter().any(|(m, _, _)| m == name),
                "{file} uses {name}, which telemetry/catalogue.rs does not describe"
            );
        }
        for (name, _, _) in METRICS {
            let in_use = *name == "flashgate_build_info" || used.iter().any(|(n, _)| n == name);
            assert!(in_use, "{name} is described but nothing records it");
        }
    }

    #[test]
    fn the_dashboard_and_the_alerts_query_only_metrics_that_exist() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        for file in ["grafana/flashgate.json", "prometheus/alerts.yml"] {
            let text = std::fs::read_to_string(deploy.join(file)).unwrap();
            let mut queried = 0;
            for (at, _) in text.match_indices("flashgate_") {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                let family = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .filter(|base| METRICS.iter().any(|(m, k, _)| m == base && *k == Histogram))
                    .unwrap_or(&name);
                assert!(
                    METRICS.iter().any(|(m, _, _)| *m == family),
                    "deploy/{file} queries {name}, which flashgate does not export"
                );
                queried += 1;
            }
            assert!(queried > 10, "deploy/{file} was read");
        }
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for &(name, kind, help) in METRICS {
            assert!(name.starts_with("flashgate_"), "{name}");
            assert_eq!(
                name.ends_with("_total"),
                kind == Counter,
                "{name}: `_total` on counters only"
            );
            assert!(!help.is_empty() && !help.ends_with('.'), "{name}: {help:?}");
        }
    }

    #[test]
    fn metrics_are_rendered_with_their_help() {
        let handle = crate::telemetry::metrics();
        metrics::counter!("flashgate_holds_expired_total").increment(1);
        let text = handle.render();
        assert!(
            text.contains("# HELP flashgate_holds_expired_total Unpaid holds expired"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE flashgate_holds_expired_total counter"),
            "{text}"
        );
        assert!(text.contains("flashgate_build_info{version=\""), "{text}");
    }
}
