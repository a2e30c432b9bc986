//! Latency and outcome recording: one recorder per worker, merged at the end.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
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

    /// Two significant digits, for the per-second series: a tenth of the memory.
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

/// Per-second series of a whole run, shared by its workers: one bucket per kind and
/// second, opened once for the run. (Opened by each of 64 workers as they crossed into a
/// second, the buckets cost megabytes of fresh memory at the same instant, which stalled
/// an open-loop run's client for milliseconds every second and set its p99.) A call takes
/// its lock once, uncontended when the client runs on one thread (as `perf.sh` runs it).
#[derive(Debug, Default)]
pub struct Timeline(Mutex<Vec<BTreeMap<Kind, Series>>>);

impl Timeline {
    fn record(&self, kind: Kind, second: usize, micros: u64, outcome: Result<u64, tonic::Code>) {
        let Ok(mut seconds) = self.0.lock() else { return };
        if seconds.len() <= second {
            seconds.resize_with(second + 1, BTreeMap::new);
        }
        if let Some(bucket) = seconds.get_mut(second) {
            apply(bucket.entry(kind).or_insert_with(Series::coarse), micros, outcome);
        }
    }

    /// The buckets, second by second since the end of warm-up.
    pub fn seconds(&self) -> Vec<BTreeMap<Kind, Series>> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// What one worker saw, overall; each call also goes into the run's shared [`Timeline`].
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Whole measured period.
    pub total: BTreeMap<Kind, Series>,
    /// Per-target samples (visible, denied), keyed by kind and target URL.
    pub per_target: BTreeMap<(Kind, String), Series>,
    /// Decisions that differed from the bundle's own answer (`--verify`).
    pub mismatches: u64,
    /// First few mismatches, described.
    pub mismatch_examples: Vec<String>,
    timeline: Arc<Timeline>,
}

impl Recorder {
    /// A recorder into `timeline` whose totals for `kinds` are allocated now, before the
    /// measured period, rather than by the first call recorded in it.
    pub fn new(timeline: Arc<Timeline>, kinds: impl IntoIterator<Item = Kind>) -> Self {
        Recorder {
            total: kinds.into_iter().map(|k| (k, Series::default())).collect(),
            per_target: BTreeMap::new(),
            mismatches: 0,
            mismatch_examples: Vec::new(),
            timeline,
        }
    }

    /// Records a call that ended `since_start` after measurement began.
    pub fn record(&mut self, kind: Kind, since_start: Duration, latency: Duration, outcome: Result<u64, tonic::Code>) {
        let micros = micros(latency);
        apply(self.total.entry(kind).or_default(), micros, outcome);
        self.timeline
            .record(kind, since_start.as_secs() as usize, micros, outcome);
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

    /// Folds another worker's totals into this one (the timeline is already shared).
    pub fn merge(&mut self, other: &Recorder) {
        for (k, s) in &other.total {
            self.total.entry(*k).or_default().merge(s);
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

    /// The run's per-second buckets.
    pub fn seconds(&self) -> Vec<BTreeMap<Kind, Series>> {
        self.timeline.seconds()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_share_one_timeline_and_keep_their_own_totals() {
        let timeline = Arc::new(Timeline::default());
        let mut a = Recorder::new(timeline.clone(), [Kind::Check]);
        let mut b = Recorder::new(timeline.clone(), [Kind::Check]);
        // Allocated before the first call, not by it.
        assert_eq!(a.total[&Kind::Check].calls(), 0);
        let ms = Duration::from_millis;
        a.record(Kind::Check, ms(100), ms(2), Ok(1));
        b.record(Kind::Check, ms(900), ms(4), Ok(1));
        b.record(Kind::Check, ms(1500), ms(3), Err(tonic::Code::Unavailable));
        assert_eq!((a.total[&Kind::Check].calls(), b.total[&Kind::Check].calls()), (1, 2));

        let seconds = timeline.seconds();
        assert_eq!(seconds.len(), 2);
        assert_eq!(seconds[0][&Kind::Check].latency.len(), 2, "both workers' first second");
        assert_eq!(seconds[1][&Kind::Check].errors["Unavailable"], 1);

        a.merge(&b);
        let check = &a.total[&Kind::Check];
        assert_eq!((check.calls(), check.decisions), (3, 2));
        // Merging totals leaves the shared timeline as it was.
        assert_eq!(a.seconds()[0][&Kind::Check].latency.len(), 2);
    }
}
