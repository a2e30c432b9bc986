//! The audit trail's cost per record: records offered to a real trail (bounded queue, the
//! writer thread serializing, hash-chaining and writing to files in a temporary directory)
//! until the writer has written them all. Pin it to one core (`taskset -c 1`) to see what
//! a record costs a server whose request and writer threads share that core.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench code")]

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_policy::bundle::AuditBackpressure;
use portcullis_server::audit::{Audit, AuditRecord, Coverage, SinkConfig};
use std::time::{Duration, Instant};

/// A decision record of the size the clinic example's decisions have.
fn decision() -> AuditRecord<'static> {
    AuditRecord {
        kind: "decision",
        severity: "info",
        principal: "dr-ann".into(),
        action: "read".into(),
        resource_type: "patient_record".into(),
        resource_id: "p-1".into(),
        tenant: Some("clinic-north".into()),
        outcome: "allow",
        reason: "granted".into(),
        requirement: "R2".into(),
        rule: "north-clinicians".into(),
        version: 1,
        decision_time: "1795428000".into(),
        client: "127.0.0.1:50312 token:3f2a9c1be07d credential:check".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        replica: "replica-1".into(),
        time: "2026-12-01T20:00:00.000Z".into(),
        id: "18d2c5a1b3f-42".into(),
        ..AuditRecord::default()
    }
}

fn audit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("portcullis-bench-audit-{}", std::process::id()));
    let config = SinkConfig {
        dir: dir.clone(),
        max_file_bytes: 64 << 20,
        max_file_age: Duration::from_secs(3600),
        sync_every: Duration::from_millis(100),
    };
    let trail = Audit::start(config, 65_536, Coverage::Required).unwrap();
    let record = decision();
    c.bench_function("audit/record_written", |b| {
        b.iter_custom(|records| {
            runtime.block_on(async {
                let before = trail.counters().0;
                let start = Instant::now();
                for _ in 0..records {
                    trail.submit(record.clone(), AuditBackpressure::Block).await;
                }
                // Sleep, not spin: a spinning waiter would take the writer's core.
                while trail.counters().0 < before + records {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                start.elapsed()
            })
        })
    });
    runtime.block_on(trail.close());
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(2));
    targets = audit
}
criterion_main!(benches);
