//! Validation: every problem is reported at once, with its path and the rule it breaks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use portcullis_policy::{Format, parse_bundle, validate};

const BASE: &str = r#"
resource_types:
  - {name: record, actions: [read, write], classification: sensitive}
  - {name: prod, actions: [read, administer], critical: true}
roles:
  - {name: reader, permissions: {record: [read]}}
  - {name: admin, permissions: {prod: [read, administer]}}
  - {name: support, temporary_only: true, max_ttl: 1h, permissions: {prod: [read]}, approvals_required: 0}
groups:
  - {name: team, members: [ann, bob]}
principals:
  - {id: ann}
  - {id: bob}
  - {id: sec}
"#;

/// Validates BASE plus `extra` YAML appended under the given top-level sections.
fn problems(extra: &str) -> Vec<String> {
    let doc = merge(BASE, extra);
    let bundle = parse_bundle(doc.as_bytes(), Format::Yaml).unwrap_or_else(|e| panic!("{e}\n{doc}"));
    match validate(&bundle) {
        Ok(()) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// Appends items at the end of BASE's sections (`principals:` items after BASE's principals, ...).
fn merge(base: &str, extra: &str) -> String {
    let mut out = base.to_owned();
    let mut current = String::new();
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        if !line.starts_with(' ') {
            current = line.trim_end_matches(':').to_owned();
            if !base.contains(&format!("\n{current}:")) {
                out.push_str(&format!("{current}:\n"));
            }
            continue;
        }
        let anchor = format!("\n{current}:\n");
        let start = out.find(&anchor).map(|i| i + anchor.len()).unwrap();
        let mut end = start;
        for existing in out[start..].split_inclusive('\n') {
            if !existing.starts_with(' ') {
                break;
            }
            end += existing.len();
        }
        out.insert_str(end, &format!("{line}\n"));
    }
    out
}

#[test]
fn the_base_bundle_is_valid() {
    assert_eq!(problems(""), Vec::<String>::new());
}

#[test]
fn each_problem_names_its_path_and_rule() {
    let cases: &[(&str, &str)] = &[
        (
            "grants:\n  - {principal: ann, role: writer, scope: all}",
            "grants[0].role: unknown role `writer`",
        ),
        (
            "grants:\n  - {principal: zed, role: reader, scope: all}",
            "grants[0].principal: unknown principal `zed`",
        ),
        (
            "grants:\n  - {group: ops, role: reader, scope: all}",
            "grants[0].group: unknown group `ops`",
        ),
        (
            "grants:\n  - {role: reader, scope: all}",
            "grants[0]: a grant names exactly one of `principal` and `group`",
        ),
        (
            "principals:\n  - {id: svc-etl, kind: service}",
            "principals[svc-etl]: service account `svc-etl` has no owner (R5)",
        ),
        (
            "principals:\n  - {id: svc-etl, kind: service, owner: nobody}",
            "principals[svc-etl].owner: unknown principal or group `nobody`",
        ),
        (
            "principals:\n  - {id: ann}",
            "principals[3].id: duplicate principal id (R4) `ann`",
        ),
        (
            "principals:\n  - {id: admin}",
            "principals[admin].id: `admin` looks like a generic account",
        ),
        (
            "principals:\n  - {id: a1, person: p}\n  - {id: a2, person: p}",
            "principals[a2].person: person `p` already holds id `a1`",
        ),
        (
            "grants:\n  - {principal: ann, role: admin, scope: all, approvals: [{by: bob}]}",
            "grants[0].approvals: needs 2 distinct approvers other than the grantee, has 1 (R12)",
        ),
        (
            "grants:\n  - {principal: ann, role: admin, scope: all, approvals: [{by: bob}, {by: bob}]}",
            "grants[0].approvals: needs 2 distinct approvers other than the grantee, has 1 (R12)",
        ),
        (
            "grants:\n  - {principal: ann, role: admin, scope: all, approvals: [{by: ann}, {by: bob}]}",
            "grants[0].approvals[0].by: `ann` cannot approve a grant they receive (R12)",
        ),
        (
            "grants:\n  - {group: team, role: admin, scope: all, approvals: [{by: bob}, {by: sec}]}",
            "grants[0].approvals[0].by: `bob` cannot approve a grant they receive (R12)",
        ),
        (
            "grants:\n  - {principal: ann, role: support, scope: all}",
            "grants[0].expires: role `support` is temporary-only: the grant needs `expires` (R11)",
        ),
        (
            "grants:\n  - {principal: ann, role: support, scope: all, not_before: \"2026-01-01T00:00:00Z\", expires: \"2026-01-01T02:00:00Z\"}",
            "grants[0].expires: role `support` allows grants of at most 3600s",
        ),
        (
            "grants:\n  - {principal: ann, role: reader, scope: all, not_before: \"2026-01-02T00:00:00Z\", expires: \"2026-01-01T00:00:00Z\"}",
            "grants[0].expires: `not_before` must be before `expires`",
        ),
        (
            "grants:\n  - {principal: ann, role: reader, scope: {resources: {type: prod, ids: [x]}}}",
            "grants[0].scope.resources.type: role `reader` grants nothing on resource type `prod`",
        ),
        (
            "grants:\n  - {principal: ann, role: reader, scope: {resources: {type: record, ids: []}}}",
            "grants[0].scope.resources.ids: must not be empty",
        ),
        (
            "roles:\n  - {name: r2, permissions: {record: [fly]}}",
            "roles[3].permissions.record[0]: action `fly` is not defined for resource type `record`",
        ),
        (
            "roles:\n  - {name: r2, permissions: {ship: [read]}}",
            "roles[3].permissions.ship: unknown resource type `ship`",
        ),
        (
            "roles:\n  - {name: r2, dual_control: [write], permissions: {record: [read]}}",
            "roles[3].dual_control[0]: dual-control action `write` is not among the role's permissions (R13)",
        ),
        ("roles:\n  - {name: reader}", "roles[3].name: duplicate role `reader`"),
        (
            "resource_types:\n  - {name: leaflet, actions: [read], classification: sensitive, public_actions: [read]}",
            "resource_types[2].public_actions: public actions are not allowed on a sensitive resource type (R19)",
        ),
        (
            "resource_types:\n  - {name: empty, actions: []}",
            "resource_types[2].actions: a resource type needs at least one action",
        ),
        (
            "resource_types:\n  - {name: dup, actions: [read, read]}",
            "resource_types[2].actions[1]: duplicate action `read`",
        ),
        (
            "denies:\n  - {id: d, resource_type: record, actions: [shred]}",
            "denies[d].actions[0]: action `shred` is not defined for resource type `record`",
        ),
        (
            "denies:\n  - {id: d, resource_type: ship, actions: [read]}",
            "denies[d].resource_type: unknown resource type `ship`",
        ),
        (
            "denies:\n  - {id: d, principals: [zed], resource_type: record, actions: [read]}",
            "denies[d].principals[0]: unknown principal `zed`",
        ),
        (
            "denies:\n  - {id: d, resource_type: record, actions: [read]}\n  - {id: d, resource_type: record, actions: [read]}",
            "denies[1].id: duplicate deny rule id `d`",
        ),
        (
            "settings:\n  idle_timeout: 0s",
            "settings.idle_timeout: must be longer than zero",
        ),
    ];
    for (extra, expected) in cases {
        let found = problems(extra);
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "for\n{extra}\nexpected `{expected}`, got {found:#?}"
        );
    }
}

