//! Validation: every problem in a bundle at once, each with its path and a plain reason.

use crate::bundle::{Bundle, Classification, DenyRule, Grant, PrincipalKind, Role, Scope, WILDCARD};
use crate::principal_keys::PrincipalKeys;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::hash_map::Entry;

/// Ids that name a role or a generic account rather than a person (R4).
const GENERIC_IDS: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "shared",
    "test",
    "guest",
    "user",
    "support",
    "ops",
];

/// The most actions a resource type may define (they are a 64-bit mask when compiled).
pub const MAX_ACTIONS: usize = 64;

/// One problem, where it is and why it matters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}{}: {problem}", .line.map(|l| format!(" (line {l})")).unwrap_or_default())]
pub struct ValidationError {
    /// Path in the document, naming an entry by its id when it has a unique one
    /// (`grants[ivan-root].role`), else by position (`grants[17].role`).
    pub path: String,
    /// 1-based line in the document, when the source is known ([`crate::compile_source`]).
    pub line: Option<usize>,
    /// What is wrong.
    pub problem: Problem,
    /// The path by position, to find the line.
    pub(crate) position: String,
}

/// What is wrong at a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A name or id is blank.
    #[error("must not be empty")]
    Empty,
    /// A name is declared twice.
    #[error("duplicate {kind} `{name}`")]
    Duplicate {
        /// What kind of thing.
        kind: &'static str,
        /// The repeated name.
        name: String,
    },
    /// A reference to something the bundle does not declare.
    #[error("unknown {kind} `{name}`")]
    Unknown {
        /// What kind of thing.
        kind: &'static str,
        /// The name used.
        name: String,
    },
    /// An action not defined for the resource type.
    #[error("action `{action}` is not defined for resource type `{resource_type}`")]
    UnknownAction {
        /// The action used.
        action: String,
        /// The type it was used on.
        resource_type: String,
    },
    /// `*` used where a real name is needed.
    #[error("`*` is reserved for deny rules")]
    ReservedName,
    /// A resource type without actions.
    #[error("a resource type needs at least one action")]
    NoActions,
    /// More actions than the compiled mask holds.
    #[error("{count} actions; at most {MAX_ACTIONS} are supported")]
    TooManyActions {
        /// How many were given.
        count: usize,
    },
    /// Sensitive data cannot be public (R19).
    #[error("public actions are not allowed on a sensitive resource type (R19)")]
    PublicSensitive,
    /// A dual-control action the role does not grant.
    #[error("dual-control action `{action}` is not among the role's permissions (R13)")]
    DualControlNotGranted {
        /// The action.
        action: String,
    },
    /// A service account without an owner (R5).
    #[error("service account `{id}` has no owner (R5)")]
    ServiceWithoutOwner {
        /// The account.
        id: String,
    },
    /// A generic id that is not marked as a shared account (R4).
    #[error(
        "`{id}` looks like a generic account; mark it `shared: true` if it is an approved non-sensitive shared account (R4)"
    )]
    GenericAccount {
        /// The id.
        id: String,
    },
    /// One person with two ids and no exception (R4).
    #[error("person `{person}` already holds id `{other}`; set `duplicate_exception: true` if approved (R4)")]
    DuplicatePerson {
        /// The person.
        person: String,
        /// The id seen first.
        other: String,
    },
    /// A grant naming both or neither subject kind.
    #[error("a grant names exactly one of `principal` and `group`")]
    Subject,
    /// A resource-scoped grant on a type its role has no permission on.
    #[error("role `{role}` grants nothing on resource type `{resource_type}`")]
    ScopeOutsideRole {
        /// The role.
        role: String,
        /// The scope's type.
        resource_type: String,
    },
    /// `not_before` is not before `expires`.
    #[error("`not_before` must be before `expires`")]
    EmptyWindow,
    /// A temporary-only role granted without an expiry (R11).
    #[error("role `{role}` is temporary-only: the grant needs `expires` (R11)")]
    TemporaryWithoutExpiry {
        /// The role.
        role: String,
    },
    /// A temporary grant longer than the role allows (R11).
    #[error("role `{role}` allows grants of at most {max_secs}s; this one lasts {secs}s or has no `not_before` (R11)")]
    TtlTooLong {
        /// The role.
        role: String,
        /// The role's limit.
        max_secs: i64,
        /// The grant's length (0 when unknown).
        secs: i64,
    },
    /// Not enough distinct approvers (R12).
    #[error("needs {needed} distinct approvers other than the grantee, has {has} (R12)")]
    MissingApprovals {
        /// Approvers required.
        needed: u8,
        /// Distinct valid approvers given.
        has: usize,
    },
    /// The grantee approved their own grant (R12).
    #[error("`{id}` cannot approve a grant they receive (R12)")]
    SelfApproval {
        /// The approver.
        id: String,
    },
    /// A duration that must be positive.
    #[error("must be longer than zero")]
    NotPositive,
    /// A policy test without a time would run at whatever today is.
    #[error("a policy test needs a time: give its request an `at`")]
    TestWithoutTime,
    /// A document without resource types allows nothing; usually a test file passed as a bundle.
    #[error(
        "a bundle declares at least one resource type (a policy test file is run with `portcullis policy test BUNDLE TESTS`, not pushed)"
    )]
    NoResourceTypes,
    /// A deny rule whose actions list is empty.
    #[error("a deny rule needs at least one action (or `*`)")]
    NoDenyActions,
}

