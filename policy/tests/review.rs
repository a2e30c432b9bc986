//! Access-review reports and the change report on the example bundles.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use portcullis_policy::review::{self, Report};
use portcullis_policy::{Activity, Bundle, Format, Listing, Overlay, Timestamp, compile, parse_bundle};

fn example(name: &str) -> Bundle {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(format!("{name}.yaml"));
    parse_bundle(&std::fs::read(path).unwrap(), Format::Yaml).unwrap()
}

fn column<'a>(r: &'a Report, name: &str) -> Vec<&'a str> {
    let i = r.columns.iter().position(|c| c == name).unwrap();
    r.rows.iter().map(|row| row[i].as_str()).collect()
}

const AT: &str = "2026-11-23T10:00:00Z";

fn at(overlay: &Overlay) -> Listing<'_> {
    Listing {
        at: Timestamp::parse(AT).unwrap(),
        overlay,
        usable_only: false,
    }
}

#[test]
fn tenant_access_names_every_principal_and_grant() {
    let b = example("clinic-portal");
    let s = compile(&b, 1).unwrap();
    let r = review::tenant_access(&s, &b, "clinic-north", &at(Overlay::empty()));
    let pairs: Vec<_> = column(&r, "principal").into_iter().zip(column(&r, "grant")).collect();
    for want in [
        ("dr-ann", "north-clinicians"),
        ("nurse-cy", "north-clinicians"),
        ("mgr-eve", "eve-admin"),
        ("svc-reminders", "reminders"),
        ("er-kim", "kim-emergency"),
    ] {
        assert!(pairs.contains(&want), "{want:?} missing from {pairs:?}");
    }
    assert!(!pairs.iter().any(|(p, _)| *p == "dr-bob"), "clinic-south only");
    let cy = r.rows.iter().find(|row| row[0] == "nurse-cy").unwrap();
    assert_eq!(
        cy[1], "terminated",
        "reviews show inactive accounts that still hold grants"
    );
    assert_eq!(cy[4], "north-clinicians", "via group");
    let blocked = |who: &str| {
        let i = r.columns.iter().position(|c| c == "blocked").unwrap();
        r.rows.iter().find(|row| row[0] == who).unwrap()[i].clone()
    };
    assert_eq!(
        blocked("nurse-cy"),
        "account_terminated",
        "listings say why, as checks do"
    );
    assert_eq!(blocked("dr-ann"), "");
    // Revoked since the snapshot: the review at the same time says so.
    let mut overlay = Overlay::default();
    overlay.revoked.insert("dr-ann".into());
    let r = review::tenant_access(&s, &b, "clinic-north", &at(&overlay));
    let i = r.columns.iter().position(|c| c == "blocked").unwrap();
    let ann = r.rows.iter().find(|row| row[0] == "dr-ann").unwrap();
    assert_eq!(ann[i], "principal_revoked");
}

#[test]
fn principal_access_lists_each_grant_and_type() {
    let b = example("clinic-portal");
    let s = compile(&b, 1).unwrap();
    let r = review::principal_access(&s, "mgr-eve", &at(Overlay::empty()));
    assert_eq!(column(&r, "type"), vec!["appointment", "clinic_settings"]);
    assert!(column(&r, "grant").iter().all(|g| *g == "eve-admin"));
}

#[test]
fn review_lists_find_what_a3_asks_for() {
    let b = example("genomics-platform");
    let now = Timestamp::parse(AT).unwrap();
    let privileged = review::privileged(&b);
    assert_eq!(
        column(&privileged, "principal"),
        vec!["dev-lin", "dev-max", "dev-max", "ops-ola", "ops-pia", "ops-rex"]
    );
    let temporary = review::temporary(&b, now);
    assert_eq!(
        column(&temporary, "grant"),
        vec!["lin-support-INC-7781", "max-support-INC-7790"],
        "expired grants are not open"
    );
    let observed = Activity::default();
    let dormant = review::dormant(&b, &observed, now);
    assert_eq!(
        column(&dormant, "principal"),
        vec!["ops-rex", "dev-ned", "svc-pipeline"]
    );
    assert_eq!(column(&dormant, "finding")[1], "dormant: denied (R7)");
    assert_eq!(column(&dormant, "cut-off")[1], "90d");
    // A login the server observed a day ago takes dev-ned off the list; one from
    // before the cut-off does not, but becomes the last activity shown.
    observed.observe("dev-ned", Timestamp(now.0 - 86_400));
    observed.observe("ops-rex", Timestamp(1));
    let dormant = review::dormant(&b, &observed, now);
    assert_eq!(column(&dormant, "principal"), vec!["ops-rex", "svc-pipeline"]);
    assert_eq!(column(&dormant, "last activity")[0], Timestamp(1).to_string());
    let services = review::service_accounts(&b);
    assert_eq!(
        services.rows,
        vec![vec![
            "svc-pipeline".to_owned(),
            "platform-team".into(),
            "active".into(),
            String::new(),
            "developer".into()
        ]]
    );

    let mut lacking = b.clone();
    let lin = lacking
        .grants
        .iter_mut()
        .find(|g| g.id.as_deref() == Some("lin-support-INC-7781"))
        .unwrap();
    lin.terms_mut().approvals.truncate(1);
    let approvals = review::approvals(&lacking);
    let finding: Vec<_> = column(&approvals, "grant")
        .into_iter()
        .zip(column(&approvals, "finding"))
        .collect();
    assert!(
        finding.contains(&("lin-support-INC-7781", "LACKS APPROVALS")),
        "{finding:?}"
    );
    assert!(finding.contains(&("ola-root", "ok")));
}

#[test]
fn diff_reports_added_removed_and_changed_items() {
    let old = example("clinic-portal");
    let mut new = old.clone();
    new.principals.retain(|p| p.id != "dr-bob");
    new.grants.retain(|g| g.id.as_deref() != Some("bob-south"));
    new.principals[0].status = portcullis_policy::bundle::AccountStatus::Locked;
    new.denies[0].actions.push("read".into());
    new.settings.idle_timeout = Some(portcullis_policy::Seconds(1800));
    let r = review::diff(&old, &new);
    let rows: Vec<(&str, &str, &str)> = r
        .rows
        .iter()
        .map(|x| (x[0].as_str(), x[1].as_str(), x[2].as_str()))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("principal", "dr-ann", "changed"),
            ("principal", "dr-bob", "removed"),
            ("grant", "bob-south", "removed"),
            ("deny", "audit-logs-are-immutable", "changed"),
            ("settings", "", "changed"),
        ]
    );
    assert_eq!(r.rows[0][3], "status: \"active\" -> \"locked\"");
    assert!(
        r.rows[4][3].contains("idle_timeout: \"15m\" -> \"30m\""),
        "{}",
        r.rows[4][3]
    );
    assert!(review::diff(&old, &old).rows.is_empty());
}
