//! The compiler's self-check and the policy-test runner: a compiled snapshot goes live only
//! if it agrees with the reference evaluator and passes the bundle's own tests.

use crate::access::{Listing, Target};
use crate::bundle::{Bundle, FilterExpect, ListSubjectsTest, PolicyTest, PolicyTestFile, TestFlag};
use crate::decision::Decision;
use crate::filter::RowFilter;
use crate::overlay::Overlay;
use crate::reference;
use crate::request::Request;
use crate::snapshot::Snapshot;
use crate::synth;
use crate::time::Timestamp;
use std::collections::BTreeSet;

/// A request on which the compiled evaluator, the reference or a test expectation disagree.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct Mismatch {
    /// The test name, or `generated request N`.
    pub what: String,
    /// What differed.
    pub detail: String,
}

/// The kinds of case a policy test file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// A check: effect, reason, rule, flags.
    Check,
    /// A row filter: none with a reason, or SQL with parameters (R17).
    FilterRows,
    /// A listing: the principals who can (A2).
    ListSubjects,
}

impl CaseKind {
    /// The name the file and reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseKind::Check => "check",
            CaseKind::FilterRows => "filter_rows",
            CaseKind::ListSubjects => "list_subjects",
        }
    }
}

/// Outcome of one policy test case.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOutcome {
    /// Case name.
    pub name: String,
    /// What kind of case.
    pub kind: CaseKind,
    /// The compiled evaluator's decision (check cases).
    pub decision: Option<Decision>,
    /// `None` when the case passed; otherwise why not.
    pub failure: Option<String>,
}

/// A test file with cases that have no time and no file-level `now` to fall back on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} case(s) have no time and the file has no `now:` ({}); give each case an `at` or the file a `now:`, a test never runs at today's date",
    .0.len(),
    .0.join(", ")
)]
pub struct Untimed(pub Vec<String>);

fn summary(snapshot: &Snapshot, d: &Decision, hide_forbidden: bool) -> String {
    let mut out = format!("{} ({})", d.effect, d.reason.as_str());
    if let Some(rule) = &d.rule {
        out.push_str(&format!(" by `{}`", snapshot.rule_name(rule)));
    }
    let flags = flags_of(d, hide_forbidden);
    if !flags.is_empty() {
        let names: Vec<&str> = flags.iter().map(|f| flag_name(*f)).collect();
        out.push_str(&format!(" [{}]", names.join(", ")));
    }
    out
}

fn flags_of(d: &Decision, hide_forbidden: bool) -> Vec<TestFlag> {
    let mut flags = Vec::new();
    if d.flags.break_glass {
        flags.push(TestFlag::BreakGlass);
    }
    if d.flags.impersonated {
        flags.push(TestFlag::Impersonated);
    }
    if hide_forbidden && !d.is_allowed() {
        flags.push(TestFlag::NotFound);
    }
    flags
}

fn flag_name(f: TestFlag) -> &'static str {
    match f {
        TestFlag::BreakGlass => "break_glass",
        TestFlag::Impersonated => "impersonated",
        TestFlag::NotFound => "not_found",
    }
}

/// What a check case expected but did not get, if anything.
fn check_failure(snapshot: &Snapshot, t: &PolicyTest, d: &Decision) -> Option<String> {
    let mut wrong = Vec::new();
    if d.effect != t.expect {
        wrong.push(format!("effect {}", t.expect));
    }
    if let Some(r) = t.reason.filter(|r| *r != d.reason) {
        wrong.push(format!("reason {}", r.as_str()));
    }
    if let Some(rule) = &t.rule {
        let got = d.rule.as_ref().map(|r| snapshot.rule_name(r));
        if got.as_deref().unwrap_or_default() != rule {
            wrong.push(if rule.is_empty() {
                "no deciding rule".to_owned()
            } else {
                format!("rule `{rule}`")
            });
        }
    }
    if let Some(flags) = &t.flags {
        let (mut want, got) = (flags.clone(), flags_of(d, t.hide_forbidden));
        want.sort_unstable();
        want.dedup();
        if want != got {
            let names: Vec<&str> = want.iter().map(|f| flag_name(*f)).collect();
            wrong.push(format!("flags [{}]", names.join(", ")));
        }
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "expected {}, got {}",
            wrong.join(", "),
            summary(snapshot, d, t.hide_forbidden)
        )
    })
}

/// Runs check cases on the compiled snapshot, also checking each against the reference.
/// `now` is the time of cases without `at`; a case with neither fails, saying so.
pub fn run_tests(
    bundle: &Bundle,
    snapshot: &Snapshot,
    tests: &[PolicyTest],
    now: Option<Timestamp>,
) -> Vec<TestOutcome> {
    tests
        .iter()
        .map(|t| {
            let expected = timed(t, now).map(|request| {
                let reference = reference::check(bundle, Overlay::empty(), &request, snapshot.version());
                (request, reference)
            });
            check_outcome(snapshot, t, expected.as_ref())
        })
        .collect()
}