/// Every problem found in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in the bundle:\n{}", .0.len(), render(.0))]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    /// Puts each problem on its line of `source`, the document the bundle was read from.
    pub fn locate(&mut self, source: &[u8]) {
        let positions: Vec<&str> = self.0.iter().map(|e| e.position.as_str()).collect();
        let lines = crate::parse::lines_of(source, &positions);
        for (e, line) in self.0.iter_mut().zip(lines) {
            e.line = line;
        }
    }
}

fn render(errors: &[ValidationError]) -> String {
    errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
}

/// Checks a bundle against every rule that can be decided before any request (R4, R5, R11, R12, ...).
///
/// ```
/// let bundle = portcullis_policy::parse_bundle(b"principals: [{id: svc, kind: service}]",
///     portcullis_policy::Format::Yaml).unwrap();
/// let errors = portcullis_policy::validate(&bundle).unwrap_err();
/// assert_eq!(errors.0[0].to_string(), "principals[svc]: service account `svc` has no owner (R5)");
/// ```
pub fn validate(bundle: &Bundle) -> Result<(), ValidationErrors> {
    let keys = PrincipalKeys::of(bundle);
    let unknown = keys.of_grants(&bundle.grants, drop);
    validate_knowing(bundle, &keys, &unknown)
}

/// [`validate`] given what [`PrincipalKeys`] worked out: the principals' keys and the
/// places of the grants whose principal is unknown, ascending.
pub(crate) fn validate_knowing(
    bundle: &Bundle,
    principals: &PrincipalKeys<'_>,
    unknown_grant_principals: &[usize],
) -> Result<(), ValidationErrors> {
    let mut v = Validator::new(bundle, principals, unknown_grant_principals);
    v.settings();
    v.resource_types();
    v.roles();
    v.groups();
    v.principals();
    for (i, g) in bundle.grants.iter().enumerate() {
        v.grant(i, g);
    }
    for (i, d) in bundle.denies.iter().enumerate() {
        v.deny(i, d);
    }
    for (i, t) in bundle.tests.iter().enumerate() {
        if t.request.at.is_none() {
            v.err(format!("tests[{i}].request.at"), Problem::TestWithoutTime);
        }
    }
    if bundle.resource_types.is_empty() {
        v.err("resource_types", Problem::NoResourceTypes);
    }
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(v.errors))
    }
}

struct Validator<'a> {
    bundle: &'a Bundle,
    errors: Vec<ValidationError>,
    types: FxHashMap<&'a str, FxHashSet<&'a str>>,
    /// (type, action) pairs that are critical (R8, R12).
    critical: FxHashSet<(&'a str, &'a str)>,
    /// Each role with the approvals its grants need (R12), worked out once per role.
    roles: FxHashMap<&'a str, (&'a Role, u8)>,
    groups: FxHashMap<&'a str, FxHashSet<&'a str>>,
    principals: &'a PrincipalKeys<'a>,
    /// Places of the grants whose principal is unknown, ascending.
    unknown_grant_principals: &'a [usize],
    grant_ids: FxHashSet<&'a str>,
    deny_ids: FxHashSet<&'a str>,
    /// Built at the first error: a valid bundle never pays for it.
    labels: std::cell::OnceCell<Labels<'a>>,
}

