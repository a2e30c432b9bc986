//! Metrics through OpenTelemetry. The hot path counts in atomics (`Metrics`); observable
//! instruments read them, and the engine's and audit trail's state, only when a reader
//! collects, so a decision pays nothing extra. RPC latency is an OpenTelemetry histogram.
//! Readers: the OpenTelemetry Prometheus exporter, served at `GET /metrics` (axum) on
//! `--metrics-listen`, and a periodic OTLP/gRPC exporter when `--otlp-endpoint` is set.
//!
//! Names, as Prometheus sees them (the exporter adds `_total` to counters and the unit
//! suffix `_seconds`): `portcullis_decisions_total{effect,reason,requirement}`,
//! `portcullis_rpc_duration_seconds{rpc}` (histogram), `portcullis_snapshot_version`,
//! `portcullis_snapshot_compile_seconds`, `portcullis_overlay_seq`,
//! `portcullis_store_skipped_versions_total`, `portcullis_shed_total`,
//! `portcullis_activity_principals`, `portcullis_activity_unsynced`, with a shared store
//! `portcullis_store_up` and `portcullis_store_seconds_since_sync`, and with the audit
//! trail `portcullis_audit_queue_depth`, `portcullis_audit_records_total{result}` and
//! `portcullis_audit_write_errors_total`.

use crate::audit::Audit;
use crate::engine::Engine;
use anyhow::{Context, Result};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter, MeterProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use portcullis_policy::{Effect, Reason};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;
use tokio::net::TcpListener;

/// Histogram bucket bounds, seconds.
const BUCKETS: [f64; 15] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The hot-path counters, and the latency histogram.
#[derive(Debug)]
pub struct Metrics {
    /// [allow, deny] x reason.
    decisions: [[AtomicU64; Reason::ALL.len()]; 2],
    rpc: Histogram<f64>,
    compile_seconds_micros: AtomicU64,
    /// Whether the last attempt to follow a shared store succeeded.
    store_up: AtomicBool,
    /// Decision calls refused because too many were in flight.
    shed: AtomicU64,
}

/// Records an RPC's latency when dropped.
#[derive(Debug)]
pub struct Timer<'a> {
    histogram: &'a Histogram<f64>,
    rpc: &'static str,
    start: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.histogram
            .record(self.start.elapsed().as_secs_f64(), &[KeyValue::new("rpc", self.rpc)]);
    }
}

impl Metrics {
    /// Counters at zero, the histogram on `meter`.
    pub fn new(meter: &Meter) -> Metrics {
        Metrics {
            decisions: Default::default(),
            rpc: meter
                .f64_histogram("portcullis_rpc_duration")
                .with_unit("s")
                .with_description("Server-side handling time per RPC.")
                .with_boundaries(BUCKETS.to_vec())
                .build(),
            compile_seconds_micros: AtomicU64::new(0),
            store_up: AtomicBool::new(false),
            shed: AtomicU64::new(0),
        }
    }

    /// Records whether the shared store answered the last catch-up.
    pub fn store_up(&self, up: bool) {
        self.store_up.store(up, Ordering::Relaxed);
    }

