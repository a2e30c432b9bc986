//! The audit trail's cost per record: records offered to a real trail (bounded queue, the
//! writer thread serializing, hash-chaining and writing to files in a temporary directory)
//! until the writer has written them all. Pin it to one core (`taskset -c 1`) to see what
//! a record costs a server whose request and writer threads share that core.
//! `audit/record_written` is one Check's record; `audit/decision_in_group_written` is the
//! cost per decision of a CheckResources call's `decisions` record of 100.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench code")]

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_policy::bundle::AuditBackpressure;
use portcullis_server::audit::{Audit, AuditItem, AuditRecord, Coverage, Deferred, SinkConfig, group};
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

/// Decisions in a group record.
const GROUP: usize = 100;

/// A CheckResources call's record: the clinic decision's shared fields, `GROUP` items
/// that differ in action and resource id.
struct Group(AuditRecord<'static>);

impl Group {
    fn new() -> Self {
        let one = decision();
        let item = AuditItem {
            action: one.action.clone(),
            outcome: one.outcome,
            reason: one.reason.clone(),
            requirement: one.requirement.clone(),
            resource_id: one.resource_id.clone(),
            resource_type: one.resource_type.clone(),
            rule: one.rule.clone(),
            severity: one.severity,
            tenant: one.tenant.clone(),
            ..AuditItem::default()
        };
        // A listing's buttons: one patient's records, each read and edited.
        let items = (0..GROUP)
            .map(|n| AuditItem {
                action: if n % 2 == 0 { "read" } else { "edit" }.into(),
                resource_id: format!("p-{}", n / 2).into(),
                ..item.clone()
            })
            .collect();
        let (columns, decisions, same) = group(items);
        Group(AuditRecord {
            kind: "decisions",
            columns,
            decisions,
            same,
            ..one
        })
    }
}

impl Deferred for Group {
    fn render<'a>(&'a self, _: &'a mut String) -> AuditRecord<'a> {
        self.0.clone()
    }

    fn decisions(&self) -> usize {
        GROUP
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
        poll_every: portcullis_server::audit::POLL_EVERY,
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
    c.bench_function("audit/decision_in_group_written", |b| {
        b.iter_custom(|decisions| {
            let groups = decisions.div_ceil(GROUP as u64);
            let records: Vec<Box<Group>> = (0..groups).map(|_| Box::new(Group::new())).collect();
            runtime.block_on(async {
                let before = trail.counters().0;
                let start = Instant::now();
                for record in records {
                    trail.submit_deferred(record, AuditBackpressure::Block).await;
                }
                while trail.counters().0 < before + groups * GROUP as u64 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                // Per decision asked for, of those written.
                start
                    .elapsed()
                    .mul_f64(decisions as f64 / (groups * GROUP as u64) as f64)
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
