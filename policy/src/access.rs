//! Access-review queries (A2): who can reach a tenant or resource, and what a principal can
//! reach, each naming the grant that gives the access and the conditions on it.

use crate::bundle::AccountStatus;
use crate::decision::RuleRef;
use crate::request::Resource;
use crate::snapshot::{ANY_TENANT, CScope, Entry, Snapshot};
use crate::time::Timestamp;
use serde::Serialize;

/// Something that must hold before a grant actually allows (R7..R16).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// R8: a second factor.
    Mfa,
    /// R10: elevation into the role.
    Elevation,
    /// R13: a co-signer for these actions.
    DualControl(Vec<String>),
    /// R15: only in an emergency, with a reason.
    BreakGlassOnly,
    /// R11: valid from.
    NotBefore(Timestamp),
    /// R11: valid until.
    Expires(Timestamp),
    /// R7: lapses when unused.
    Lapses,
    /// R14: a deny rule overrides it for this target.
    DeniedBy(String),
}

/// One way a principal reaches resources: through which grant, role and scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessPath {
    /// Principal id.
    pub principal: String,
    /// Account state (R6); reviews list inactive accounts that still hold grants.
    pub account: AccountStatus,
    /// Grant id.
    pub grant: String,
    /// Role name.
    pub role: String,
    /// Group the grant reaches the principal through.
    pub via_group: Option<String>,
    /// Resource type.
    pub resource_type: String,
    /// Actions allowed.
    pub actions: Vec<String>,
    /// `all`, `tenant:X` or `resources:N ids`.
    pub scope: String,
    /// Conditions on use.
    pub conditions: Vec<Condition>,
}

/// What a "who can reach" query is about.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Every resource of a tenant.
    Tenant(&'a str),
    /// One resource (its tenant, when given, also counts).
    Resource {
        /// Resource id.
        id: &'a str,
        /// Its tenant.
        tenant: Option<&'a str>,
        /// Its owner (the type's `owner_attribute`), which `own` scopes reach.
        owner: Option<&'a str>,
    },
}

impl Snapshot {
    /// A2: every (principal, grant) that lets someone do `action` on `resource_type` at `target`.
    pub fn list_subjects(&self, action: &str, resource_type: &str, target: Target<'_>) -> Vec<AccessPath> {
        let Some(&type_key) = self.type_keys.get(resource_type) else {
            return Vec::new();
        };
        let Some(ctype) = self.types.get(usize::from(type_key)) else {
            return Vec::new();
        };
        let Some(bit) = ctype.action_bit(action) else {
            return Vec::new();
        };
        let (tenant, res_id, owner) = match target {
            Target::Tenant(t) => (Some(t), None, None),
            Target::Resource { id, tenant, owner } => (tenant, Some(id), owner),
        };
        let tenant_key = tenant.and_then(|t| self.tenants.key(t));
        let res_key = res_id.and_then(|id| ctype.ids.key(id));
        let by_tenant = tenant_key
            .and_then(|t| self.reverse.by_tenant.get(&t))
            .into_iter()
            .flatten();
        let by_res = self.reverse.by_resources.iter().filter(|_| res_key.is_some());
        // `own` scopes are not indexed: only the owner can hold one that reaches the resource.
        let owner_key = owner.and_then(|o| self.principal(o)).map(|p| p.key);
        let owner_pairs: Vec<(u32, u32)> = owner
            .and_then(|o| self.principal(o))
            .map(|p| {
                p.entries_for(type_key)
                    .filter(|e| matches!(e.scope, CScope::Own(_)) && !e.break_glass)
                    .map(|e| (p.key, e.grant))
                    .collect()
            })
            .unwrap_or_default();
        let probe = Resource {
            resource_type: resource_type.to_owned(),
            id: res_id.unwrap_or_default().to_owned(),
            tenant: tenant.map(str::to_owned),
            attributes: Default::default(),
        };
        let mut out = Vec::new();
        for &(p, g) in self
            .reverse
            .everything
            .iter()
            .chain(by_tenant)
            .chain(by_res)
            .chain(&owner_pairs)
        {
            let Some(principal) = self.principals.by_key(p) else {
                continue;
            };
            let entry = principal
                .entries_for(type_key)
                .find(|e| e.grant == g && e.actions & bit != 0);
            if let Some(e) = entry
                && (e.break_glass || self.scope_covers(e.scope, tenant_key, res_key, owner_key == Some(p)))
            {
                let mut path = self.path(p, e);
                if let Some(d) = self.deny_for(type_key, bit, p, &probe) {
                    path.conditions.push(Condition::DeniedBy(d));
                }
                out.push(path);
            }
        }
        out.sort_by(|a, b| (&a.principal, &a.grant).cmp(&(&b.principal, &b.grant)));
        out
    }

