//! Owner scopes and per-action requirements, on the patient-portal example: row filters
//! render ownership as SQL, listings find owners, and validation checks the new fields.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use portcullis_policy::filter::Owned;
use portcullis_policy::{
    Format, Listing, Overlay, RowFilter, Session, SqlParam, Target, Timestamp, compile, parse_bundle, validate,
};
use std::path::Path;

fn portal() -> portcullis_policy::Bundle {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/patient-portal.yaml");
    parse_bundle(&std::fs::read(path).unwrap(), Format::Yaml).unwrap()
}

const NOW: Timestamp = Timestamp(1_795_428_000); // 2026-11-23T10:00:00Z

fn session() -> Session {
    Session {
        authenticated_at: Some(Timestamp(NOW.0 - 3_600)),
        last_activity: Some(Timestamp(NOW.0 - 60)),
        ..Session::default()
    }
}

#[test]
fn a_patients_rows_are_the_ones_naming_her_as_owner() {
    let snapshot = compile(&portal(), 1).unwrap();
    let filter = snapshot.filter_rows("pat-ann", "read", "medical_record", &session(), NOW, Overlay::empty());
    let RowFilter::Rows { rows, .. } = &filter else {
        panic!("{filter:?}")
    };
    assert!(!rows.all && rows.tenants.is_empty() && rows.resources.is_empty());
    assert_eq!(
        rows.owned,
        vec![Owned {
            owner: "pat-ann".into(),
            tenants: None,
            resources: None
        }]
    );
    let sql = filter.to_sql(&snapshot).unwrap();
    assert_eq!(sql.sql, r#"(("patient_id" = $1))"#);
    assert_eq!(sql.params, vec![SqlParam::Text("pat-ann".into())]);
}

#[test]
fn an_own_scope_with_a_tenant_uses_the_owner_column_and_the_tenant() {
    let snapshot = compile(&portal(), 1).unwrap();
    let filter = snapshot.filter_rows("dr-carol", "edit", "clinical_note", &session(), NOW, Overlay::empty());
    let sql = filter.to_sql(&snapshot).unwrap();
    assert_eq!(sql.sql, r#"(("author_id" = $1 AND "tenant_id" = ANY($2)))"#);
    assert_eq!(
        sql.params,
        vec![
            SqlParam::Text("dr-carol".into()),
            SqlParam::TextArray(vec!["clinic-north".into()])
        ]
    );
}

#[test]
fn acting_as_a_patient_filters_on_the_patients_id() {
    let snapshot = compile(&portal(), 1).unwrap();
    let mut s = session();
    s.factors = vec![portcullis_policy::Factor::Password, portcullis_policy::Factor::Totp];
    s.acting_as = Some("pat-ann".into());
    let filter = snapshot.filter_rows("sup-erin", "read", "medical_record", &s, NOW, Overlay::empty());
    let sql = filter.to_sql(&snapshot).unwrap();
    assert_eq!(sql.params, vec![SqlParam::Text("pat-ann".into())]);
}

#[test]
fn who_can_read_a_record_includes_its_owner_only_when_the_owner_is_given() {
    let snapshot = compile(&portal(), 1).unwrap();
    let listing = Listing {
        at: NOW,
        overlay: Overlay::empty(),
        usable_only: false,
    };
    let who = |owner| {
        let target = Target::Resource {
            id: "r-1",
            tenant: Some("clinic-north"),
            owner,
        };
        let mut names: Vec<String> = snapshot
            .list_subjects("read", "medical_record", target, &listing)
            .into_iter()
            .map(|p| format!("{}:{}", p.principal, p.scope))
            .collect();
        names.dedup();
        names
    };
    assert_eq!(
        who(None),
        vec!["dr-carol:tenant:clinic-north", "rec-dave:tenant:clinic-north"]
    );
    assert_eq!(
        who(Some("pat-ann")),
        vec![
            "dr-carol:tenant:clinic-north",
            "pat-ann:own",
            "rec-dave:tenant:clinic-north"
        ]
    );
    // Someone who holds no own-scoped grant owns nothing that lists them.
    assert_eq!(who(Some("dr-carol")).len(), 2);
}

#[test]
fn only_grants_reaching_a_critical_action_need_approvals() {
    let mut bundle = portal();
    // The clinician role reaches `update` (critical): its grant without approvals is refused.
    bundle.grants[1].terms_mut().approvals.clear();
    let err = validate(&bundle).unwrap_err().to_string();
    assert!(
        err.contains("grants[carol-north]") || err.contains("grants[1]"),
        "{err}"
    );
    // A role that only reads needs none.
    let mut bundle = portal();
    bundle.roles[1]
        .permissions
        .insert("medical_record".into(), vec!["read".into()]);
    bundle.grants[1].terms_mut().approvals.clear();
    assert_eq!(validate(&bundle), Ok(()));
}

#[test]
fn new_fields_are_checked_and_own_false_is_explained() {
    let mut bundle = portal();
    bundle.resource_types[0].critical_actions.push("shred".into());
    bundle.resource_types[0].privileged_actions.push("burn".into());
    bundle.resource_types[1].owner_attribute.clear();
    let err = validate(&bundle).unwrap_err().to_string();
    for path in [
        "resource_types[0].critical_actions[3]",
        "resource_types[0].privileged_actions[1]",
        "resource_types[1].owner_attribute",
    ] {
        assert!(err.contains(path), "{path} missing from: {err}");
    }
    let yaml = "resource_types: [{name: t, actions: [read]}]\nroles: [{name: r, permissions: {t: [read]}}]\n\
                principals: [{id: a}]\ngrants: [{principal: a, role: r, scope: {own: false}}]\n";
    let err = parse_bundle(yaml.as_bytes(), Format::Yaml).unwrap_err().to_string();
    assert!(err.contains("`own: false` is not a scope"), "{err}");
    let yaml = yaml.replace("{own: false}", "{own: true, resources: {type: t, ids: [x]}}");
    let err = parse_bundle(yaml.as_bytes(), Format::Yaml).unwrap_err().to_string();
    assert!(err.contains("a scope is one of"), "{err}");
}
