//! Latency and outcome recording: one recorder per worker, merged at the end.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The kinds of call the load tester makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// AuthorizationService.Check.
    Check,
    /// AuthorizationService.BatchCheck.
    Batch,
    /// AuthorizationService.CheckResources.
    Resources,
    /// AuthorizationService.FilterRows.
    Filter,
    /// grpc.health.v1 Check: the transport ceiling.
    Health,
    /// PolicyAdminService.PushSnapshot.
    Push,
    /// From a push's acknowledgement to the first Check answered by the pushed version,
    /// one sample per target.
    Visible,
    /// From a push's acknowledgement until every target answers from the pushed version
    /// (push-to-fleet convergence).
    Fleet,
    /// PolicyAdminService.RevokePrincipal.
    Revoke,
    /// From a revocation's acknowledgement to the first Check for that principal denied as
    /// revoked, one sample per target.
    Denied,
    /// From a revocation's acknowledgement until every target denies (revocation-to-fleet).
    RevokeFleet,
}

impl Kind {
    /// All kinds, in report order.
    pub const ALL: [Kind; 11] = [
        Kind::Check,
        Kind::Batch,
        Kind::Resources,
        Kind::Filter,
        Kind::Health,
        Kind::Push,
        Kind::Visible,
        Kind::Fleet,
        Kind::Revoke,
        Kind::Denied,
        Kind::RevokeFleet,
    ];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Check => "check",
            Kind::Batch => "batch",
            Kind::Resources => "resources",
            Kind::Filter => "filter",
            Kind::Health => "health",
            Kind::Push => "push",
            Kind::Visible => "visible",
            Kind::Fleet => "push-fleet",
            Kind::Revoke => "revoke",
            Kind::Denied => "denied",
            Kind::RevokeFleet => "revoke-fleet",
        }
    }
}

/// 1 µs .. 100 s at `digits` significant digits; values in microseconds.
#[expect(clippy::expect_used, reason = "constant, valid bounds cannot fail")]
fn histogram(digits: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, digits).expect("valid histogram bounds")
}

/// Outcomes of one kind of call.
#[derive(Debug, Clone)]
pub struct Series {
    /// Latency of successful calls, µs.
    pub latency: Histogram<u64>,
    /// Failed calls by gRPC status code name.
    pub errors: BTreeMap<String, u64>,
    /// Latency of failed calls, µs (a refusal under overload should be fast).
    pub error_latency: Histogram<u64>,
    /// Decisions returned (a batch counts each).
    pub decisions: u64,
}

impl Default for Series {
    /// Three significant digits, for the totals.
    fn default() -> Self {
        Series::with_digits(3)
    }
}

impl Series {
    fn with_digits(digits: u8) -> Self {
        Series {
            latency: histogram(digits),
            errors: BTreeMap::new(),
            error_latency: histogram(digits),
            decisions: 0,
        }
    }

    /// Two significant digits, for the per-second series: a tenth of the memory, so the
    /// buckets every worker opens each second cost no pause in an open-loop run.
    fn coarse() -> Self {
        Series::with_digits(2)
    }
}

impl Series {
    fn merge(&mut self, other: &Series) {
        let _ = self.latency.add(&other.latency);
        let _ = self.error_latency.add(&other.error_latency);
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.decisions += other.decisions;
    }

    /// Calls made, successful or not.
    pub fn calls(&self) -> u64 {
        self.latency.len() + self.errors.values().sum::<u64>()
    }
}

/// What one worker saw: per kind, overall and per second of the run.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    /// Whole measured period.
    pub total: BTreeMap<Kind, Series>,
    /// Per second since the end of warm-up.
    pub seconds: Vec<BTreeMap<Kind, Series>>,
    /// Per-target samples (visible, denied), keyed by kind and target URL.
    pub per_target: BTreeMap<(Kind, String), Series>,
    /// Decisions that differed from the bundle's own answer (`--verify`).
    pub mismatches: u64,
    /// First few mismatches, described.
    pub mismatch_examples: Vec<String>,
}

impl Recorder {
    /// Records a call that ended `since_start` after measurement began.
    pub fn record(&mut self, kind: Kind, since_start: Duration, latency: Duration, outcome: Result<u64, tonic::Code>) {
        let second = since_start.as_secs() as usize;
        if self.seconds.len() <= second {
            self.seconds.resize_with(second + 1, BTreeMap::new);
        }
        let micros = micros(latency);
        apply(self.total.entry(kind).or_default(), micros, outcome);
        if let Some(bucket) = self.seconds.get_mut(second) {
            apply(bucket.entry(kind).or_insert_with(Series::coarse), micros, outcome);
        }
    }

    /// Records a sample of `kind` on one target, both overall and under that target.
    pub fn record_on(
        &mut self,
        target: &str,
        kind: Kind,
        since_start: Duration,
        latency: Duration,
        outcome: Result<u64, tonic::Code>,
    ) {
        self.record(kind, since_start, latency, outcome);
        apply(
            self.per_target.entry((kind, target.to_owned())).or_default(),
            micros(latency),
            outcome,
        );
    }

    /// Folds another worker's recorder into this one.
    pub fn merge(&mut self, other: &Recorder) {
        for (k, s) in &other.total {
            self.total.entry(*k).or_default().merge(s);
        }
        if self.seconds.len() < other.seconds.len() {
            self.seconds.resize_with(other.seconds.len(), BTreeMap::new);
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            for (k, s) in theirs {
                mine.entry(*k).or_insert_with(Series::coarse).merge(s);
            }
        }
        for (k, s) in &other.per_target {
            self.per_target.entry(k.clone()).or_default().merge(s);
        }
        self.mismatches += other.mismatches;
        for m in &other.mismatch_examples {
            if self.mismatch_examples.len() < 5 {
                self.mismatch_examples.push(m.clone());
            }
        }
    }
}

/// A latency in whole microseconds, within the histogram's range.
fn micros(latency: Duration) -> u64 {
    (latency.as_micros() as u64).clamp(1, 100_000_000)
}

fn apply(s: &mut Series, micros: u64, outcome: Result<u64, tonic::Code>) {
    match outcome {
        Ok(decisions) => {
            let _ = s.latency.record(micros);
            s.decisions += decisions;
        }
        Err(code) => {
            let _ = s.error_latency.record(micros);
            *s.errors.entry(format!("{code:?}")).or_default() += 1;
        }
    }
}