/// A check case's request at its own time, or at `now`; `None` when it has neither.
fn timed(t: &PolicyTest, now: Option<Timestamp>) -> Option<Request> {
    let at = t.request.at.or(now)?;
    Some(Request {
        at: Some(at),
        ..t.request.clone()
    })
}

/// The outcome of check case `t`, given its timed request and the reference's decision
/// on it (`None`: the case has no time).
fn check_outcome(snapshot: &Snapshot, t: &PolicyTest, expected: Option<&(Request, Decision)>) -> TestOutcome {
    let outcome = |decision, failure| TestOutcome {
        name: t.name.clone(),
        kind: CaseKind::Check,
        decision,
        failure,
    };
    let Some((request, reference)) = expected else {
        return outcome(None, Some(UNTIMED.to_owned()));
    };
    let decision = snapshot.check(request, Overlay::empty());
    let failure = check_failure(snapshot, t, &decision).or_else(|| {
        (!same(&decision, reference)).then(|| {
            format!(
                "compiled says {}, reference says {}",
                summary(snapshot, &decision, false),
                summary(snapshot, reference, false)
            )
        })
    });
    outcome(Some(decision), failure)
}

const UNTIMED: &str = "no time: give the case an `at` (or the test file a `now:`)";

/// Runs every case of a test file: checks, row filters and listings, at the file's `now`
/// where a case gives no time. Refuses the file when a case has no time at all.
pub fn run_file(bundle: &Bundle, snapshot: &Snapshot, file: &PolicyTestFile) -> Result<Vec<TestOutcome>, Untimed> {
    if file.now.is_none() {
        let untimed: Vec<String> = file
            .tests
            .iter()
            .filter(|t| t.request.at.is_none())
            .map(|t| format!("`{}`", t.name))
            .chain(
                file.filter_rows
                    .iter()
                    .filter(|t| t.at.is_none())
                    .map(|t| format!("`{}`", t.name)),
            )
            .chain(
                file.list_subjects
                    .iter()
                    .filter(|t| t.at.is_none())
                    .map(|t| format!("`{}`", t.name)),
            )
            .collect();
        if !untimed.is_empty() {
            return Err(Untimed(untimed));
        }
    }
    let now = file.now;
    let mut out = run_tests(bundle, snapshot, &file.tests, now);
    let untimed = || Some(UNTIMED.to_owned());
    for t in &file.filter_rows {
        let failure = t.at.or(now).map_or_else(untimed, |at| {
            let filter = snapshot.filter_rows(
                &t.principal,
                &t.action,
                &t.resource_type,
                &t.session,
                at,
                Overlay::empty(),
            );
            filter_failure(snapshot, &t.expect, &filter)
        });
        out.push(TestOutcome {
            name: t.name.clone(),
            kind: CaseKind::FilterRows,
            decision: None,
            failure,
        });
    }
    for t in &file.list_subjects {
        out.push(TestOutcome {
            name: t.name.clone(),
            kind: CaseKind::ListSubjects,
            decision: None,
            failure: t.at.or(now).map_or_else(untimed, |at| listing_failure(snapshot, t, at)),
        });
    }
    Ok(out)
}

fn filter_failure(snapshot: &Snapshot, want: &FilterExpect, got: &RowFilter) -> Option<String> {
    let shown = |f: &RowFilter| match f {
        RowFilter::None { reason } => format!("none ({})", reason.as_str()),
        RowFilter::Rows { .. } => match f.to_sql(snapshot) {
            Some(p) => format!(
                "sql `{}` with {}",
                p.sql,
                serde_json::to_string(&p.params).unwrap_or_default()
            ),
            None => "rows that have no SQL form".to_owned(),
        },
    };
    let matches = match (want.none, &want.sql, got) {
        (Some(r), None, RowFilter::None { reason }) => r == *reason,
        (None, Some(sql), RowFilter::Rows { .. }) => got
            .to_sql(snapshot)
            .is_some_and(|p| p.sql == *sql && p.params == want.params),
        (Some(_), Some(_), _) | (None, None, _) => {
            return Some("`expect` names exactly one of `none` and `sql`".to_owned());
        }
        _ => false,
    };
    (!matches).then(|| {
        let wanted = match (want.none, &want.sql) {
            (Some(r), _) => format!("none ({})", r.as_str()),
            (None, sql) => format!(
                "sql `{}` with {}",
                sql.as_deref().unwrap_or_default(),
                serde_json::to_string(&want.params).unwrap_or_default()
            ),
        };
        format!("expected {wanted}, got {}", shown(got))
    })
}

fn listing_failure(snapshot: &Snapshot, t: &ListSubjectsTest, at: Timestamp) -> Option<String> {
    let target = match (&t.id, &t.tenant) {
        (Some(id), tenant) => Target::Resource {
            id,
            tenant: tenant.as_deref(),
            owner: t.owner.as_deref(),
        },
        (None, Some(tenant)) => Target::Tenant(tenant),
        (None, None) => return Some("a listing case names a `tenant`, an `id`, or both".to_owned()),
    };
    let listing = Listing {
        at,
        overlay: Overlay::empty(),
        usable_only: t.usable_only,
    };
    let got: BTreeSet<String> = snapshot
        .list_subjects(&t.action, &t.resource_type, target, &listing)
        .into_iter()
        .map(|p| p.principal)
        .collect();
    let want: BTreeSet<String> = t.expect.iter().cloned().collect();
    (got != want).then(|| {
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        format!("expected [{}], got [{}]", list(&want), list(&got))
    })
}

