//! The policy bundle: what a policy author writes, in YAML or JSON (one serde schema).
//!
//! Each field names the rule of `docs/rules.md` it expresses.

use crate::name::Name;
use crate::request::Request;
use crate::time::{Seconds, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A whole policy document: settings, vocabulary, people and the grants between them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// The organisation's numbers (logoff, dormancy, TTLs, approvals).
    #[serde(default)]
    pub settings: Settings,
    /// The kinds of resource and the actions defined on each.
    #[serde(default)]
    pub resource_types: Vec<ResourceType>,
    /// Pre-approved job-function roles (R2).
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Groups of principals that grants may name as their subject.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Every identity known to the policy (R4, R5, R6, R7).
    #[serde(default)]
    pub principals: Vec<Principal>,
    /// Role grants with their scope, validity and approvals (R3, R11, R12).
    #[serde(default, deserialize_with = "crate::parse::sized_grants")]
    pub grants: Vec<Grant>,
    /// Explicit deny rules that override every allow (R14).
    #[serde(default)]
    pub denies: Vec<DenyRule>,
    /// Policy tests the compiler runs before accepting the bundle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<PolicyTest>,
}

/// Organisation-specific parameters (the settings table of `docs/rules.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// R9: deny a session idle for longer than this.
    pub idle_timeout: Option<Seconds>,
    /// R9: deny a session whose authentication is older than this.
    pub max_session_age: Option<Seconds>,
    /// R10: how long an elevation into a privileged role lasts.
    pub elevation_max_age: Option<Seconds>,
    /// R7: deny accounts with no activity for this long.
    pub dormant_after: Option<Seconds>,
    /// R7: the dormancy cut-off for customer personnel, when it differs.
    pub customer_dormant_after: Option<Seconds>,
    /// R7: non-standard grants unused for this long lapse.
    pub unused_access_lapse: Option<Seconds>,
    /// R11: lifetime of a temporary grant when none is given.
    pub temporary_default_ttl: Seconds,
    /// R12: distinct approvers needed by grants of roles that reach critical resources.
    pub critical_approvals: u8,
    /// R8: whether SMS counts as a second factor.
    pub sms_acceptable: bool,
    /// R6: failed logins before the identity provider locks an account (informational).
    pub lockout_after_failed_logins: Option<u32>,
    /// A1: what the server does when the audit trail cannot keep up.
    pub audit_on_backpressure: AuditBackpressure,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            idle_timeout: None,
            max_session_age: None,
            elevation_max_age: None,
            dormant_after: None,
            customer_dormant_after: None,
            unused_access_lapse: None,
            temporary_default_ttl: Seconds(3_600),
            critical_approvals: 2,
            sms_acceptable: false,
            lockout_after_failed_logins: None,
            audit_on_backpressure: AuditBackpressure::Block,
        }
    }
}

/// What happens to a decision whose audit record cannot be queued (A1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditBackpressure {
    /// Wait for room in the queue.
    #[default]
    Block,
    /// Turn the decision into a deny (fail closed).
    Deny,
    /// Drop the record and count it.
    Drop,
}

/// How sensitive a resource type's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// Non-personal content (R19).
    Public,
    /// Business data without ePHI.
    #[default]
    Internal,
    /// ePHI or other sensitive data (R4: never reachable by shared accounts).
    Sensitive,
}

/// A kind of resource and the actions defined on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceType {
    /// Unique name, e.g. `patient_record`.
    pub name: String,
    /// Actions defined for this type (at most 64).
    pub actions: Vec<String>,
    /// Data classification.
    #[serde(default)]
    pub classification: Classification,
    /// R8, R12: every action is critical (a second factor; approvals on grants reaching it).
    #[serde(default)]
    pub critical: bool,
    /// R8, R12: the actions that are critical when not all are, e.g. `[update, delete]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critical_actions: Vec<String>,
    /// R10: actions a grant allows only from a session elevated into the grant's role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privileged_actions: Vec<String>,
    /// R18: when non-empty, the session's network must be one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// R19: actions anyone may perform, even without a known principal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_actions: Vec<String>,
    /// Column holding the tenant id, for SQL row filters.
    #[serde(default = "default_tenant_column")]
    pub tenant_column: String,
    /// Column holding the resource id, for SQL row filters.
    #[serde(default = "default_id_column")]
    pub id_column: String,
    /// The resource attribute naming its owner, for `own` scopes.
    #[serde(default = "default_owner_attribute")]
    pub owner_attribute: String,
    /// Column holding the owner, for SQL row filters; defaults to `owner_attribute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_column: Option<String>,
}