#[test]
fn every_problem_is_listed_at_once() {
    let found = problems(
        "principals:\n  - {id: svc-etl, kind: service}\n  - {id: ann}\ngrants:\n  - {principal: ann, role: writer, scope: all}\n  - {principal: ghost, role: reader, scope: all}\n  - {principal: ann, role: admin, scope: all}",
    );
    assert_eq!(found.len(), 5, "{found:#?}");
}

#[test]
fn parse_errors_say_where() {
    let err = parse_bundle(b"principals:\n  - {id: ann, kind: robot}\n", Format::Yaml).unwrap_err();
    assert_eq!(err.line, Some(2));
    assert!(err.to_string().contains("robot"), "{err}");
    let err = parse_bundle(b"grants: [{principal: a, role: r, scope: everything}]", Format::Yaml).unwrap_err();
    assert!(err.to_string().contains("everything"), "{err}");
}

#[test]
fn one_problem_hides_no_other_and_each_names_its_id_and_line() {
    // A duplicate type is still checked; an unknown role still leaves the grant's window,
    // approvers and scope to be checked; each path uses the entry's id when it has one.
    let source = b"resource_types:
  - {name: note, actions: [read]}
  - name: note
    actions: [read, read]
roles: [{name: reader, permissions: {note: [read]}}]
principals: [{id: ann}, {id: ann}]
grants:
  - id: ivan-root
    principal: ann
    role: root
    scope: {tenant: \"\"}
    not_before: \"2026-02-01T00:00:00Z\"
    expires: \"2026-01-01T00:00:00Z\"
    approvals: [{by: ghost}]
denies:
  - {id: no-notes, resource_type: note, actions: [erase]}
";
    let err = portcullis_policy::compile_source(source, Format::Yaml, 1, Default::default()).unwrap_err();
    let portcullis_policy::CompileError::Invalid(errors) = err else {
        panic!("{err}")
    };
    let found: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "resource_types[1].name (line 3): duplicate resource type `note`",
            "resource_types[1].actions[1] (line 4): duplicate action `read`",
            "principals[1].id (line 6): duplicate principal id (R4) `ann`",
            "grants[ivan-root].role (line 10): unknown role `root`",
            "grants[ivan-root].scope.tenant (line 11): must not be empty",
            "grants[ivan-root].expires (line 13): `not_before` must be before `expires`",
            "grants[ivan-root].approvals[0].by (line 14): unknown principal `ghost`",
            "denies[no-notes].actions[0] (line 16): action `erase` is not defined for resource type `note`",
        ]
    );
    // The same bundle as JSON: the same problems, on JSON's lines.
    let bundle = parse_bundle(source, Format::Yaml).unwrap();
    let json = serde_json::to_vec_pretty(&bundle).unwrap();
    let Err(portcullis_policy::CompileError::Invalid(errors)) =
        portcullis_policy::compile_source(&json, Format::Json, 1, Default::default())
    else {
        panic!("the JSON spelling must be refused too")
    };
    assert_eq!(errors.0.len(), found.len());
    assert!(errors.0.iter().all(|e| e.line.is_some()), "{errors}");
}

#[test]
fn a_policy_test_file_is_not_a_bundle() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clinic-portal.tests.yaml");
    let err = portcullis_policy::compile_source(&std::fs::read(path).unwrap(), Format::Yaml, 1, Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("resource_types: a bundle declares at least one resource type"),
        "{err}"
    );
}
