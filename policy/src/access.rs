//! Access-review queries (A2): who can reach a tenant or resource, and what a principal can
//! reach, each naming the grant that gives the access, whether it is usable at the time
//! asked (and if not, why, with the reason a check would give), and what a session must
//! still bring for it to allow. A listing agrees with `check`: the principals a usable-only
//! `list_subjects` returns for one resource are exactly those a check allows with a session
//! meeting the listed needs (`tests/listings.rs`).

use crate::bundle::{AccountStatus, Scope};
use crate::decision::{Reason, RuleRef};
use crate::eval::{Tracer, owner_of, temporary_window};
use crate::overlay::{Overlay, TemporaryGrant};
use crate::principals::PrincipalRef;
use crate::request::Resource;
use crate::snapshot::{ANY_TENANT, CRole, CScope, CType, Entry, Snapshot, Window};
use crate::time::{Seconds, Timestamp};
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
    /// R7: lapses when unused for this long.
    Lapses(Seconds),
    /// R14: a deny rule overrides it for this target.
    DeniedBy(String),
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::Mfa => f.write_str("mfa"),
            Condition::Elevation => f.write_str("elevation"),
            Condition::DualControl(actions) => write!(f, "co-signer for {}", actions.join(", ")),
            Condition::BreakGlassOnly => f.write_str("emergency only"),
            Condition::NotBefore(t) => write!(f, "valid from {t}"),
            Condition::Expires(t) => write!(f, "expires {t}"),
            Condition::Lapses(after) => write!(f, "lapses after {after} unused"),
            Condition::DeniedBy(rule) => write!(f, "denied by {rule}"),
        }
    }
}

/// What a session must bring before a usable path allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// R8: a second factor.
    Mfa,
    /// R10: elevation into this role, recent enough.
    Elevation(String),
    /// R13: a co-signer who may do the same.
    CoSigner,
    /// R15: a stated emergency reason.
    BreakGlassReason,
    /// R18: one of these networks.
    Network(Vec<String>),
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Need::Mfa => f.write_str("mfa"),
            Need::Elevation(role) => write!(f, "elevation:{role}"),
            Need::CoSigner => f.write_str("co_signer"),
            Need::BreakGlassReason => f.write_str("break_glass_reason"),
            Need::Network(n) => write!(f, "network:{}", n.join("|")),
        }
    }
}

/// One way a principal reaches resources: through which grant, role and scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessPath {
    /// Principal id.
    pub principal: String,
    /// Account state (R6); reviews list inactive accounts that still hold grants.
    pub account: AccountStatus,
    /// Grant id (a temporary grant's id for overlay grants).
    pub grant: String,
    /// Role name.
    pub role: String,
    /// Group the grant reaches the principal through.
    pub via_group: Option<String>,
    /// Resource type.
    pub resource_type: String,
    /// Actions allowed.
    pub actions: Vec<String>,
    /// `all`, `tenant:X`, `resources:N ids`, `own` or `own,tenant:X`.
    pub scope: String,
    /// Conditions on use.
    pub conditions: Vec<Condition>,
    /// Why the path cannot be used at the listing's time, as a check would say
    /// (`account_terminated`, `account_dormant`, `principal_revoked`, `grant_expired`, …);
    /// `None` when it can.
    pub blocked: Option<Reason>,
    /// What the session must still bring (for any of `actions`, in a principal listing).
    pub needs: Vec<Need>,
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

/// When and against what a listing is made.
#[derive(Debug, Clone, Copy)]
pub struct Listing<'a> {
    /// The decision time paths are judged at.
    pub at: Timestamp,
    /// Revocations, temporary grants and observed activity.
    pub overlay: &'a Overlay,
    /// Leave out paths that are blocked.
    pub usable_only: bool,
}

/// A bundle entry or an overlay grant that reaches the target.
enum Source<'s> {
    Bundle(&'s Entry),
    Temporary(&'s TemporaryGrant),
}

/// One candidate path with what its usability depends on.
struct Candidate<'s> {
    principal: PrincipalRef<'s>,
    source: Source<'s>,
    role: &'s CRole,
    type_key: u16,
    /// Actions of the type the grant allows.
    actions: u64,
    /// `InternalError` when the snapshot's window index is broken: the path is blocked.
    window: Result<Window, Reason>,
}