/// Entry ids that can stand for positions in paths: each unique, non-empty id of a grant,
/// deny rule or principal.
struct Labels<'a> {
    grants: Vec<Option<&'a str>>,
    denies: Vec<Option<&'a str>>,
    principals: Vec<Option<&'a str>>,
}

impl<'a> Labels<'a> {
    fn new(bundle: &'a Bundle) -> Self {
        fn unique<'a>(ids: impl Iterator<Item = Option<&'a str>> + Clone) -> Vec<Option<&'a str>> {
            let mut count: FxHashMap<&str, usize> = FxHashMap::default();
            for id in ids.clone().flatten() {
                *count.entry(id).or_default() += 1;
            }
            ids.map(|id| id.filter(|i| !i.is_empty() && count.get(i) == Some(&1)))
                .collect()
        }
        Labels {
            grants: unique(bundle.grants.iter().map(|g| g.id.as_deref())),
            denies: unique(bundle.denies.iter().map(|d| Some(d.id.as_str()))),
            principals: unique(bundle.principals.iter().map(|p| Some(p.id.as_str()))),
        }
    }

    /// `grants[3].role` as `grants[ivan-root].role` when grant 3 has a unique id.
    fn relabel(&self, position: &str) -> String {
        let lists = [
            ("grants[", &self.grants),
            ("denies[", &self.denies),
            ("principals[", &self.principals),
        ];
        for (prefix, ids) in lists {
            if let Some(rest) = position.strip_prefix(prefix)
                && let Some((index, tail)) = rest.split_once(']')
                && let Some(Some(id)) = index.parse::<usize>().ok().and_then(|i| ids.get(i))
            {
                return format!("{prefix}{id}]{tail}");
            }
        }
        position.to_owned()
    }
}

impl<'a> Validator<'a> {
    fn new(bundle: &'a Bundle, principals: &'a PrincipalKeys<'a>, unknown_grant_principals: &'a [usize]) -> Self {
        Validator {
            bundle,
            errors: Vec::new(),
            types: FxHashMap::default(),
            critical: FxHashSet::default(),
            roles: FxHashMap::default(),
            groups: FxHashMap::default(),
            principals,
            unknown_grant_principals,
            grant_ids: FxHashSet::default(),
            deny_ids: FxHashSet::default(),
            labels: std::cell::OnceCell::new(),
        }
    }

    fn err(&mut self, path: impl Into<String>, problem: Problem) {
        let position: String = path.into();
        self.errors.push(ValidationError {
            path: self.labels.get_or_init(|| Labels::new(self.bundle)).relabel(&position),
            line: None,
            problem,
            position,
        });
    }

    fn unknown(&mut self, path: impl Into<String>, kind: &'static str, name: &str) {
        self.err(
            path,
            Problem::Unknown {
                kind,
                name: name.to_owned(),
            },
        );
    }

    fn name(&mut self, path: String, name: &str) -> bool {
        if name.is_empty() {
            self.err(path, Problem::Empty);
            false
        } else if name == WILDCARD {
            self.err(path, Problem::ReservedName);
            false
        } else {
            true
        }
    }

    fn settings(&mut self) {
        let s = &self.bundle.settings;
        let durations = [
            ("idle_timeout", s.idle_timeout),
            ("max_session_age", s.max_session_age),
            ("elevation_max_age", s.elevation_max_age),
            ("dormant_after", s.dormant_after),
            ("customer_dormant_after", s.customer_dormant_after),
            ("unused_access_lapse", s.unused_access_lapse),
            ("temporary_default_ttl", Some(s.temporary_default_ttl)),
        ];
        for (field, value) in durations {
            if value.is_some_and(|d| d.0 <= 0) {
                self.err(format!("settings.{field}"), Problem::NotPositive);
            }
        }
    }