fn default_tenant_column() -> String {
    "tenant_id".to_owned()
}

fn default_id_column() -> String {
    "id".to_owned()
}

fn default_owner_attribute() -> String {
    "owner".to_owned()
}

impl ResourceType {
    /// A type with these actions and every other field at its default.
    pub fn new(name: &str, actions: &[&str]) -> ResourceType {
        ResourceType {
            name: name.to_owned(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            classification: Classification::default(),
            critical: false,
            critical_actions: Vec::new(),
            privileged_actions: Vec::new(),
            networks: Vec::new(),
            public_actions: Vec::new(),
            tenant_column: default_tenant_column(),
            id_column: default_id_column(),
            owner_attribute: default_owner_attribute(),
            owner_column: None,
        }
    }

    /// R8, R12: whether `action` on this type is critical.
    pub fn is_critical(&self, action: &str) -> bool {
        self.critical || self.critical_actions.iter().any(|a| a == action)
    }

    /// R10: whether `action` on this type needs elevation into the grant's role.
    pub fn is_privileged(&self, action: &str) -> bool {
        self.privileged_actions.iter().any(|a| a == action)
    }

    /// The owner a resource of this type names, if it names one.
    pub fn owner_of<'r>(&self, resource: &'r crate::request::Resource) -> Option<&'r str> {
        resource.attributes.get(&self.owner_attribute).map(String::as_str)
    }

    /// The SQL column holding the owner.
    pub fn owner_column(&self) -> &str {
        self.owner_column.as_deref().unwrap_or(&self.owner_attribute)
    }
}

/// A pre-approved job-function role (R2) and the conditions on its use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Unique name, e.g. `clinician`.
    pub name: String,
    /// Resource type name to the actions this role allows on it.
    #[serde(default)]
    pub permissions: BTreeMap<String, Vec<String>>,
    /// R10: usable only from a session elevated into this role.
    #[serde(default)]
    pub privileged: bool,
    /// R8: usable only from a session with a second factor.
    #[serde(default)]
    pub requires_mfa: bool,
    /// R11: grants must expire.
    #[serde(default)]
    pub temporary_only: bool,
    /// R11: longest validity a grant of a temporary-only role may have.
    #[serde(default)]
    pub max_ttl: Option<Seconds>,
    /// R12: distinct approvers each grant needs (overrides the critical default).
    #[serde(default)]
    pub approvals_required: Option<u8>,
    /// R13: actions that need a co-signer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dual_control: Vec<String>,
    /// R15: grants of this role apply only in an emergency, with a stated reason, at any scope.
    #[serde(default)]
    pub break_glass: bool,
    /// R16: holders may act as customer principals within the grant's scope.
    #[serde(default)]
    pub impersonation: bool,
}

impl Role {
    /// R12: distinct approvers each grant of this role needs: its own number, else
    /// `critical_approvals` when it allows an action `is_critical(type, action)` says is.
    pub fn approvals_needed(&self, settings: &Settings, is_critical: impl Fn(&str, &str) -> bool) -> u8 {
        self.approvals_required.unwrap_or_else(|| {
            let critical = self
                .permissions
                .iter()
                .any(|(t, actions)| actions.iter().any(|a| is_critical(t, a)));
            if critical { settings.critical_approvals } else { 0 }
        })
    }
}

/// A named set of principals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Unique name.
    pub name: String,
    /// Principal ids.
    #[serde(default)]
    pub members: Vec<String>,
}

/// Whether a principal is a person or a robot (R5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person.
    #[default]
    Human,
    /// A service account; must name an owner.
    Service,
}

/// Account state reported by the identity provider (R6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// May use its grants.
    #[default]
    Active,
    /// Switched off by an administrator.
    Disabled,
    /// Locked after failed logins.
    Locked,
    /// Left the organisation.
    Terminated,
}

impl AccountStatus {
    /// The snake_case name used in files, reports and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Disabled => "disabled",
            AccountStatus::Locked => "locked",
            AccountStatus::Terminated => "terminated",
        }
    }
}

