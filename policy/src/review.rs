//! Access-review reports (A2, A3) and the change report between two bundles (A4), as plain
//! tables that the command line prints as text, CSV, JSON or Markdown.

use crate::access::{Listing, Target};
use crate::activity::Activity;
use crate::bundle::{Bundle, Grant, PrincipalKind, Role};
use crate::snapshot::Snapshot;
use crate::time::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A titled table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What the table shows.
    pub title: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

impl Report {
    fn new(title: impl Into<String>, columns: &[&str]) -> Report {
        Report {
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }
}

fn grantee(g: &Grant) -> String {
    match (&g.principal, &g.group) {
        (Some(p), _) => p.to_string(),
        (None, Some(gr)) => format!("group:{gr}"),
        _ => String::new(),
    }
}

fn scope_text(g: &Grant) -> String {
    match &g.scope {
        crate::Scope::All => "all".to_owned(),
        crate::Scope::Tenant(t) => format!("tenant:{t}"),
        crate::Scope::Own { tenant: None } => "own".to_owned(),
        crate::Scope::Own { tenant: Some(t) } => format!("own,tenant:{t}"),
        crate::Scope::Resources { resource_type, ids } => format!("{resource_type}:{}", ids.join(" ")),
    }
}

fn time(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
}

/// Principals a grant reaches: its principal, or its group's members.
fn grantees<'a>(bundle: &'a Bundle, g: &'a Grant) -> Vec<&'a str> {
    match (&g.principal, &g.group) {
        (Some(p), _) => vec![&**p],
        (None, Some(gr)) => bundle
            .groups
            .iter()
            .filter(|x| *x.name == **gr)
            .flat_map(|x| x.members.iter().map(String::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

fn role<'a>(bundle: &'a Bundle, name: &str) -> Option<&'a Role> {
    bundle.roles.iter().find(|r| r.name == name)
}

/// A2: who can reach tenant `tenant`'s data, with which actions and through which grant,
/// judged at `listing.at` (blocked paths say why, usable ones what a session needs).
pub fn tenant_access(snapshot: &Snapshot, bundle: &Bundle, tenant: &str, listing: &Listing<'_>) -> Report {
    let mut r = Report::new(
        format!("Who can reach tenant `{tenant}`"),
        &[
            "principal",
            "account",
            "grant",
            "role",
            "via group",
            "type",
            "actions",
            "scope",
            "conditions",
            "blocked",
            "needs",
        ],
    );
    let mut seen = BTreeMap::new();
    for t in &bundle.resource_types {
        for a in &t.actions {
            for p in snapshot.list_subjects(a, &t.name, Target::Tenant(tenant), listing) {
                let key = (p.principal.clone(), p.grant.clone(), p.resource_type.clone());
                seen.entry(key).or_insert(p);
            }
        }
    }
    for p in seen.into_values() {
        let mut row = vec![p.principal.clone(), p.account.as_str().to_owned()];
        row.extend(path_columns(p));
        r.push(row);
    }
    r
}

/// The grant, role, group, type, actions, scope, conditions, blocking reason and session
/// needs of an access path.
fn path_columns(p: crate::AccessPath) -> Vec<String> {
    let words = |items: Vec<String>| items.join("; ");
    vec![
        p.grant,
        p.role,
        p.via_group.unwrap_or_default(),
        p.resource_type,
        p.actions.join(" "),
        p.scope,
        words(p.conditions.iter().map(ToString::to_string).collect()),
        p.blocked.map(|r| r.as_str().to_owned()).unwrap_or_default(),
        words(p.needs.iter().map(ToString::to_string).collect()),
    ]
}

/// A2: what `principal` can reach, judged at `listing.at`.
pub fn principal_access(snapshot: &Snapshot, principal: &str, listing: &Listing<'_>) -> Report {
    let mut r = Report::new(
        format!("What `{principal}` can reach"),
        &[
            "grant",
            "role",
            "via group",
            "type",
            "actions",
            "scope",
            "conditions",
            "blocked",
            "needs",
        ],
    );
    for p in snapshot.list_principal_access(principal, listing) {
        r.push(path_columns(p));
    }
    r
}

/// A3: holders of privileged, emergency, impersonation or dual-control roles.
pub fn privileged(bundle: &Bundle) -> Report {
    let mut r = Report::new(
        "Privileged access (review twice a year)",
        &["principal", "role", "kind", "grant", "scope", "expires"],
    );
    for (i, g) in bundle.grants.iter().enumerate() {
        let Some(role) = role(bundle, &g.role) else { continue };
        let mut kinds = Vec::new();
        if role.privileged {
            kinds.push("privileged (R10)");
        }
        if role.break_glass {
            kinds.push("break glass (R15)");
        }
        if role.impersonation {
            kinds.push("impersonation (R16)");
        }
        if !role.dual_control.is_empty() {
            kinds.push("dual control (R13)");
        }
        if kinds.is_empty() {
            continue;
        }
        for p in grantees(bundle, g) {
            r.push(vec![
                p.to_owned(),
                role.name.clone(),
                kinds.join(", "),
                g.display_id(i),
                scope_text(g),
                time(g.terms().expires),
            ]);
        }
    }
    r
}

/// A3: grants with an expiry still open at `now`, soonest first.
pub fn temporary(bundle: &Bundle, now: Timestamp) -> Report {
    let mut r = Report::new(
        format!("Temporary grants open at {now}"),
        &["expires", "grantee", "role", "scope", "grant", "ticket"],
    );
    let mut open: Vec<(Timestamp, usize, &Grant)> = bundle
        .grants
        .iter()
        .enumerate()
        .filter_map(|(i, g)| g.terms().expires.filter(|e| *e > now).map(|e| (e, i, g)))
        .collect();
    open.sort_by_key(|(e, i, _)| (*e, *i));
    for (e, i, g) in open {
        r.push(vec![
            e.to_string(),
            grantee(g),
            g.role.to_string(),
            scope_text(g),
            g.display_id(i),
            g.terms().ticket.as_deref().unwrap_or_default().to_owned(),
        ]);
    }
    r
}

/// A3 (R7): accounts past their dormancy cut-off at `now`, and accounts with no recorded
/// activity. Last activity is the latest of the bundle's and what the server `observed`.
pub fn dormant(bundle: &Bundle, observed: &Activity, now: Timestamp) -> Report {
    let s = &bundle.settings;
    let mut r = Report::new(
        format!("Dormant accounts at {now}"),
        &["principal", "status", "last activity", "cut-off", "finding"],
    );
    for p in &bundle.principals {
        let cutoff = if p.customer {
            s.customer_dormant_after.or(s.dormant_after)
        } else {
            s.dormant_after
        };
        let Some(cutoff) = cutoff else { continue };
        let last = p.last_activity.max(observed.latest(&p.id));
        let finding = match last {
            Some(last) if now.exceeds(last, cutoff) => "dormant: denied (R7)",
            Some(_) => continue,
            None => "no activity recorded",
        };
        r.push(vec![
            p.id.clone(),
            p.status.as_str().to_owned(),
            time(last),
            cutoff.to_string(),
            finding.to_owned(),
        ]);
    }
    r
}

/// A3 (R12): grants whose role needs approvals, with the approvals they carry.
pub fn approvals(bundle: &Bundle) -> Report {
    let mut r = Report::new(
        "Grants and their approvals",
        &[
            "grant",
            "grantee",
            "role",
            "needed",
            "distinct approvers",
            "approvers",
            "finding",
        ],
    );
    for (i, g) in bundle.grants.iter().enumerate() {
        let Some(role) = role(bundle, &g.role) else { continue };
        let needed = role.approvals_needed(&bundle.settings, |t, a| {
            bundle.resource_types.iter().any(|rt| rt.name == t && rt.is_critical(a))
        });
        let privileged = role.privileged || role.break_glass || role.impersonation;
        if needed == 0 && !privileged {
            continue;
        }
        let who: BTreeSet<&str> = g.terms().approvals.iter().map(|a| &*a.by).collect();
        let finding = if who.len() < usize::from(needed) {
            "LACKS APPROVALS"
        } else if needed == 0 && who.is_empty() {
            "privileged, no approval recorded"
        } else {
            "ok"
        };
        r.push(vec![
            g.display_id(i),
            grantee(g),
            role.name.clone(),
            needed.to_string(),
            who.len().to_string(),
            g.terms()
                .approvals
                .iter()
                .map(|a| {
                    format!(
                        "{}{}",
                        a.by,
                        a.role.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            finding.to_owned(),
        ]);
    }
    r
}

/// A3 (R5): service accounts, their owners and what they hold.
pub fn service_accounts(bundle: &Bundle) -> Report {
    let mut r = Report::new(
        "Service accounts and owners",
        &["service", "owner", "status", "last activity", "roles"],
    );
    for p in bundle.principals.iter().filter(|p| p.kind == PrincipalKind::Service) {
        let roles: BTreeSet<&str> = bundle
            .grants
            .iter()
            .filter(|g| grantees(bundle, g).contains(&p.id.as_str()))
            .map(|g| &*g.role)
            .collect();
        r.push(vec![
            p.id.clone(),
            p.owner.clone().unwrap_or_default(),
            p.status.as_str().to_owned(),
            time(p.last_activity),
            roles.into_iter().collect::<Vec<_>>().join(" "),
        ]);
    }
    r
}

/// A4: what changed from `old` to `new`: principals, roles, grants and deny rules added,
/// removed or changed (grants are matched by id, or by position when they have none).
pub fn diff(old: &Bundle, new: &Bundle) -> Report {
    let mut r = Report::new("Changes", &["kind", "id", "change", "detail"]);
    compare(&mut r, "principal", &old.principals, &new.principals, |_, p| {
        p.id.clone()
    });
    compare(&mut r, "role", &old.roles, &new.roles, |_, x| x.name.clone());
    compare(&mut r, "group", &old.groups, &new.groups, |_, x| x.name.clone());
    compare(
        &mut r,
        "resource type",
        &old.resource_types,
        &new.resource_types,
        |_, x| x.name.clone(),
    );
    compare(&mut r, "grant", &old.grants, &new.grants, |i, g| g.display_id(i));
    compare(&mut r, "deny", &old.denies, &new.denies, |_, x| x.id.clone());
    if old.settings != new.settings {
        r.push(vec![
            "settings".into(),
            String::new(),
            "changed".into(),
            describe_change(&old.settings, &new.settings),
        ]);
    }
    r
}

/// Adds a row per item of one kind that was removed, added or changed, matching by `key`.
fn compare<T: PartialEq + Serialize>(
    r: &mut Report,
    kind: &str,
    old: &[T],
    new: &[T],
    key: impl Fn(usize, &T) -> String,
) {
    let old: BTreeMap<String, &T> = old.iter().enumerate().map(|(i, x)| (key(i, x), x)).collect();
    let new: BTreeMap<String, &T> = new.iter().enumerate().map(|(i, x)| (key(i, x), x)).collect();
    for (id, o) in &old {
        match new.get(id) {
            None => r.push(vec![kind.into(), id.clone(), "removed".into(), json(o)]),
            Some(n) if n != o => r.push(vec![kind.into(), id.clone(), "changed".into(), describe_change(o, n)]),
            Some(_) => {}
        }
    }
    for (id, n) in &new {
        if !old.contains_key(id) {
            r.push(vec![kind.into(), id.clone(), "added".into(), json(n)]);
        }
    }
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The fields that differ, as `field: old -> new`.
fn describe_change<T: Serialize>(old: &T, new: &T) -> String {
    let (Ok(serde_json::Value::Object(o)), Ok(serde_json::Value::Object(n))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return format!("{} -> {}", json(old), json(new));
    };
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    keys.into_iter()
        .filter(|k| o.get(*k) != n.get(*k))
        .map(|k| {
            let show = |v: Option<&serde_json::Value>| v.map_or_else(|| "(none)".to_owned(), ToString::to_string);
            format!("{k}: {} -> {}", show(o.get(k)), show(n.get(k)))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
