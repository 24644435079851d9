//! Logs (tracing, text or JSON), traces (the same spans, exported over OTLP when
//! `telemetry.otlp_endpoint` is set) and metrics (one Prometheus recorder per process,
//! every metric described in [`catalogue`]).

pub mod catalogue;
pub mod window;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryConfig};
use crate::{Error, Result};

/// What `init` started that must be flushed before the process ends: dropping it sends
/// the spans still buffered for export (it blocks until they are sent or time out).
#[must_use = "dropping it flushes and stops the trace export"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("flashgate: traces not flushed: {e}");
        }
    }
}

/// Installs the global tracing subscriber (with the OTLP exporter when configured, its
/// spans named for `service`) and the metrics recorder (so nothing emitted before the
/// first scrape is lost). A second call (tests, `flashgate all`) installs nothing more.
pub fn init(config: &TelemetryConfig, service: &'static str) -> Result<Telemetry> {
    metrics();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_filter));
    let fmt = tracing_subscriber::fmt::layer()
        .with_span_events(FmtSpan::NONE)
        .with_target(true);
    let fmt = match config.log_format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Text => fmt.compact().boxed(),
    };
    let traces = config
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| tracer_provider(endpoint, service))
        .transpose()?;
    let export = traces
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("flashgate")));
    // An error only means a subscriber is already installed, which is what we want.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(export)
        .with(filter)
        .try_init();
    Ok(Telemetry { traces })
}

/// Spans batched on a thread of their own and posted to `endpoint` (OTLP/HTTP, protobuf).
fn tracer_provider(endpoint: &str, service: &'static str) -> Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| Error::Config(format!("telemetry.otlp_endpoint {endpoint:?}: {e}")))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}

/// Records how long tickets took to reach their final answer `outcome` (`paid`,
/// `failed`, `expired`, `sold_out`): pairs of (issued, answered).
pub fn record_final_answers(
    outcome: &'static str,
    answers: impl IntoIterator<Item = (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
) {
    let histogram = metrics::histogram!("flashgate_ticket_final_seconds", "outcome" => outcome);
    for (issued, answered) in answers {
        let took = (answered - issued).num_microseconds().unwrap_or(i64::MAX);
        histogram.record(took.max(0) as f64 / 1e6);
    }
}

/// How often the recorder's histogram samples are drained into their buckets. Until
/// then it keeps every sample (16 bytes each, by the test below), and `build_recorder`
/// leaves the draining to its caller or to a scrape: unscraped, a role grew by 16–20
/// bytes a request, the catalog to 117.7 MiB over its benchmarks' 4.7 million requests
/// (`all-20261205-184654`; 28.7–32.4 MiB drained, `all-20261205-203934`).
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Passes of the recorder's upkeep so far (tests wait on it).
static UPKEEPS: AtomicU64 = AtomicU64::new(0);

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
            .expect("bucket list is not empty")
            // Tickets per batch (`*_batch_tickets`), not seconds.
            .set_buckets_for_metric(
                Matcher::Suffix("_batch_tickets".into()),
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
            )
            .expect("bucket list is not empty")
            // Time in the queue: seconds to minutes in a crowded sale.
            .set_buckets_for_metric(
                Matcher::Suffix("_queue_seconds".into()),
                &[
                    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                    600.0,
                ],
            )
            .expect("bucket list is not empty")
            // Time to a final answer: through payment and holds, up to the longest hold.
            .set_buckets_for_metric(
                Matcher::Full("flashgate_ticket_final_seconds".into()),
                &[
                    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                ],
            )
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder was installed first; then ours just renders empty.
        let _ = metrics::set_global_recorder(recorder);
        catalogue::describe();
        let upkeep = handle.clone();
        let started = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                    UPKEEPS.fetch_add(1, Ordering::Release);
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "metrics upkeep not started: histograms drain only when scraped");
        }
        handle
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test in this binary that installs the global subscriber.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_reach_the_otlp_endpoint_with_their_fields_and_service() {
        let (sent, mut received) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let collector = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let _ = sent.send(body.to_vec());
                async { "" }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, collector).await });
        let config = TelemetryConfig {
            otlp_endpoint: Some(format!("http://{addr}/v1/traces")),
            log_filter: "info".into(),
            ..TelemetryConfig::default()
        };
        let telemetry = init(&config, "flashgate-otlp-test").unwrap();
        let ticket = uuid::Uuid::now_v7().to_string();
        tracing::info_span!("pay", ticket = %ticket).in_scope(|| tracing::info!("paid"));
        // Dropping flushes the batch; it blocks, so not on a runtime thread.
        tokio::task::spawn_blocking(move || drop(telemetry))
            .await
            .unwrap();
        let body = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
            .await
            .expect("the exporter posted within 10 s")
            .unwrap();
        let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"pay"), "the span's name");
        assert!(has(ticket.as_bytes()), "the span's ticket field");
        assert!(has(b"flashgate-otlp-test"), "the service name");
    }

    fn resident_kib() -> i64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Histogram samples wait in the recorder until they are drained into buckets; the
    /// upkeep drains them every second, scraped or not, so the memory they take is what
    /// a second of traffic records, not everything since the last scrape.
    #[test]
    fn histogram_samples_are_drained_without_a_scrape() {
        let _handle = metrics();
        let histogram = metrics::histogram!(
            "flashgate_http_request_duration_seconds",
            "route" => "/upkeep-test"
        );
        let before = resident_kib();
        // 9 million samples: the process grew 142 MiB when none were drained (measured
        // with the drain taken out of the upkeep), 25 MiB drained (about two rounds'
        // samples).
        for round in 0..6 {
            let passes = UPKEEPS.load(Ordering::Acquire);
            for n in 0..1_500_000 {
                histogram.record(f64::from(n) * 1e-6);
            }
            // A whole pass after the last sample.
            let deadline = std::time::Instant::now() + UPKEEP_EVERY * 10;
            while UPKEEPS.load(Ordering::Acquire) < passes + 2 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: the recorder's upkeep never ran"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let grown = resident_kib() - before;
        assert!(grown < 48 * 1024, "resident memory grew by {grown} KiB");
    }

    #[test]
    fn a_malformed_endpoint_is_a_configuration_error() {
        assert!(matches!(
            tracer_provider("not a url", "x"),
            Err(Error::Config(_))
        ));
    }
}