    fn resource_types(&mut self) {
        for (i, t) in self.bundle.resource_types.iter().enumerate() {
            let path = format!("resource_types[{i}]");
            // A duplicate is reported and still checked; the first declaration counts.
            let duplicate = self.name(format!("{path}.name"), &t.name) && self.types.contains_key(t.name.as_str());
            if duplicate {
                self.err(
                    format!("{path}.name"),
                    Problem::Duplicate {
                        kind: "resource type",
                        name: t.name.clone(),
                    },
                );
            }
            if t.actions.is_empty() {
                self.err(format!("{path}.actions"), Problem::NoActions);
            }
            if t.actions.len() > MAX_ACTIONS {
                self.err(
                    format!("{path}.actions"),
                    Problem::TooManyActions { count: t.actions.len() },
                );
            }
            let mut actions = FxHashSet::default();
            for (j, a) in t.actions.iter().enumerate() {
                let apath = format!("{path}.actions[{j}]");
                if self.name(apath.clone(), a) && !actions.insert(a.as_str()) {
                    self.err(
                        apath,
                        Problem::Duplicate {
                            kind: "action",
                            name: a.clone(),
                        },
                    );
                }
            }
            let named = [
                ("public_actions", &t.public_actions),
                ("critical_actions", &t.critical_actions),
                ("privileged_actions", &t.privileged_actions),
            ];
            for (field, list) in named {
                for (j, a) in list.iter().enumerate() {
                    if !actions.contains(a.as_str()) {
                        self.err(
                            format!("{path}.{field}[{j}]"),
                            Problem::UnknownAction {
                                action: a.clone(),
                                resource_type: t.name.clone(),
                            },
                        );
                    }
                }
            }
            if t.owner_attribute.is_empty() {
                self.err(format!("{path}.owner_attribute"), Problem::Empty);
            }
            if !t.public_actions.is_empty() && t.classification == Classification::Sensitive {
                self.err(format!("{path}.public_actions"), Problem::PublicSensitive);
            }
            if duplicate {
                continue;
            }
            self.critical.extend(
                t.actions
                    .iter()
                    .filter(|a| t.is_critical(a))
                    .map(|a| (t.name.as_str(), a.as_str())),
            );
            self.types.insert(&t.name, actions);
        }
    }

    /// Checks `type` exists and `action` is defined on it; reports at `path`.
    fn type_action(&mut self, path: String, resource_type: &str, action: &str) {
        match self.types.get(resource_type) {
            Some(actions) if actions.contains(action) => {}
            Some(_) => self.err(
                path,
                Problem::UnknownAction {
                    action: action.to_owned(),
                    resource_type: resource_type.to_owned(),
                },
            ),
            None => {}
        }
    }

    fn roles(&mut self) {
        for (i, r) in self.bundle.roles.iter().enumerate() {
            let path = format!("roles[{i}]");
            let duplicate = self.name(format!("{path}.name"), &r.name) && self.roles.contains_key(r.name.as_str());
            if duplicate {
                self.err(
                    format!("{path}.name"),
                    Problem::Duplicate {
                        kind: "role",
                        name: r.name.clone(),
                    },
                );
            }
            for (t, actions) in &r.permissions {
                let ppath = format!("{path}.permissions.{t}");
                if !self.types.contains_key(t.as_str()) {
                    self.unknown(ppath, "resource type", t);
                    continue;
                }
                for (j, a) in actions.iter().enumerate() {
                    self.type_action(format!("{ppath}[{j}]"), t, a);
                }
            }
            for (j, a) in r.dual_control.iter().enumerate() {
                if !r.permissions.values().any(|acts| acts.contains(a)) {
                    self.err(
                        format!("{path}.dual_control[{j}]"),
                        Problem::DualControlNotGranted { action: a.clone() },
                    );
                }
            }
            if r.max_ttl.is_some_and(|d| d.0 <= 0) {
                self.err(format!("{path}.max_ttl"), Problem::NotPositive);
            }
            if !duplicate {
                let needed = r.approvals_needed(&self.bundle.settings, |t, a| self.critical.contains(&(t, a)));
                self.roles.insert(&r.name, (r, needed));
            }
        }
    }

