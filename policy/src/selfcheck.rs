//! The compiler's self-check and the policy-test runner: a compiled snapshot goes live only
//! if it agrees with the reference evaluator and passes the bundle's own tests.

use crate::bundle::{Bundle, PolicyTest};
use crate::decision::Decision;
use crate::overlay::Overlay;
use crate::reference;
use crate::snapshot::Snapshot;
use crate::synth;

/// A request on which the compiled evaluator, the reference or a test expectation disagree.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct Mismatch {
    /// The test name, or `generated request N`.
    pub what: String,
    /// What differed.
    pub detail: String,
}

/// Outcome of one policy test.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOutcome {
    /// Test name.
    pub name: String,
    /// The compiled evaluator's decision.
    pub decision: Decision,
    /// `None` when the test passed; otherwise why not.
    pub failure: Option<String>,
}

fn summary(d: &Decision) -> String {
    format!("{:?} ({})", d.effect, d.reason.as_str())
}

/// Runs policy tests on the compiled snapshot, also checking each against the reference.
pub fn run_tests(bundle: &Bundle, snapshot: &Snapshot, tests: &[PolicyTest]) -> Vec<TestOutcome> {
    tests
        .iter()
        .map(|t| {
            let decision = snapshot.check(&t.request, Overlay::empty());
            let reference = reference::check(bundle, Overlay::empty(), &t.request, snapshot.version());
            let reason_ok = t.reason.is_none_or(|r| r == decision.reason);
            let failure = if decision.effect != t.expect || !reason_ok {
                let want = match t.reason {
                    Some(r) => format!("{:?} ({})", t.expect, r.as_str()),
                    None => format!("{:?}", t.expect),
                };
                Some(format!("expected {want}, got {}", summary(&decision)))
            } else if !same(&decision, &reference) {
                Some(format!(
                    "compiled says {}, reference says {}",
                    summary(&decision),
                    summary(&reference)
                ))
            } else {
                None
            };
            TestOutcome {
                name: t.name.clone(),
                decision,
                failure,
            }
        })
        .collect()
}

/// Whether two decisions agree on effect, reason, rule and flags.
pub fn same(a: &Decision, b: &Decision) -> bool {
    a.effect == b.effect && a.reason == b.reason && a.rule == b.rule && a.flags == b.flags
}

/// Runs the bundle's tests and `samples` generated requests through both evaluators,
/// stopping early once `stop` says so.
pub fn verify(
    bundle: &Bundle,
    snapshot: &Snapshot,
    samples: usize,
    seed: u64,
    stop: &dyn Fn() -> bool,
) -> Vec<Mismatch> {
    let mut out: Vec<Mismatch> = run_tests(bundle, snapshot, &bundle.tests)
        .into_iter()
        .filter_map(|o| {
            o.failure.map(|detail| Mismatch {
                what: format!("policy test `{}`", o.name),
                detail,
            })
        })
        .collect();
    let mut rng = synth::rng(seed);
    for i in 0..samples {
        if stop() {
            break;
        }
        let req = synth::random_request(bundle, &mut rng);
        let compiled = snapshot.check(&req, Overlay::empty());
        let expected = reference::check(bundle, Overlay::empty(), &req, snapshot.version());
        if !same(&compiled, &expected) {
            out.push(Mismatch {
                what: format!("generated request {i}"),
                detail: format!(
                    "compiled says {}, reference says {} for {}",
                    summary(&compiled),
                    summary(&expected),
                    serde_json::to_string(&req).unwrap_or_default()
                ),
            });
        }
    }
    out
}