    /// Counts a decision call refused at the concurrency limit.
    pub fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts timing an RPC.
    pub fn time(&self, rpc: &'static str) -> Timer<'_> {
        Timer {
            histogram: &self.rpc,
            rpc,
            start: Instant::now(),
        }
    }

    /// Counts a decision.
    pub fn decision(&self, effect: Effect, reason: Reason) {
        let row = usize::from(effect == Effect::Deny);
        if let Some(c) = self.decisions.get(row).and_then(|r| r.get(reason as usize)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records how long the last compile took.
    pub fn compiled(&self, seconds: f64) {
        self.compile_seconds_micros
            .store((seconds * 1e6) as u64, Ordering::Relaxed);
    }
}

/// The server's meter provider and what its readers need.
#[derive(Debug)]
pub struct MetricsExport {
    provider: SdkMeterProvider,
    /// Where the Prometheus exporter keeps what it collects, when `/metrics` is served.
    registry: Option<prometheus::Registry>,
    /// Whether any reader (Prometheus, OTLP) collects at all.
    read: bool,
}

impl MetricsExport {
    /// A provider with the Prometheus reader when `prometheus` and an OTLP/gRPC reader
    /// when `otlp_endpoint` is given (none: instruments record into nothing).
    pub fn new(prometheus: bool, otlp_endpoint: Option<&str>) -> Result<MetricsExport> {
        let mut builder = SdkMeterProvider::builder().with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("portcullis")
                .build(),
        );
        let registry = if prometheus {
            let registry = prometheus::Registry::new();
            let exporter = opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .without_scope_info()
                .without_target_info()
                .build()
                .context("cannot set up the Prometheus exporter")?;
            builder = builder.with_reader(exporter);
            Some(registry)
        } else {
            None
        };
        if let Some(endpoint) = otlp_endpoint {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .with_context(|| format!("cannot set up OTLP metrics export to `{endpoint}`"))?;
            builder = builder.with_periodic_exporter(exporter);
        }
        Ok(MetricsExport {
            provider: builder.build(),
            read: registry.is_some() || otlp_endpoint.is_some(),
            registry,
        })
    }

    /// The meter every Portcullis instrument is made on.
    pub fn meter(&self) -> Meter {
        self.provider.meter("portcullis")
    }

    /// Registers the observable instruments over `metrics`, `engine` and `audit`, when a
    /// reader would call them (with none, the SDK logs an error per instrument at start).
    pub fn observe(&self, metrics: &Arc<Metrics>, engine: &Arc<Engine>, audit: Option<&Arc<Audit>>) {
        if !self.read {
            return;
        }
        let meter = self.meter();
        let m = metrics.clone();
        meter
            .u64_observable_counter("portcullis_decisions")
            .with_description("Decisions by effect and reason code.")
            .with_callback(move |o| {
                for (row, effect) in ["allow", "deny"].iter().enumerate() {
                    for (i, reason) in Reason::ALL.iter().enumerate() {
                        let n = m
                            .decisions
                            .get(row)
                            .and_then(|r| r.get(i))
                            .map_or(0, |c| c.load(Ordering::Relaxed));
                        if n > 0 {
                            o.observe(
                                n,
                                &[
                                    KeyValue::new("effect", *effect),
                                    KeyValue::new("reason", reason.as_str()),
                                    KeyValue::new("requirement", reason.rule_id()),
                                ],
                            );
                        }
                    }
                }
            })
            .build();
        let gauge = |name: &'static str,
                     unit: &'static str,
                     help: &'static str,
                     read: Box<dyn Fn() -> Option<f64> + Send + Sync>| {
            let mut b = meter.f64_observable_gauge(name).with_description(help);
            if !unit.is_empty() {
                b = b.with_unit(unit);
            }
            b.with_callback(move |o| {
                if let Some(v) = read() {
                    o.observe(v, &[]);
                }
            })
            .build();
        };
        let counter = |name: &'static str, help: &'static str, read: Box<dyn Fn() -> u64 + Send + Sync>| {
            meter
                .u64_observable_counter(name)
                .with_description(help)
                .with_callback(move |o| o.observe(read(), &[]))
                .build();
        };
        let e = engine.clone();
        gauge(
            "portcullis_snapshot_version",
            "",
            "Live snapshot version (0: none).",
            Box::new(move || Some(e.version() as f64)),
        );
        let m = metrics.clone();
        gauge(
            "portcullis_snapshot_compile",
            "s",
            "Time the last push took to parse, validate and compile.",
            Box::new(move || Some(m.compile_seconds_micros.load(Ordering::Relaxed) as f64 / 1e6)),
        );
        let e = engine.clone();
        gauge(
            "portcullis_overlay_seq",
            "",
            "Last overlay change (revocation, temporary grant) applied.",
            Box::new(move || Some(e.overlay_seq() as f64)),
        );
        let e = engine.clone();
        gauge(
            "portcullis_activity_principals",
            "",
            "Principals with an observed authentication (R7 dormancy).",
            Box::new(move || Some(e.observed_activity().len() as f64)),
        );
        let e = engine.clone();
        gauge(
            "portcullis_activity_unsynced",
            "",
            "Observed authentications not yet written to the store.",
            Box::new(move || Some(e.unsynced_activity() as f64)),
        );
        let (e, m) = (engine.clone(), metrics.clone());
        gauge(
            "portcullis_store_up",
            "",
            "Whether the shared store answered the last catch-up (shared stores only).",
            Box::new(move || {
                e.store()
                    .shared()
                    .then(|| f64::from(u8::from(m.store_up.load(Ordering::Relaxed))))
            }),
        );
        let e = engine.clone();
        gauge(
            "portcullis_store_seconds_since_sync",
            "",
            "Time since the shared store was last heard from (shared stores only).",
            Box::new(move || e.store().shared().then(|| e.since_sync_ms() as f64 / 1e3)),
        );
        let e = engine.clone();
        counter(
            "portcullis_store_skipped_versions",
            "Stored versions refused because they did not verify or compile.",
            Box::new(move || e.skipped_versions()),
        );
        let m = metrics.clone();
        counter(
            "portcullis_shed",
            "Decision calls refused at max_concurrent_decisions.",
            Box::new(move || m.shed.load(Ordering::Relaxed)),
        );
        let Some(audit) = audit else { return };
        let a = audit.clone();
        gauge(
            "portcullis_audit_queue_depth",
            "",
            "Audit records waiting for the sink.",
            Box::new(move || Some(a.queue_depth() as f64)),
        );
        let a = audit.clone();
        meter
            .u64_observable_counter("portcullis_audit_records")
            .with_description("Audit records by result.")
            .with_callback(move |o| {
                let (written, dropped, refused, _) = a.counters();
                for (result, n) in [("written", written), ("dropped", dropped), ("refused", refused)] {
                    o.observe(n, &[KeyValue::new("result", result)]);
                }
            })
            .build();
        let a = audit.clone();
        counter(
            "portcullis_audit_write_errors",
            "Writes to the audit trail that failed.",
            Box::new(move || a.counters().3),
        );
    }

    /// The Prometheus text exposition of everything collected now.
    pub fn prometheus_text(&self) -> String {
        let Some(registry) = &self.registry else {
            return String::new();
        };
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }

    /// Exports what is pending and stops the readers.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!("metrics shutdown: {e}");
        }
    }
}

/// Serves `GET /metrics` (anything else: 404) on `listener` until the process ends.
pub async fn serve(listener: TcpListener, telemetry: Arc<MetricsExport>) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let telemetry = telemetry.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                    telemetry.prometheus_text(),
                )
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("the metrics listener failed: {e}");
    }
}