    fn groups(&mut self) {
        for (i, g) in self.bundle.groups.iter().enumerate() {
            let path = format!("groups[{i}]");
            let duplicate = self.name(format!("{path}.name"), &g.name) && self.groups.contains_key(g.name.as_str());
            if duplicate {
                self.err(
                    format!("{path}.name"),
                    Problem::Duplicate {
                        kind: "group",
                        name: g.name.clone(),
                    },
                );
            }
            for (j, m) in g.members.iter().enumerate() {
                if !self.principals.contains(m.as_str()) {
                    self.unknown(format!("{path}.members[{j}]"), "principal", m);
                }
            }
            if !duplicate {
                self.groups
                    .insert(&g.name, g.members.iter().map(String::as_str).collect());
            }
        }
    }

    fn principals(&mut self) {
        let mut persons: FxHashMap<&str, &str> = FxHashMap::default();
        for (i, p) in self.bundle.principals.iter().enumerate() {
            let path = format!("principals[{i}]");
            // A repeated id's key is its first place.
            let repeated = self.principals.get(&p.id) != u32::try_from(i).ok();
            if self.name(format!("{path}.id"), &p.id) && repeated {
                self.err(
                    format!("{path}.id"),
                    Problem::Duplicate {
                        kind: "principal id (R4)",
                        name: p.id.clone(),
                    },
                );
            }
            if p.kind == PrincipalKind::Service {
                match &p.owner {
                    None => self.err(path.clone(), Problem::ServiceWithoutOwner { id: p.id.clone() }),
                    Some(o) if !self.principals.contains(o.as_str()) && !self.groups.contains_key(o.as_str()) => {
                        self.unknown(format!("{path}.owner"), "principal or group", o);
                    }
                    Some(_) => {}
                }
            }
            if !p.shared && GENERIC_IDS.contains(&p.id.to_ascii_lowercase().as_str()) {
                self.err(format!("{path}.id"), Problem::GenericAccount { id: p.id.clone() });
            }
            if let Some(person) = &p.person {
                match persons.entry(person) {
                    Entry::Occupied(first) if !p.duplicate_exception => {
                        let other = first.get().to_string();
                        self.err(
                            format!("{path}.person"),
                            Problem::DuplicatePerson {
                                person: person.clone(),
                                other,
                            },
                        );
                    }
                    Entry::Occupied(_) => {}
                    Entry::Vacant(slot) => {
                        slot.insert(&p.id);
                    }
                }
            }
        }
    }

    fn grant(&mut self, i: usize, g: &'a Grant) {
        // Paths are formatted only for an error: a bundle of 10M grants has few of those.
        let path = |tail: &str| format!("grants[{i}]{tail}");
        if let Some(id) = &g.id
            && !self.grant_ids.insert(id)
        {
            self.err(
                path(".id"),
                Problem::Duplicate {
                    kind: "grant id",
                    name: id.to_string(),
                },
            );
        }
        match (&g.principal, &g.group) {
            (Some(p), None) => {
                if self.unknown_grant_principals.binary_search(&i).is_ok() {
                    self.unknown(path(".principal"), "principal", p);
                }
            }
            (None, Some(gr)) => {
                if !self.groups.contains_key(&**gr) {
                    self.unknown(path(".group"), "group", gr);
                }
            }
            _ => self.err(path(""), Problem::Subject),
        }
        // An unknown role hides nothing else: only the checks that need the role are skipped.
        let (role, needed) = self.roles.get(&*g.role).copied().unzip();
        if role.is_none() {
            self.unknown(path(".role"), "role", &g.role);
        }
        match &g.scope {
            Scope::All => {}
            Scope::Tenant(t) | Scope::Own { tenant: Some(t) } if t.is_empty() => {
                self.err(path(".scope.tenant"), Problem::Empty)
            }
            Scope::Tenant(_) | Scope::Own { .. } => {}
            Scope::Resources { resource_type, ids } => {
                if !self.types.contains_key(&**resource_type) {
                    self.unknown(path(".scope.resources.type"), "resource type", resource_type);
                } else if let Some(role) = role
                    && !role.permissions.contains_key(&**resource_type)
                {
                    self.err(
                        path(".scope.resources.type"),
                        Problem::ScopeOutsideRole {
                            role: role.name.clone(),
                            resource_type: resource_type.to_string(),
                        },
                    );
                }
                if ids.is_empty() {
                    self.err(path(".scope.resources.ids"), Problem::Empty);
                }
            }
        }
        if let (Some(nb), Some(ex)) = (g.terms().not_before, g.terms().expires)
            && nb >= ex
        {
            self.err(path(".expires"), Problem::EmptyWindow);
        }
        if let Some(role) = role
            && role.temporary_only
        {
            match (g.terms().expires, role.max_ttl) {
                (None, _) => self.err(
                    path(".expires"),
                    Problem::TemporaryWithoutExpiry {
                        role: role.name.clone(),
                    },
                ),
                (Some(ex), Some(max)) => {
                    let secs = g.terms().not_before.map_or(0, |nb| ex.0.saturating_sub(nb.0));
                    if g.terms().not_before.is_none() || secs > max.0 {
                        self.err(
                            path(".expires"),
                            Problem::TtlTooLong {
                                role: role.name.clone(),
                                max_secs: max.0,
                                secs,
                            },
                        );
                    }
                }
                (Some(_), None) => {}
            }
        }
        self.approvals(i, g, needed.unwrap_or(0));
    }