/// One identity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// Unique, byte-exact id (R4).
    pub id: String,
    /// Person or service (R5).
    #[serde(default)]
    pub kind: PrincipalKind,
    /// Owning person or group; required for services (R5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Account state (R6).
    #[serde(default)]
    pub status: AccountStatus,
    /// Home tenant of customer personnel, the scope impersonation is checked against (R16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Customer personnel use the customer dormancy cut-off (R7).
    #[serde(default)]
    pub customer: bool,
    /// Last activity seen by the identity provider (R7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<Timestamp>,
    /// A non-sensitive shared account (R4): allowed, but never reaches sensitive data.
    #[serde(default)]
    pub shared: bool,
    /// The person behind the id, to catch one person holding two ids (R4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// Approved exception for a person holding more than one id (R4).
    #[serde(default)]
    pub duplicate_exception: bool,
}

/// What a grant reaches (R3). Written `all`, `{tenant: acme}`,
/// `{resources: {type: study, ids: [s1, s2]}}`, `own` or `{own: true, tenant: acme}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything the role's permissions name.
    All,
    /// Every resource of one customer account.
    Tenant(Name),
    /// Resources whose owner (the type's `owner_attribute`) is the principal acting, or
    /// the one acted as (R16); of one tenant when `tenant` is given.
    Own {
        /// Only resources of this tenant.
        tenant: Option<Name>,
    },
    /// Listed resources of one type.
    Resources {
        /// Resource type of the ids.
        resource_type: Name,
        /// Resource ids.
        ids: Box<[Box<str>]>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceList {
    #[serde(rename = "type")]
    resource_type: Name,
    ids: Box<[Box<str>]>,
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Scope::All => s.serialize_str("all"),
            Scope::Tenant(t) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("tenant", t)?;
                m.end()
            }
            Scope::Own { tenant: None } => s.serialize_str("own"),
            Scope::Own { tenant: Some(t) } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("own", &true)?;
                m.serialize_entry("tenant", t)?;
                m.end()
            }
            Scope::Resources { resource_type, ids } => {
                let mut m = s.serialize_map(Some(1))?;
                let list = ResourceList {
                    resource_type: resource_type.clone(),
                    ids: ids.clone(),
                };
                m.serialize_entry("resources", &list)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScopeVisitor;
        impl<'de> serde::de::Visitor<'de> for ScopeVisitor {
            type Value = Scope;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "`all`, `own`, `{tenant: ID}`, `{own: true, tenant: ID}` or `{resources: {type: TYPE, ids: [...]}}`",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scope, E> {
                match v {
                    "all" => Ok(Scope::All),
                    "own" => Ok(Scope::Own { tenant: None }),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Scope, A::Error> {
                use serde::de::Error;
                /// A scope's keys, read without allocating (ten million grants have one each).
                #[derive(Deserialize)]
                #[serde(field_identifier, rename_all = "lowercase")]
                enum Key {
                    Tenant,
                    Resources,
                    Own,
                }
                let (mut tenant, mut resources, mut own) = (None, None, None);
                while let Some(key) = map.next_key::<Key>()? {
                    let (repeated, name) = match key {
                        Key::Tenant => (tenant.replace(map.next_value::<Name>()?).is_some(), "tenant"),
                        Key::Resources => (
                            resources.replace(map.next_value::<ResourceList>()?).is_some(),
                            "resources",
                        ),
                        Key::Own => (own.replace(map.next_value::<bool>()?).is_some(), "own"),
                    };
                    if repeated {
                        return Err(A::Error::custom(format!("`{name}` appears twice in one scope")));
                    }
                }
                match (tenant, resources, own) {
                    (_, _, Some(false)) => Err(A::Error::custom(
                        "`own: false` is not a scope: leave `own` out, or write `own: true`",
                    )),
                    (tenant, None, Some(true)) => Ok(Scope::Own { tenant }),
                    (Some(t), None, None) => Ok(Scope::Tenant(t)),
                    (None, Some(list), None) => Ok(Scope::Resources {
                        resource_type: list.resource_type,
                        ids: list.ids,
                    }),
                    (None, None, None) => Err(A::Error::custom("empty scope")),
                    _ => Err(A::Error::custom(
                        "a scope is one of `tenant`, `resources` or `own` (which may name a `tenant`)",
                    )),
                }
            }
        }
        d.deserialize_any(ScopeVisitor)
    }
}

impl Scope {
    /// R3: whether this scope reaches `resource`; `owned` says whether its owner is the
    /// principal the grant is being used by. Ids compare byte for byte.
    pub fn covers(&self, resource: &crate::request::Resource, owned: bool) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenant(t) => resource.tenant.as_deref() == Some(&**t),
            Scope::Own { tenant } => owned && tenant.as_deref().is_none_or(|t| resource.tenant.as_deref() == Some(t)),
            Scope::Resources { resource_type, ids } => {
                **resource_type == *resource.resource_type && ids.iter().any(|id| **id == *resource.id)
            }
        }
    }
}

