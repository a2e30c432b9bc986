//! The policy-test runner: what a test file can assert, and that a wrong assertion fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use portcullis_policy::selfcheck::{CaseKind, run_file};
use portcullis_policy::{Bundle, Format, PolicyTestFile, compile, parse_bundle, parse_tests};
use std::path::Path;

fn read(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name)).unwrap()
}

fn portal() -> (Bundle, PolicyTestFile) {
    let bundle = parse_bundle(&read("patient-portal.yaml"), Format::Yaml).unwrap();
    let tests = parse_tests(&read("patient-portal.tests.yaml"), Format::Yaml).unwrap();
    (bundle, tests)
}

/// The failure of the one case named `name` after `edit` changed the file.
fn failure_after(name: &str, edit: impl FnOnce(&mut PolicyTestFile)) -> String {
    let (bundle, mut file) = portal();
    edit(&mut file);
    let snapshot = compile(&bundle, 1).unwrap();
    let outcomes = run_file(&bundle, &snapshot, &file).unwrap();
    let failed: Vec<_> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].name, name);
    failed[0].failure.clone().unwrap()
}

const SUPPORT: &str = "support acting as a patient reaches what the patient owns (R16, own scope)";
const HIDDEN: &str = "a patient asking for another patient's record is told it does not exist (R17)";

#[test]
fn the_example_file_passes_with_every_kind_of_case() {
    let (bundle, file) = portal();
    let snapshot = compile(&bundle, 1).unwrap();
    let outcomes = run_file(&bundle, &snapshot, &file).unwrap();
    assert!(outcomes.iter().all(|o| o.failure.is_none()), "{outcomes:#?}");
    for kind in [CaseKind::Check, CaseKind::FilterRows, CaseKind::ListSubjects] {
        assert!(outcomes.iter().any(|o| o.kind == kind), "{kind:?}");
    }
}

#[test]
fn a_wrong_rule_or_flag_fails_the_case() {
    let f = failure_after(SUPPORT, |file| {
        file.tests.iter_mut().find(|t| t.name == SUPPORT).unwrap().rule = Some("carol-north".into());
    });
    assert_eq!(
        f,
        "expected rule `carol-north`, got allow (granted) by `patients-own-records` [impersonated]"
    );
    let f = failure_after(SUPPORT, |file| {
        file.tests.iter_mut().find(|t| t.name == SUPPORT).unwrap().flags = Some(vec![]);
    });
    assert!(f.starts_with("expected flags [], got allow"), "{f}");
    let f = failure_after(HIDDEN, |file| {
        file.tests.iter_mut().find(|t| t.name == HIDDEN).unwrap().hide_forbidden = false;
    });
    assert_eq!(f, "expected flags [not_found], got deny (no_matching_grant)");
}

#[test]
fn a_wrong_filter_or_listing_fails_the_case() {
    let f = failure_after("a patient sees the records naming her (own scope)", |file| {
        file.filter_rows[0].expect.params = vec![portcullis_policy::SqlParam::Text("pat-bob".into())];
    });
    assert!(f.contains(r#"got sql `(("patient_id" = $1))` with ["pat-ann"]"#), "{f}");
    let f = failure_after(
        "exporting without a second factor shows no row, for the reason a check gives (R8)",
        |file| file.filter_rows[2].expect.none = Some(portcullis_policy::Reason::NoMatchingGrant),
    );
    assert_eq!(f, "expected none (no_matching_grant), got none (mfa_required)");
    let f = failure_after("who can read pat-ann's record r-1", |file| {
        file.list_subjects[0].expect.retain(|p| p != "rec-dave");
    });
    assert_eq!(f, "expected [dr-carol, pat-ann], got [dr-carol, pat-ann, rec-dave]");
}

#[test]
fn the_file_time_applies_and_a_missing_one_is_an_error() {
    let (bundle, mut file) = portal();
    let snapshot = compile(&bundle, 1).unwrap();
    // Move the file's clock an hour on: the cases without `at` (the last two checks and
    // every filter) see an idle session; listings do not depend on sessions.
    file.now = file.now.map(|t| portcullis_policy::Timestamp(t.0 + 3_600));
    let outcomes = run_file(&bundle, &snapshot, &file).unwrap();
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.failure.is_some())
        .map(|o| o.kind)
        .collect();
    let mut want = vec![CaseKind::Check; 2];
    want.extend([CaseKind::FilterRows; 3]);
    assert_eq!(failed, want);
    file.now = None;
    let err = run_file(&bundle, &snapshot, &file).unwrap_err();
    assert!(err.0.contains(&format!("`{HIDDEN}`")), "{err}");
    assert!(err.to_string().contains("a test never runs at today's date"), "{err}");
}

#[test]
fn a_bundle_test_without_a_time_does_not_validate() {
    let (mut bundle, file) = portal();
    let mut test = file.tests[0].clone();
    test.request.at = None;
    bundle.tests = vec![test];
    let errors = portcullis_policy::validate(&bundle).unwrap_err();
    assert_eq!(
        errors.0[0].to_string(),
        "tests[0].request.at: a policy test needs a time: give its request an `at`"
    );
}