    /// Whether `id` is a grantee of `g`: its principal or a member of its group (R12).
    fn is_grantee(&self, g: &Grant, id: &str) -> bool {
        match (&g.principal, &g.group) {
            (Some(p), None) => **p == *id,
            (None, Some(gr)) => self.groups.get(&**gr).is_some_and(|members| members.contains(id)),
            _ => false,
        }
    }

    fn approvals(&mut self, i: usize, g: &Grant, needed: u8) {
        let path = |tail: &str| format!("grants[{i}].approvals{tail}");
        let mut distinct = FxHashSet::default();
        for (j, a) in g.terms().approvals.iter().enumerate() {
            if !self.principals.contains(&a.by) {
                self.unknown(path(&format!("[{j}].by")), "principal", &a.by);
            } else if self.is_grantee(g, &a.by) {
                self.err(
                    path(&format!("[{j}].by")),
                    Problem::SelfApproval { id: a.by.to_string() },
                );
            } else {
                distinct.insert(&*a.by);
            }
        }
        if distinct.len() < usize::from(needed) {
            self.err(
                path(""),
                Problem::MissingApprovals {
                    needed,
                    has: distinct.len(),
                },
            );
        }
    }

    fn deny(&mut self, i: usize, d: &'a DenyRule) {
        let path = format!("denies[{i}]");
        if d.id.is_empty() {
            self.err(format!("{path}.id"), Problem::Empty);
        } else if !self.deny_ids.insert(&d.id) {
            self.err(
                format!("{path}.id"),
                Problem::Duplicate {
                    kind: "deny rule id",
                    name: d.id.clone(),
                },
            );
        }
        for (j, p) in d.principals.iter().enumerate() {
            if !self.principals.contains(p.as_str()) {
                self.unknown(format!("{path}.principals[{j}]"), "principal", p);
            }
        }
        for (j, g) in d.groups.iter().enumerate() {
            if !self.groups.contains_key(g.as_str()) {
                self.unknown(format!("{path}.groups[{j}]"), "group", g);
            }
        }
        if d.actions.is_empty() {
            self.err(format!("{path}.actions"), Problem::NoDenyActions);
        }
        if d.resource_type == WILDCARD {
            for (j, a) in d.actions.iter().enumerate() {
                if a != WILDCARD && !self.types.values().any(|acts| acts.contains(a.as_str())) {
                    self.err(
                        format!("{path}.actions[{j}]"),
                        Problem::Unknown {
                            kind: "action",
                            name: a.clone(),
                        },
                    );
                }
            }
        } else if !self.types.contains_key(d.resource_type.as_str()) {
            self.unknown(format!("{path}.resource_type"), "resource type", &d.resource_type);
        } else {
            for (j, a) in d.actions.iter().enumerate() {
                if a != WILDCARD {
                    self.type_action(format!("{path}.actions[{j}]"), &d.resource_type, a);
                }
            }
        }
    }
}
