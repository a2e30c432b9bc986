//! Metrics, kept in atomics on the hot path and rendered in the Prometheus text format by
//! a small HTTP endpoint on its own port (`--metrics-listen`).

use crate::audit::Audit;
use crate::engine::Engine;
use portcullis_policy::{Effect, Reason};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// RPCs with latency histograms.
pub const RPCS: [&str; 15] = [
    "Check",
    "BatchCheck",
    "FilterRows",
    "ListSubjects",
    "ListPrincipalAccess",
    "Explain",
    "PushSnapshot",
    "ValidateSnapshot",
    "GetSnapshotInfo",
    "ListVersions",
    "Rollback",
    "RevokePrincipal",
    "ReinstatePrincipal",
    "GrantTemporary",
    "ExportSnapshot",
];

/// Histogram bucket bounds, seconds.
const BUCKETS: [f64; 15] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b)
            && let Some(b) = self.buckets.get(i)
        {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }
}

/// Every metric the server exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// [allow, deny] x reason.
    decisions: [[AtomicU64; Reason::ALL.len()]; 2],
    rpc: [Histogram; RPCS.len()],
    compile_seconds_micros: AtomicU64,
    /// Whether the last attempt to follow a shared store succeeded.
    store_up: std::sync::atomic::AtomicBool,
    /// Decision calls refused because too many were in flight.
    shed: AtomicU64,
}

/// Records an RPC's latency when dropped.
#[derive(Debug)]
pub struct Timer<'a> {
    histogram: Option<&'a Histogram>,
    start: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.histogram {
            h.observe(self.start.elapsed().as_secs_f64());
        }
    }
}

impl Metrics {
    /// Records whether the shared store answered the last catch-up.
    pub fn store_up(&self, up: bool) {
        self.store_up.store(up, Ordering::Relaxed);
    }

    /// Counts a decision call refused at the concurrency limit.
    pub fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts timing an RPC (one of `RPCS`).
    pub fn time(&self, rpc: &str) -> Timer<'_> {
        let histogram = RPCS.iter().position(|r| *r == rpc).and_then(|i| self.rpc.get(i));
        Timer {
            histogram,
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

    /// The Prometheus text exposition.
    pub fn render(&self, engine: &Engine, audit: Option<&Audit>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP portcullis_decisions_total Decisions by effect and reason code."
        );
        let _ = writeln!(out, "# TYPE portcullis_decisions_total counter");
        for (row, effect) in ["allow", "deny"].iter().enumerate() {
            for (i, reason) in Reason::ALL.iter().enumerate() {
                let n = self
                    .decisions
                    .get(row)
                    .and_then(|r| r.get(i))
                    .map_or(0, |c| c.load(Ordering::Relaxed));
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "portcullis_decisions_total{{effect=\"{effect}\",reason=\"{}\",requirement=\"{}\"}} {n}",
                        reason.as_str(),
                        reason.rule_id()
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP portcullis_rpc_duration_seconds Server-side handling time per RPC."
        );
        let _ = writeln!(out, "# TYPE portcullis_rpc_duration_seconds histogram");
        for (name, h) in RPCS.iter().zip(&self.rpc) {
            let count = h.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (bound, b) in BUCKETS.iter().zip(&h.buckets) {
                cumulative += b.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "portcullis_rpc_duration_seconds_bucket{{rpc=\"{name}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "portcullis_rpc_duration_seconds_bucket{{rpc=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "portcullis_rpc_duration_seconds_sum{{rpc=\"{name}\"}} {}",
                h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
            );
            let _ = writeln!(out, "portcullis_rpc_duration_seconds_count{{rpc=\"{name}\"}} {count}");
        }
        let compile_seconds = self.compile_seconds_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let store_up = u8::from(self.store_up.load(Ordering::Relaxed));
        let mut scalars: Vec<(&str, &str, &str, f64)> = vec![
            (
                "portcullis_snapshot_version",
                "gauge",
                "Live snapshot version (0: none).",
                engine.version() as f64,
            ),
            (
                "portcullis_snapshot_compile_seconds",
                "gauge",
                "Time the last push took to parse, validate and compile.",
                compile_seconds,
            ),
            (
                "portcullis_overlay_seq",
                "gauge",
                "Last overlay change (revocation, temporary grant) applied.",
                engine.overlay_seq() as f64,
            ),
            (
                "portcullis_store_skipped_versions_total",
                "counter",
                "Stored versions refused because they did not verify or compile.",
                engine.skipped_versions() as f64,
            ),
            (
                "portcullis_shed_total",
                "counter",
                "Decision calls refused with RESOURCE_EXHAUSTED at max_concurrent_decisions.",
                self.shed.load(Ordering::Relaxed) as f64,
            ),
            (
                "portcullis_activity_principals",
                "gauge",
                "Principals with an observed authentication (R7 dormancy).",
                engine.observed_activity().len() as f64,
            ),
            (
                "portcullis_activity_unsynced",
                "gauge",
                "Observed authentications not yet written to the store.",
                engine.unsynced_activity() as f64,
            ),
        ];
        if engine.store().shared() {
            scalars.push((
                "portcullis_store_up",
                "gauge",
                "Whether the shared store answered the last catch-up.",
                f64::from(store_up),
            ));
            scalars.push((
                "portcullis_store_seconds_since_sync",
                "gauge",
                "Time since the shared store was last heard from.",
                engine.since_sync_ms() as f64 / 1e3,
            ));
        }
        for (name, kind, help, value) in scalars {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        if let Some(a) = audit {
            let (written, dropped, refused, errors) = a.counters();
            let _ = writeln!(
                out,
                "# HELP portcullis_audit_queue_depth Audit records waiting for the sink."
            );
            let _ = writeln!(out, "# TYPE portcullis_audit_queue_depth gauge");
            let _ = writeln!(out, "portcullis_audit_queue_depth {}", a.queue_depth());
            let _ = writeln!(out, "# TYPE portcullis_audit_records_total counter");
            let _ = writeln!(out, "portcullis_audit_records_total{{result=\"written\"}} {written}");
            let _ = writeln!(out, "portcullis_audit_records_total{{result=\"dropped\"}} {dropped}");
            let _ = writeln!(out, "portcullis_audit_records_total{{result=\"refused\"}} {refused}");
            let _ = writeln!(out, "portcullis_audit_write_errors_total {errors}");
        }
        out
    }
}

/// Serves `GET /metrics` (anything else: 404) until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, engine: Arc<Engine>, audit: Option<Arc<Audit>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let (metrics, engine, audit) = (metrics.clone(), engine.clone(), audit.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let head = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
            let response = if head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?") {
                let body = metrics.render(&engine, audit.as_deref());
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