/// Who approved a grant and when (R12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Approving principal id.
    pub by: Box<str>,
    /// The capacity they approved in (`manager`, `security`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Box<str>>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
}

/// A role given to a principal or group within a scope (R2, R3).
///
/// Written flat (`{principal, role, scope, expires, approvals, ...}`); held with the
/// conditions most grants lack out of line in [`GrantTerms`], so a plain grant is about
/// half the size (ten million of them are read into memory at once at scale).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "GrantFields", into = "GrantFields")]
pub struct Grant {
    /// Stable id used in decisions and audit; defaults to `grants[N]`. Shared with the
    /// compiled snapshot rather than copied into it.
    pub id: Option<std::sync::Arc<str>>,
    /// Subject principal (exactly one of `principal` and `group`). Its own allocation, not
    /// a shared [`Name`]: principals repeat little, and a boxed id is a third the size.
    pub principal: Option<Box<str>>,
    /// Subject group (exactly one of `principal` and `group`).
    pub group: Option<Name>,
    /// Granted role.
    pub role: Name,
    /// What the grant reaches.
    pub scope: Scope,
    /// Window, approvals, ticket and lapse; `None` when the grant has none of them. Read
    /// through [`Grant::terms`], changed through [`Grant::terms_mut`].
    pub terms: Option<Box<GrantTerms>>,
}

/// The conditions a grant may carry beyond its subject, role and scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantTerms {
    /// R11: inert before this time.
    pub not_before: Option<Timestamp>,
    /// R11: inert from this time on.
    pub expires: Option<Timestamp>,
    /// R12: approvals given.
    pub approvals: Vec<Approval>,
    /// Ticket or justification.
    pub ticket: Option<Box<str>>,
    /// R7: non-standard access that lapses when unused.
    pub non_standard: bool,
    /// R7: last use of a non-standard grant.
    pub last_used: Option<Timestamp>,
}

/// The terms of a grant that has none.
static NO_TERMS: GrantTerms = GrantTerms {
    not_before: None,
    expires: None,
    approvals: Vec::new(),
    ticket: None,
    non_standard: false,
    last_used: None,
};

impl Grant {
    /// A grant of `role` to one principal within `scope`, with no window, approvals or id.
    pub fn to_principal(principal: &str, role: &str, scope: Scope) -> Grant {
        Grant {
            id: None,
            principal: Some(principal.into()),
            group: None,
            role: role.into(),
            scope,
            terms: None,
        }
    }

    /// The grant's id as decisions report it: its own id or `grants[index]`.
    pub fn display_id(&self, index: usize) -> String {
        match &self.id {
            Some(id) => id.to_string(),
            None => format!("grants[{index}]"),
        }
    }

    /// The grant's terms (all empty when it has none).
    pub fn terms(&self) -> &GrantTerms {
        self.terms.as_deref().unwrap_or(&NO_TERMS)
    }

    /// The grant's terms to change, made empty first when it has none.
    pub fn terms_mut(&mut self) -> &mut GrantTerms {
        self.terms.get_or_insert_with(Box::default)
    }

    /// `terms`, boxed only when any is set.
    pub fn with_terms(mut self, terms: GrantTerms) -> Grant {
        self.terms = (terms != NO_TERMS).then(|| Box::new(terms));
        self
    }
}

/// Grants are equal when their fields and terms are; an empty box equals none.
impl PartialEq for Grant {
    fn eq(&self, other: &Grant) -> bool {
        self.id == other.id
            && self.principal == other.principal
            && self.group == other.group
            && self.role == other.role
            && self.scope == other.scope
            && self.terms() == other.terms()
    }
}

/// A grant as written: every field at one level.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Grant", deny_unknown_fields)]
struct GrantFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<std::sync::Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    principal: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<Name>,
    role: Name,
    scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_before: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    approvals: Vec<Approval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ticket: Option<Box<str>>,
    #[serde(default)]
    non_standard: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_used: Option<Timestamp>,
}

