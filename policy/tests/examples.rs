//! The example bundles compile (with the self-check), pass their policy tests, and the tests
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
//! exercise every rule each bundle uses.

use portcullis_policy::bundle::{AccountStatus, Bundle, Classification};
use portcullis_policy::selfcheck::run_file;
use portcullis_policy::{Format, Reason, compile, parse_bundle, parse_tests};
use std::collections::BTreeSet;
use std::path::Path;

const EXAMPLES: &[&str] = &["clinic-portal", "genomics-platform", "patient-portal", "research-study"];

fn read(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reasons a bundle's features make possible, which its tests must show.
fn reasons_used(b: &Bundle) -> BTreeSet<Reason> {
    let mut r = BTreeSet::from([Reason::Granted, Reason::NoMatchingGrant]);
    let s = &b.settings;
    let flag = |r: &mut BTreeSet<Reason>, on: bool, reason| {
        if on {
            r.insert(reason);
        }
    };
    flag(&mut r, s.idle_timeout.is_some(), Reason::SessionIdle);
    flag(&mut r, s.max_session_age.is_some(), Reason::SessionExpired);
    flag(
        &mut r,
        s.dormant_after.is_some() && b.principals.iter().any(|p| p.last_activity.is_some()),
        Reason::AccountDormant,
    );
    flag(
        &mut r,
        b.grants.iter().any(|g| g.terms().non_standard) && s.unused_access_lapse.is_some(),
        Reason::GrantLapsed,
    );
    flag(&mut r, s.elevation_max_age.is_some(), Reason::ElevationExpired);
    for t in &b.resource_types {
        flag(
            &mut r,
            t.critical || !t.critical_actions.is_empty(),
            Reason::MfaRequired,
        );
        flag(&mut r, !t.privileged_actions.is_empty(), Reason::ElevationRequired);
        flag(&mut r, !t.networks.is_empty(), Reason::NetworkNotAllowed);
        flag(&mut r, !t.public_actions.is_empty(), Reason::PublicResource);
    }
    for role in &b.roles {
        flag(&mut r, role.requires_mfa, Reason::MfaRequired);
        flag(&mut r, role.privileged, Reason::ElevationRequired);
        flag(&mut r, !role.dual_control.is_empty(), Reason::DualControlRequired);
        flag(&mut r, role.break_glass, Reason::BreakGlass);
        flag(&mut r, role.break_glass, Reason::BreakGlassReasonRequired);
        flag(&mut r, role.impersonation, Reason::ImpersonationNotAllowed);
    }
    flag(
        &mut r,
        b.grants.iter().any(|g| g.terms().expires.is_some()),
        Reason::GrantExpired,
    );
    flag(&mut r, !b.denies.is_empty(), Reason::ExplicitDeny);
    for p in &b.principals {
        flag(
            &mut r,
            p.shared
                && b.resource_types
                    .iter()
                    .any(|t| t.classification == Classification::Sensitive),
            Reason::SharedAccountSensitive,
        );
        flag(&mut r, p.status == AccountStatus::Disabled, Reason::AccountDisabled);
        flag(&mut r, p.status == AccountStatus::Locked, Reason::AccountLocked);
        flag(&mut r, p.status == AccountStatus::Terminated, Reason::AccountTerminated);
    }
    r
}

#[test]
fn examples_pass_their_tests_and_cover_their_rules() {
    for name in EXAMPLES {
        let bundle = parse_bundle(&read(&format!("{name}.yaml")), Format::Yaml).unwrap();
        let snapshot = compile(&bundle, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
        let file = parse_tests(&read(&format!("{name}.tests.yaml")), Format::Yaml).unwrap();
        let outcomes = run_file(&bundle, &snapshot, &file).unwrap();
        let failures: Vec<_> = outcomes
            .iter()
            .filter_map(|o| o.failure.as_ref().map(|f| format!("{}: {f}", o.name)))
            .collect();
        assert!(failures.is_empty(), "{name}: {failures:#?}");
        let shown: BTreeSet<Reason> = outcomes
            .iter()
            .filter_map(|o| Some(o.decision.as_ref()?.reason))
            .collect();
        let missing: Vec<_> = reasons_used(&bundle).difference(&shown).copied().collect();
        assert!(missing.is_empty(), "{name}: no test shows {missing:?}");
    }
}

#[test]
fn json_and_yaml_spell_the_same_bundle() {
    let yaml = parse_bundle(&read("clinic-portal.yaml"), Format::Yaml).unwrap();
    let json = serde_json::to_vec(&yaml).unwrap();
    assert_eq!(parse_bundle(&json, Format::Json).unwrap(), yaml);
}

#[test]
fn a_failing_policy_test_rejects_the_snapshot() {
    let mut bundle = parse_bundle(&read("clinic-portal.yaml"), Format::Yaml).unwrap();
    let mut tests = parse_tests(&read("clinic-portal.tests.yaml"), Format::Yaml)
        .unwrap()
        .tests;
    tests.truncate(1);
    tests[0].expect = portcullis_policy::Effect::Deny;
    bundle.tests = tests;
    let err = compile(&bundle, 1).unwrap_err();
    assert!(err.to_string().contains("policy test `clinician reads"), "{err}");
}
