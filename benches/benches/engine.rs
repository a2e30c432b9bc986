//! In-process engine benchmarks: check (allow, deny), batch of 100, check_each of 100,
//! filter_rows and compile,
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "bench code"
)]
//! at each scale of `PORTCULLIS_BENCH_SCALES`, so a flat per-check cost is visible.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_benches::{good_session, requests, scales};
use portcullis_policy::{CompileOptions, Overlay, compile_with};
use std::hint::black_box;

fn engine(c: &mut Criterion) {
    let options = CompileOptions {
        self_check_samples: Some(16),
        ..CompileOptions::default()
    };
    for w in scales() {
        let snapshot = compile_with(&w.bundle, 1, options.clone()).unwrap_or_else(|e| panic!("{}: {e}", w.name));
        // The example has locked and dormant accounts: keep the requests that really allow.
        let allow: Vec<_> = requests(&w.bundle, w.at, 1024, true, 1)
            .into_iter()
            .filter(|r| snapshot.check(r, Overlay::empty()).is_allowed())
            .collect();
        let deny = requests(&w.bundle, w.at, 1024, false, 2);
        assert!(allow.len() >= 100, "{}: only {} allowed requests", w.name, allow.len());
        assert!(
            deny.iter().all(|r| !snapshot.check(r, Overlay::empty()).is_allowed()),
            "{}: deny set",
            w.name
        );

        let mut group = c.benchmark_group("check");
        for (label, set) in [("allow", &allow), ("deny", &deny)] {
            let mut i = 0usize;
            group.bench_function(BenchmarkId::new(label, &w.name), |b| {
                b.iter(|| {
                    i = (i + 1) % set.len();
                    black_box(snapshot.check(black_box(&set[i]), Overlay::empty()))
                })
            });
        }
        group.finish();

        let batch: Vec<_> = allow.iter().take(100).cloned().collect();
        c.bench_function(&format!("batch_check_100/{}", w.name), |b| {
            b.iter(|| black_box(snapshot.batch_check(black_box(&batch), Overlay::empty())))
        });

        // CheckResources' engine part: one principal and session, 100 resources of theirs
        // (the principal resolved once; items moved in, as the server does).
        let mut base = allow[0].clone();
        let items: Vec<_> = allow
            .iter()
            .filter(|r| r.principal == base.principal)
            .cycle()
            .take(100)
            .map(|r| (r.resource.clone(), [r.action.clone()]))
            .collect();
        c.bench_function(&format!("check_each_100/{}", w.name), |b| {
            b.iter_batched(
                || items.clone(),
                |items| {
                    let mut allowed = 0;
                    snapshot.check_each(&mut base, items, Overlay::empty(), |_, d| {
                        allowed += usize::from(d.is_allowed());
                    });
                    black_box(allowed)
                },
                criterion::BatchSize::SmallInput,
            )
        });

        if let Some(wide) = w.bundle.grants.iter().find(|g| g.id.as_deref() == Some("wide")) {
            let principal = wide.principal.as_deref().unwrap_or_default().to_owned();
            let session = good_session(w.at);
            c.bench_function(&format!("filter_rows_100k/{}", w.name), |b| {
                b.iter(|| {
                    black_box(snapshot.filter_rows(
                        &principal,
                        "read",
                        "patient_record",
                        &session,
                        w.at,
                        Overlay::empty(),
                    ))
                })
            });
        }

        if w.bundle.principals.len() <= 10_000 {
            c.bench_function(&format!("compile/{}", w.name), |b| {
                b.iter(|| {
                    black_box(compile_with(
                        &w.bundle,
                        1,
                        CompileOptions {
                            self_check_samples: Some(0),
                            ..options.clone()
                        },
                    ))
                })
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = engine
}
criterion_main!(benches);