impl From<GrantFields> for Grant {
    fn from(f: GrantFields) -> Grant {
        Grant {
            id: f.id,
            principal: f.principal,
            group: f.group,
            role: f.role,
            scope: f.scope,
            terms: None,
        }
        .with_terms(GrantTerms {
            not_before: f.not_before,
            expires: f.expires,
            approvals: f.approvals,
            ticket: f.ticket,
            non_standard: f.non_standard,
            last_used: f.last_used,
        })
    }
}

impl From<Grant> for GrantFields {
    fn from(g: Grant) -> GrantFields {
        let t = g.terms.map(|t| *t).unwrap_or_default();
        GrantFields {
            id: g.id,
            principal: g.principal,
            group: g.group,
            role: g.role,
            scope: g.scope,
            not_before: t.not_before,
            expires: t.expires,
            approvals: t.approvals,
            ticket: t.ticket,
            non_standard: t.non_standard,
            last_used: t.last_used,
        }
    }
}

/// An explicit deny (R14). Empty selectors match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyRule {
    /// Unique id reported in decisions.
    pub id: String,
    /// Why the rule exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Principals the rule applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Groups whose members the rule applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Resource type, or `*` for every type.
    pub resource_type: String,
    /// Actions, or `[*]` for every action of the type.
    pub actions: Vec<String>,
    /// Only resources of these tenants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// Only these resource ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Only resources whose attributes have these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub when: BTreeMap<String, String>,
}

/// The wildcard accepted in deny rules' `resource_type` and `actions`.
pub const WILDCARD: &str = "*";

/// One policy test: a request and the decision it must get.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTest {
    /// Short name printed by `portcullis policy test`.
    pub name: String,
    /// The request; its `at` pins the time (else the test file's `now`; a bundle's own
    /// tests must give `at`).
    pub request: Request,
    /// `allow` or `deny`.
    pub expect: crate::decision::Effect,
    /// Expected reason code, when the test pins it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<crate::decision::Reason>,
    /// Expected deciding rule, as decisions name it (a grant or deny id, `grants[N]`, a
    /// temporary grant's id); `""` asserts that no rule decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Expected markers, exactly: `[]` asserts none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<TestFlag>>,
    /// R17: ask as a caller that hides forbidden resources; a deny is then `not_found`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hide_forbidden: bool,
}

/// A marker a policy test can assert on a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestFlag {
    /// R15: emergency access was used.
    BreakGlass,
    /// R16: the principal acted as another account.
    Impersonated,
    /// R17: a deny the caller reports as "not found" (`hide_forbidden`).
    NotFound,
}

/// A row-filter case: the rows a principal may see, as SQL, or none and why (R17).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterTest {
    /// Short name.
    pub name: String,
    /// Principal id.
    pub principal: String,
    /// Action name.
    pub action: String,
    /// Resource type (the table).
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Session facts.
    #[serde(default)]
    pub session: crate::request::Session,
    /// Time; else the file's `now`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// What the filter must be.
    pub expect: FilterExpect,
}

/// The expected filter: exactly one of `none` (no row, with the reason) and `sql`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterExpect {
    /// No row, for this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none: Option<crate::decision::Reason>,
    /// The predicate, e.g. `(("patient_id" = $1))`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// Its bind parameters, in order (a string, or a list for `= ANY($n)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<crate::filter::SqlParam>,
}

/// A listing case: who can do an action on a tenant or a resource (A2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSubjectsTest {
    /// Short name.
    pub name: String,
    /// Action name.
    pub action: String,
    /// Resource type.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// The tenant (alone: every resource of it; with `id`: that resource's tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// One resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The resource's owner, for `own` scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Time; else the file's `now`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// List only paths usable now (default), or every path.
    #[serde(default = "yes")]
    pub usable_only: bool,
    /// The principals listed, in any order, each once.
    pub expect: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A file of policy tests (`portcullis policy test BUNDLE TESTS`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTestFile {
    /// The time of every case that gives none. A case without a time in a file without
    /// `now` is an error: a test never runs at today's date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<Timestamp>,
    /// Check cases.
    #[serde(default)]
    pub tests: Vec<PolicyTest>,
    /// Row-filter cases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter_rows: Vec<FilterTest>,
    /// Listing cases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub list_subjects: Vec<ListSubjectsTest>,
}
