//! Reasons and explanations that tell the whole story (A3): dual-control failures named,
//! row filters giving the reason a check gives, conditions rendered for people.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use portcullis_policy::bundle::AccountStatus;
use portcullis_policy::{
    Effect, Format, Listing, Overlay, Reason, Request, Resource, RowFilter, Session, Target, Timestamp, compile,
    parse_bundle,
};

const NOW: Timestamp = Timestamp(1_800_000_000);

fn snapshot() -> portcullis_policy::Snapshot {
    let bundle = parse_bundle(
        br#"
settings: {unused_access_lapse: 90d}
resource_types: [{name: ledger, actions: [read, sign]}]
roles:
  - {name: clerk, permissions: {ledger: [read, sign]}, dual_control: [sign], approvals_required: 0}
principals: [{id: ann}, {id: bob}, {id: cy, status: terminated}, {id: dee}, {id: eve}]
grants:
  - {id: ann-clerk, principal: ann, role: clerk, scope: {tenant: t1}}
  - {id: bob-clerk, principal: bob, role: clerk, scope: {tenant: t1}}
  - {id: cy-clerk, principal: cy, role: clerk, scope: {tenant: t1}}
  - {id: dee-clerk, principal: dee, role: clerk, scope: {tenant: t2}}
  - {id: eve-old, principal: eve, role: clerk, scope: {tenant: t1}, expires: "2026-01-01T00:00:00Z"}
  - {id: eve-lapsing, principal: eve, role: clerk, scope: {tenant: t2}, non_standard: true, last_used: "2026-12-01T00:00:00Z"}
"#,
        Format::Yaml,
    )
    .unwrap();
    compile(&bundle, 1).unwrap()
}

fn sign(co_signer: Option<&str>) -> Request {
    Request {
        principal: "ann".into(),
        action: "sign".into(),
        resource: Resource {
            resource_type: "ledger".into(),
            id: "l-1".into(),
            tenant: Some("t1".into()),
            ..Resource::default()
        },
        session: Session {
            co_signer: co_signer.map(str::to_owned),
            ..Session::default()
        },
        at: Some(NOW),
    }
}

#[test]
fn explain_names_what_is_wrong_with_the_co_signer() {
    let s = snapshot();
    let cases = [
        (None, "no co-signer was named"),
        (Some("zed"), "not a known principal"),
        (Some("ann"), "cannot co-sign their own action"),
        (Some("cy"), "account is not active: account_terminated"),
        (Some("dee"), "holds no usable grant allowing this action here"),
    ];
    for (co_signer, want) in cases {
        let d = s.explain(&sign(co_signer), Overlay::empty());
        assert_eq!(
            (d.effect, d.reason),
            (Effect::Deny, Reason::DualControlRequired),
            "{co_signer:?}"
        );
        let trace = d.trace.unwrap().join("\n");
        assert!(trace.contains(want), "{co_signer:?}: `{want}` not in\n{trace}");
    }
    assert!(s.check(&sign(Some("bob")), Overlay::empty()).is_allowed());
}

#[test]
fn an_empty_row_filter_gives_the_reason_a_check_gives() {
    let s = snapshot();
    let session = Session::default();
    // Eve's only grant on t1 expired; her t2 grant is ordinary. A check on t1 says
    // grant_expired; her filter for `sign` without a co-signer is empty for the same
    // kind of reason a check gives on her rows, not "no grant".
    let mut read_t1 = sign(None);
    read_t1.principal = "eve".into();
    read_t1.action = "read".into();
    let checked = s.check(&read_t1, Overlay::empty());
    assert_eq!(checked.reason, Reason::GrantExpired);
    let f = s.filter_rows("eve", "sign", "ledger", &session, NOW, Overlay::empty());
    assert_eq!(
        f,
        RowFilter::None {
            reason: Reason::DualControlRequired
        }
    );
    let ann = s.filter_rows("ann", "sign", "ledger", &session, NOW, Overlay::empty());
    assert_eq!(
        ann,
        RowFilter::None {
            reason: s.check(&sign(None), Overlay::empty()).reason
        }
    );
    // After every window has closed, the filter's reason is the window's.
    let later = Timestamp(NOW.0 + 200 * 86_400);
    let f = s.filter_rows("eve", "read", "ledger", &session, later, Overlay::empty());
    assert_eq!(
        f,
        RowFilter::None {
            reason: Reason::GrantLapsed
        }
    );
}

#[test]
fn conditions_and_account_states_read_as_words() {
    let s = snapshot();
    let listing = Listing {
        at: NOW,
        overlay: Overlay::empty(),
        usable_only: false,
    };
    let paths = s.list_principal_access("eve", &listing);
    let rendered: Vec<String> = paths
        .iter()
        .flat_map(|p| p.conditions.iter().map(ToString::to_string))
        .collect();
    assert!(
        rendered.contains(&"expires 2026-01-01T00:00:00Z".to_owned()),
        "{rendered:?}"
    );
    assert!(rendered.contains(&"lapses after 90d unused".to_owned()), "{rendered:?}");
    assert!(
        rendered.iter().all(|c| !c.contains("Some(") && !c.contains('{')),
        "{rendered:?}"
    );
    let cy = s.list_subjects("read", "ledger", Target::Tenant("t1"), &listing);
    let cy = cy.iter().find(|p| p.principal == "cy").unwrap();
    assert_eq!(cy.account.as_str(), "terminated");
    assert_eq!(AccountStatus::Terminated.as_str(), "terminated");
}
