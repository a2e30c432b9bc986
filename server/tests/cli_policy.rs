//! The policy tooling through the real `portcullis` binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run portcullis")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn validate_lists_every_problem_and_fails() {
    let dir = tempdir();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "resource_types: [{name: r, actions: [read]}]\nroles: [{name: x, permissions: {r: [read]}}]\nprincipals: [{id: svc-etl, kind: service}, {id: a}, {id: a}]\ngrants: [{principal: a, role: nope, scope: all}]\n",
    )
    .unwrap();
    let out = portcullis(&["policy", "validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("3 problem(s)"), "{t}");
    assert!(
        t.contains("principals[svc-etl] (line 3): service account `svc-etl` has no owner (R5)"),
        "{t}"
    );
    assert!(
        t.contains("principals[2].id (line 3): duplicate principal id (R4) `a`"),
        "{t}"
    );
    assert!(t.contains("grants[0].role (line 4): unknown role `nope`"), "{t}");
}

#[test]
fn validate_accepts_the_examples_and_exactly_what_a_push_accepts() {
    for name in ["clinic-portal", "genomics-platform", "research-study", "patient-portal"] {
        let out = portcullis(&["policy", "validate", &format!("examples/{name}.yaml")]);
        assert!(out.status.success(), "{}", text(&out));
    }
    // A test file parses as a bundle with only `tests`; a push refuses it, so must validate.
    let out = portcullis(&["policy", "validate", "examples/clinic-portal.tests.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("a bundle declares at least one resource type"),
        "{}",
        text(&out)
    );
    // A bundle whose own test fails validates no more than it pushes (the self-check).
    let dir = tempdir();
    let failing = dir.join("failing.yaml");
    let mut bundle = std::fs::read_to_string(root().join("examples/research-study.yaml")).unwrap();
    bundle.push_str(
        "\ntests:\n  - name: nobody reads\n    request: {principal: nobody, action: read, resource: {type: nope, id: x}, at: \"2026-11-23T10:00:00Z\"}\n    expect: allow\n",
    );
    std::fs::write(&failing, bundle).unwrap();
    let out = portcullis(&["policy", "validate", failing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("policy test `nobody reads`"), "{}", text(&out));
}

#[test]
fn policy_test_reports_each_case_and_fails_on_a_wrong_expectation() {
    let out = portcullis(&[
        "policy",
        "test",
        "examples/clinic-portal.yaml",
        "examples/clinic-portal.tests.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 failed"));

    let dir = tempdir();
    let tests = dir.join("wrong.yaml");
    std::fs::write(
        &tests,
        "tests:\n  - name: wrong\n    request: {principal: nurse-cy, action: read, resource: {type: patient_record, id: p, tenant: clinic-north}, at: \"2026-11-23T10:00:00Z\"}\n    expect: allow\n",
    )
    .unwrap();
    let out = portcullis(&["policy", "test", "examples/clinic-portal.yaml", tests.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("FAIL  check         wrong: expected effect allow, got deny (account_terminated)"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("0 passed, 1 failed, 1 cases"), "{}", text(&out));

    // --json for CI: the counts and every case.
    let out = portcullis(&[
        "policy",
        "test",
        "examples/patient-portal.yaml",
        "examples/patient-portal.tests.yaml",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failed"], 0);
    let kinds: std::collections::BTreeSet<&str> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["check", "filter_rows", "list_subjects"].into());
    assert_eq!(
        report["passed"].as_u64().unwrap() as usize,
        report["cases"].as_array().unwrap().len()
    );

    // A case without a time in a file without `now:` is refused, never run at today's date.
    let untimed = dir.join("untimed.yaml");
    std::fs::write(
        &untimed,
        "tests:\n  - name: when\n    request: {principal: dr-ann, action: read, resource: {type: patient_record, id: p}}\n    expect: deny\n",
    )
    .unwrap();
    let out = portcullis(&[
        "policy",
        "test",
        "examples/clinic-portal.yaml",
        untimed.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out)); // 2: not run at all; 1: a case failed
    assert!(
        text(&out).contains("have no time and the file has no `now:` (`when`)"),
        "{}",
        text(&out)
    );
}

#[test]
fn check_explains_and_exits_by_decision() {
    let base = [
        "check",
        "--bundle",
        "examples/genomics-platform.yaml",
        "--principal",
        "ops-ola",
        "--action",
        "administer",
        "--type",
        "production_system",
        "--id",
        "prod-eu",
        "--fresh",
        "--factor",
        "passkey",
        "--network",
        "vpn",
        "--elevated-role",
        "root",
    ];
    let out = portcullis(&[&base[..], &["--explain"]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).starts_with("DENY dual_control_required (R13) by `ola-root`"),
        "{}",
        text(&out)
    );

    let out = portcullis(&[&base[..], &["--co-signer", "ops-pia", "--json"]].concat());
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["effect"], "allow");
    assert_eq!(v["reason"], "granted");
    assert_eq!(v["rule_id"], "ola-root");
}

#[test]
fn compile_stats_and_generate_round_trip() {
    let dir = tempdir();
    let file = dir.join("gen.json");
    let out = portcullis(&[
        "policy",
        "generate",
        "--principals",
        "500",
        "--grants",
        "2000",
        "--tenants",
        "20",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = portcullis(&["policy", "compile", file.to_str().unwrap(), "--stats"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("principals      500"), "{}", text(&out));
    assert!(text(&out).contains("grants          2000"), "{}", text(&out));
}

#[test]
fn unreadable_input_is_a_clear_error() {
    let out = portcullis(&["policy", "validate", "does/not/exist.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("cannot read `does/not/exist.yaml`"),
        "{}",
        text(&out)
    );
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-cli-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