/// Whether two decisions agree on effect, reason, rule and flags.
pub fn same(a: &Decision, b: &Decision) -> bool {
    a.effect == b.effect && a.reason == b.reason && a.rule == b.rule && a.flags == b.flags
}

/// The reference evaluator's answers for the self-check: each bundle test's timed request,
/// and `samples` generated ones, with the reference's decision. They are worked out from the
/// bundle before the snapshot exists, so a compiler that owns the bundle can free its grants
/// before laying the snapshot out; [`Expected::compare`] then puts the snapshot to them.
#[derive(Debug)]
pub struct Expected {
    /// Per bundle test, in order: its request and the reference's decision (`None`: untimed).
    tests: Vec<Option<(Request, Decision)>>,
    /// Generated requests in the order drawn, with the reference's decisions.
    generated: Vec<(Request, Decision)>,
    /// A reference worker panicked: the self-check fails, it never passes.
    panicked: bool,
}

/// Works out the reference's decisions (as snapshot `version`) on the bundle's tests and on
/// `samples` generated requests, stopping early once `stop` says so. The generated requests
/// are drawn in order from `seed`, one at a time, by up to [`SELF_CHECK_THREADS`] scoped
/// threads (the reference scans the whole bundle per request: seconds on ten million
/// grants); they come back in draw order whatever the number of threads.
pub fn expect(bundle: &Bundle, version: u64, samples: usize, seed: u64, stop: &(dyn Fn() -> bool + Sync)) -> Expected {
    let reference = |request: Request| {
        let decision = reference::check(bundle, Overlay::empty(), &request, version);
        (request, decision)
    };
    let tests = bundle.tests.iter().map(|t| timed(t, None).map(reference)).collect();
    // Requests are drawn one at a time, in order, from one generator: memory stays flat
    // however many samples are asked for, and the set drawn does not depend on threads.
    let next = std::sync::Mutex::new((0usize, synth::rng(seed)));
    let draw = || -> Option<(usize, Request)> {
        if stop() {
            return None;
        }
        let mut guard = next.lock().ok()?;
        let (drawn, rng) = &mut *guard;
        let i = *drawn;
        (i < samples).then(|| {
            *drawn += 1;
            (i, synth::random_request(bundle, rng))
        })
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, SELF_CHECK_THREADS)
        .min(samples.max(1));
    let mut generated: Vec<(usize, (Request, Decision))> = Vec::new();
    let mut panicked = false;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while let Some((i, request)) = draw() {
                        mine.push((i, reference(request)));
                    }
                    mine
                })
            })
            .collect();
        for worker in workers {
            // A panicking reference is a failed self-check, never a pass.
            match worker.join() {
                Ok(mine) => generated.extend(mine),
                Err(_) => panicked = true,
            }
        }
    });
    generated.sort_by_key(|(i, _)| *i);
    Expected {
        tests,
        generated: generated.into_iter().map(|(_, pair)| pair).collect(),
        panicked,
    }
}

impl Expected {
    /// Where `snapshot` disagrees with the reference or with a test's expectation: failed
    /// bundle tests (`tests` are the bundle's, in the order [`expect`] saw them) first, then
    /// generated requests in draw order.
    pub fn compare(&self, snapshot: &Snapshot, tests: &[PolicyTest]) -> Vec<Mismatch> {
        let failed_tests = tests.iter().zip(&self.tests).filter_map(|(t, expected)| {
            check_outcome(snapshot, t, expected.as_ref())
                .failure
                .map(|detail| Mismatch {
                    what: format!("policy test `{}`", t.name),
                    detail,
                })
        });
        let generated = self
            .generated
            .iter()
            .enumerate()
            .filter_map(|(i, (request, expected))| {
                // A panicking evaluator is a failed self-check, never a pass.
                let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    snapshot.check(request, Overlay::empty())
                }));
                let Ok(compiled) = checked else {
                    return Some(Mismatch {
                        what: format!("generated request {i}"),
                        detail: "the compiled evaluator panicked".to_owned(),
                    });
                };
                (!same(&compiled, expected)).then(|| Mismatch {
                    what: format!("generated request {i}"),
                    detail: format!(
                        "compiled says {}, reference says {} for {}",
                        summary(snapshot, &compiled, false),
                        summary(snapshot, expected, false),
                        serde_json::to_string(request).unwrap_or_default()
                    ),
                })
            });
        let panicked = self.panicked.then(|| Mismatch {
            what: "generated requests".to_owned(),
            detail: "the reference evaluator panicked".to_owned(),
        });
        failed_tests.chain(generated).chain(panicked).collect()
    }
}

/// The most threads the self-check spreads its generated requests over.
pub const SELF_CHECK_THREADS: usize = 4;