    /// A2: everything `principal` can reach, grant by grant and type by type.
    pub fn list_principal_access(&self, principal: &str) -> Vec<AccessPath> {
        let Some(p) = self.principal(principal) else {
            return Vec::new();
        };
        p.entries().map(|e| self.path(p.key, e)).collect()
    }

    fn deny_for(&self, type_key: u16, bit: u64, principal: u32, probe: &Resource) -> Option<String> {
        let list = self.denies_by_type.get(usize::from(type_key))?;
        list.iter().filter(|td| td.actions & bit != 0).find_map(|td| {
            let rule = self.denies.get(td.deny as usize)?;
            let applies = self.deny_subject_matches(rule, &[Some(principal)])
                && (rule.tenants.is_empty() || probe.tenant.as_deref().is_some_and(|t| rule.tenants.contains(t)))
                && (rule.resources.is_empty() || rule.resources.contains(probe.id.as_str()));
            applies.then(|| self.rule_name(&RuleRef::Deny(td.deny)).into_owned())
        })
    }

    fn path(&self, principal: u32, e: &Entry) -> AccessPath {
        let p = self.principals.by_key(principal);
        let g = self.grants.get(e.grant as usize);
        let ctype = self.types.get(usize::from(e.type_key));
        let role = g.and_then(|g| self.roles.get(g.role as usize));
        let names = |mask: u64| -> Vec<String> {
            ctype.map_or_else(Vec::new, |t| {
                t.actions
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1u64 << i) != 0)
                    .map(|(_, a)| a.to_string())
                    .collect()
            })
        };
        let mut conditions = Vec::new();
        if let Some(r) = role {
            if r.requires_mfa {
                conditions.push(Condition::Mfa);
            }
            if r.privileged {
                conditions.push(Condition::Elevation);
            }
            let dual = r.masks(e.type_key).1;
            if dual != 0 {
                conditions.push(Condition::DualControl(names(dual)));
            }
            if r.break_glass {
                conditions.push(Condition::BreakGlassOnly);
            }
        }
        if let Some(g) = g {
            let w = self.window(g);
            conditions.extend(w.not_before.map(Condition::NotBefore));
            conditions.extend(w.expires.map(Condition::Expires));
            if w.lapse_from.is_some() {
                conditions.push(Condition::Lapses);
            }
        }
        let scope = match e.scope {
            CScope::All => "all".to_owned(),
            CScope::Tenant(t) => format!("tenant:{}", self.tenants.name(t).unwrap_or_default()),
            CScope::Resources(s) => format!(
                "resources:{} ids",
                self.resource_sets.get(s as usize).map_or(0, |b| b.len())
            ),
            CScope::Own(ANY_TENANT) => "own".to_owned(),
            CScope::Own(t) => format!("own,tenant:{}", self.tenants.name(t).unwrap_or_default()),
        };
        AccessPath {
            principal: p.map_or_else(String::new, |p| p.id.to_string()),
            account: p.map_or(AccountStatus::Terminated, |p| p.status),
            grant: self.rule_name(&RuleRef::Grant(e.grant)).into_owned(),
            role: g.map_or_else(String::new, |g| self.role_name(g.role).to_owned()),
            via_group: g
                .and_then(|g| g.group)
                .and_then(|k| self.group_names.get(k as usize))
                .map(|n| n.to_string()),
            resource_type: ctype.map_or_else(String::new, |t| t.name.to_string()),
            actions: names(e.actions),
            scope,
            conditions,
        }
    }
}