impl Candidate<'_> {
    /// R11, R7: whether the grant is usable at `at`.
    fn usable(&self, settings: &crate::bundle::Settings, at: Timestamp) -> Result<(), Reason> {
        self.window.and_then(|w| w.usable(settings, at))
    }
}

impl Snapshot {
    /// A2: every (principal, grant) that lets someone do `action` on `resource_type` at
    /// `target`, judged at `listing.at` against `listing.overlay`. Public actions (R19)
    /// are open to everyone and list only the grants that also allow them.
    pub fn list_subjects(
        &self,
        action: &str,
        resource_type: &str,
        target: Target<'_>,
        listing: &Listing<'_>,
    ) -> Vec<AccessPath> {
        let Some((type_key, ctype, bit)) = self.resolve(resource_type, action, &mut Tracer::off()).ok() else {
            return Vec::new();
        };
        let (tenant, res_id, owner) = match target {
            Target::Tenant(t) => (Some(t), None, None),
            Target::Resource { id, tenant, owner } => (tenant, Some(id), owner),
        };
        let mut probe = Resource {
            resource_type: resource_type.to_owned(),
            id: res_id.unwrap_or_default().to_owned(),
            tenant: tenant.map(str::to_owned),
            attributes: Default::default(),
        };
        if let Some(o) = owner {
            probe.attributes.insert(ctype.owner_attribute.to_string(), o.to_owned());
        }
        let candidates: Vec<Candidate<'_>> = self
            .candidates(type_key, bit, target, listing.overlay)
            .into_iter()
            .filter(|c| self.reaches(c, ctype, &probe, res_id.is_some()))
            .collect();
        // R13: whoever could co-sign: a usable account with an ordinary usable grant here.
        let co_signers: Vec<u32> = candidates
            .iter()
            .filter(|c| {
                !c.role.break_glass
                    && self
                        .account(&c.principal, listing.overlay, listing.at, &mut Tracer::off())
                        .is_ok()
                    && c.usable(&self.settings, listing.at).is_ok()
            })
            .map(|c| c.principal.key)
            .collect();
        let mut out: Vec<AccessPath> = candidates
            .iter()
            .map(|c| {
                let mut path = self.path(c, listing);
                let denied = self.first_deny(type_key, bit, &[Some(c.principal.key)], &probe);
                if let Some(d) = denied {
                    path.conditions
                        .push(Condition::DeniedBy(self.rule_name(&RuleRef::Deny(d)).into_owned()));
                }
                path.needs = self.needs(c, ctype, bit);
                path.blocked = path.blocked.or_else(|| {
                    if denied.is_some() {
                        Some(Reason::ExplicitDeny)
                    } else if c.role.masks(type_key).1 & bit != 0 && !co_signers.iter().any(|&k| k != c.principal.key) {
                        Some(Reason::DualControlRequired)
                    } else {
                        None
                    }
                });
                path
            })
            .filter(|p| !listing.usable_only || p.blocked.is_none())
            .collect();
        out.sort_by(|a, b| (&a.principal, &a.grant).cmp(&(&b.principal, &b.grant)));
        out
    }

    /// A2: everything `principal` can reach, grant by grant and type by type, judged at
    /// `listing.at`; `needs` covers any of a path's actions.
    pub fn list_principal_access(&self, principal: &str, listing: &Listing<'_>) -> Vec<AccessPath> {
        let Some(p) = self.principal(principal) else {
            return Vec::new();
        };
        let mut candidates: Vec<Candidate<'_>> = p.entries().filter_map(|e| self.bundle_candidate(p, e)).collect();
        for t in listing.overlay.temporary_for(p.id) {
            for key in 0..self.types.len() {
                let Ok(type_key) = u16::try_from(key) else { break };
                candidates.extend(self.temporary_candidate(p, t, type_key, u64::MAX));
            }
        }
        candidates
            .iter()
            .map(|c| {
                let mut path = self.path(c, listing);
                if let Some(ctype) = self.types.get(usize::from(c.type_key)) {
                    path.needs = self.needs(c, ctype, c.actions);
                }
                path
            })
            .filter(|p| !listing.usable_only || p.blocked.is_none())
            .collect()
    }

    /// Every bundle entry and overlay grant that could reach `target` for the action `bit`.
    fn candidates<'s>(
        &'s self,
        type_key: u16,
        bit: u64,
        target: Target<'_>,
        overlay: &'s Overlay,
    ) -> Vec<Candidate<'s>> {
        let (tenant, owner, one_resource) = match target {
            Target::Tenant(t) => (Some(t), None, false),
            Target::Resource { tenant, owner, .. } => (tenant, owner, true),
        };
        let by_tenant = tenant
            .and_then(|t| self.tenants.key(t))
            .and_then(|t| self.reverse.by_tenant.get(&t))
            .into_iter()
            .flatten();
        let by_res = self.reverse.by_resources.iter().filter(|_| one_resource);
        // `own` scopes are not indexed: only the owner can hold one that reaches the resource.
        let owner_p = owner.and_then(|o| self.principal(o));
        let owned = owner_p.into_iter().flat_map(|p| {
            p.entries_for(type_key)
                .filter(|e| matches!(e.scope, CScope::Own(_)) && !e.break_glass)
                .map(move |e| (p.key, e.grant))
        });
        let mut out = Vec::new();
        for &(p, g) in self.reverse.everything.iter().chain(by_tenant).chain(by_res) {
            let Some(principal) = self.principals.by_key(p) else {
                continue;
            };
            let entry = principal
                .entries_for(type_key)
                .find(|e| e.grant == g && e.actions & bit != 0);
            out.extend(entry.and_then(|e| self.bundle_candidate(principal, e)));
        }
        for (p, g) in owned {
            let Some(principal) = self.principals.by_key(p) else {
                continue;
            };
            let entry = principal
                .entries_for(type_key)
                .find(|e| e.grant == g && e.actions & bit != 0);
            out.extend(entry.and_then(|e| self.bundle_candidate(principal, e)));
        }
        for (id, grants) in &overlay.temporary {
            let Some(principal) = self.principal(id) else {
                continue;
            };
            out.extend(
                grants
                    .iter()
                    .filter_map(|t| self.temporary_candidate(principal, t, type_key, bit)),
            );
        }
        out
    }

    fn bundle_candidate<'s>(&'s self, principal: PrincipalRef<'s>, e: &'s Entry) -> Option<Candidate<'s>> {
        let g = self.grants.get(e.grant as usize)?;
        Some(Candidate {
            principal,
            source: Source::Bundle(e),
            role: self.roles.get(g.role as usize)?,
            type_key: e.type_key,
            actions: e.actions,
            window: self.window(g),
        })
    }

    fn temporary_candidate<'s>(
        &'s self,
        principal: PrincipalRef<'s>,
        t: &'s TemporaryGrant,
        type_key: u16,
        bit: u64,
    ) -> Option<Candidate<'s>> {
        let role = self.roles.get(*self.role_keys.get(t.role.as_str())? as usize)?;
        let actions = role.masks(type_key).0;
        (actions & bit != 0).then(|| Candidate {
            principal,
            source: Source::Temporary(t),
            role,
            type_key,
            actions,
            window: Ok(temporary_window(t)),
        })
    }

    /// Whether a candidate's scope covers the probe (a whole tenant: only wide scopes do).
    fn reaches(&self, c: &Candidate<'_>, ctype: &CType, probe: &Resource, one_resource: bool) -> bool {
        if c.role.break_glass {
            return true;
        }
        let owned = owner_of(ctype, probe) == Some(c.principal.id);
        match c.source {
            Source::Bundle(e) => {
                let tenant = probe.tenant.as_deref().and_then(|t| self.tenants.key(t));
                let res = || if one_resource { ctype.ids.key(&probe.id) } else { None };
                self.scope_covers(e.scope, tenant, res, owned)
            }
            Source::Temporary(t) => match &t.scope {
                Scope::Resources { .. } | Scope::Own { .. } if !one_resource => false,
                scope => scope.covers(probe, owned),
            },
        }
    }

    /// The path with its account state, conditions and the reason it is blocked at `at`.
    fn path(&self, c: &Candidate<'_>, listing: &Listing<'_>) -> AccessPath {
        let ctype = self.types.get(usize::from(c.type_key));
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
        let r = c.role;
        let mut conditions = Vec::new();
        if r.requires_mfa {
            conditions.push(Condition::Mfa);
        }
        if r.privileged {
            conditions.push(Condition::Elevation);
        }
        let dual = r.masks(c.type_key).1;
        if dual != 0 {
            conditions.push(Condition::DualControl(names(dual)));
        }
        if r.break_glass {
            conditions.push(Condition::BreakGlassOnly);
        }
        if let Ok(w) = c.window {
            conditions.extend(w.not_before.map(Condition::NotBefore));
            conditions.extend(w.expires.map(Condition::Expires));
            if let (Some(_), Some(after)) = (w.lapse_from, self.settings.unused_access_lapse) {
                conditions.push(Condition::Lapses(after));
            }
        }
        let (grant, via_group, scope) = match c.source {
            Source::Bundle(e) => {
                let g = self.grants.get(e.grant as usize);
                (
                    self.rule_name(&RuleRef::Grant(e.grant)).into_owned(),
                    g.and_then(|g| g.group)
                        .and_then(|k| self.group_names.get(k as usize))
                        .map(|n| n.to_string()),
                    self.scope_text(e.scope),
                )
            }
            Source::Temporary(t) => (t.id.clone(), None, scope_text(&t.scope)),
        };
        let blocked = self
            .account(&c.principal, listing.overlay, listing.at, &mut Tracer::off())
            .err()
            .or_else(|| {
                (c.principal.shared && ctype.is_none_or(|t| t.sensitive)).then_some(Reason::SharedAccountSensitive)
            })
            .or_else(|| c.usable(&self.settings, listing.at).err());
        AccessPath {
            principal: c.principal.id.to_owned(),
            account: c.principal.status,
            grant,
            role: r.name.to_string(),
            via_group,
            resource_type: ctype.map_or_else(String::new, |t| t.name.to_string()),
            actions: names(c.actions),
            scope,
            conditions,
            blocked,
            needs: Vec::new(),
        }
    }

    /// What a session must bring for the candidate to allow any of the actions `bits`.
    fn needs(&self, c: &Candidate<'_>, ctype: &CType, bits: u64) -> Vec<Need> {
        let bits = bits & c.actions;
        let mut needs = Vec::new();
        if !ctype.networks.is_empty() {
            needs.push(Need::Network(ctype.networks.iter().map(|n| n.to_string()).collect()));
        }
        if c.role.requires_mfa || ctype.critical & bits != 0 {
            needs.push(Need::Mfa);
        }
        if c.role.privileged || ctype.privileged & bits != 0 {
            needs.push(Need::Elevation(c.role.name.to_string()));
        }
        if c.role.masks(c.type_key).1 & bits != 0 {
            needs.push(Need::CoSigner);
        }
        if c.role.break_glass {
            needs.push(Need::BreakGlassReason);
        }
        needs
    }

    fn scope_text(&self, scope: CScope) -> String {
        match scope {
            CScope::All => "all".to_owned(),
            CScope::Tenant(t) => format!("tenant:{}", self.tenants.name(t).unwrap_or_default()),
            CScope::Resources(s) => format!(
                "resources:{} ids",
                self.resource_sets.get(s as usize).map_or(0, |b| b.len())
            ),
            CScope::Own(ANY_TENANT) => "own".to_owned(),
            CScope::Own(t) => format!("own,tenant:{}", self.tenants.name(t).unwrap_or_default()),
        }
    }
}

/// An overlay grant's scope as listings print it.
fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::All => "all".to_owned(),
        Scope::Tenant(t) => format!("tenant:{t}"),
        Scope::Resources { ids, .. } => format!("resources:{} ids", ids.len()),
        Scope::Own { tenant: None } => "own".to_owned(),
        Scope::Own { tenant: Some(t) } => format!("own,tenant:{t}"),
    }
}
