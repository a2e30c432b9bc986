//! The compiled snapshot: an immutable, interned, indexed form of a bundle that answers
//! checks by touching one principal's few entries, never the whole policy.

use crate::bundle::Settings;
use crate::decision::RuleRef;
use crate::ids::IdSpace;
use crate::principals::{PrincipalRef, PrincipalTable};
use crate::time::Timestamp;
use roaring::RoaringBitmap;
use rustc_hash::{FxHashMap, FxHashSet};
use std::borrow::Cow;

/// A compiled, immutable policy snapshot. Build one with [`crate::compile`].
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) version: u64,
    pub(crate) settings: Settings,
    pub(crate) types: Vec<CType>,
    pub(crate) type_keys: FxHashMap<Box<str>, u16>,
    pub(crate) roles: Vec<CRole>,
    pub(crate) role_keys: FxHashMap<Box<str>, u32>,
    pub(crate) group_names: Vec<Box<str>>,
    pub(crate) principals: PrincipalTable,
    pub(crate) tenants: IdSpace,
    pub(crate) grants: Vec<CGrant>,
    /// (grant key, the grant's own id) for the grants that have one, by key: anonymous
    /// grants (ten million of them in large generated bundles) cost nothing here.
    pub(crate) grant_ids: Vec<(u32, std::sync::Arc<str>)>,
    pub(crate) windows: Vec<Window>,
    /// INVARIANT: `CScope::Resources(i)` always has `i < resource_sets.len()`.
    pub(crate) resource_sets: Vec<RoaringBitmap>,
    pub(crate) denies: Vec<CDeny>,
    /// Per type key: the deny rules that can apply to it, in bundle order.
    pub(crate) denies_by_type: Vec<Vec<TypeDeny>>,
    /// Principal key -> grants of impersonation roles (R16).
    pub(crate) impersonators: FxHashMap<u32, Vec<u32>>,
    pub(crate) reverse: ReverseIndex,
    pub(crate) stats: Stats,
}

/// A resource type with its actions as bit positions.
#[derive(Debug)]
pub(crate) struct CType {
    pub name: Box<str>,
    /// INVARIANT: at most 64 actions; action `i` is bit `1 << i`.
    pub actions: Vec<Box<str>>,
    pub public: u64,
    /// Actions that need a second factor (R8).
    pub critical: u64,
    /// Actions that need elevation into the grant's role (R10).
    pub privileged: u64,
    pub sensitive: bool,
    pub networks: Vec<Box<str>>,
    pub ids: IdSpace,
    pub tenant_column: Box<str>,
    pub id_column: Box<str>,
    pub owner_attribute: Box<str>,
    pub owner_column: Box<str>,
}

impl CType {
    /// Bit of `action`, if the type defines it.
    #[inline]
    pub fn action_bit(&self, action: &str) -> Option<u64> {
        self.actions.iter().position(|a| **a == *action).map(|i| 1u64 << i)
    }
}

/// A role with its permissions per type.
#[derive(Debug)]
pub(crate) struct CRole {
    pub name: Box<str>,
    pub requires_mfa: bool,
    pub privileged: bool,
    pub break_glass: bool,
    pub impersonation: bool,
    /// (type key, allowed actions, dual-control actions), sorted by type key.
    pub perms: Vec<(u16, u64, u64)>,
}

impl CRole {
    /// (allowed, dual-control) action masks on a type.
    pub fn masks(&self, type_key: u16) -> (u64, u64) {
        self.perms
            .iter()
            .find(|(t, _, _)| *t == type_key)
            .map_or((0, 0), |(_, a, d)| (*a, *d))
    }
}

/// One grant as it applies to one principal and one resource type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub actions: u64,
    pub scope: CScope,
    pub grant: u32,
    pub type_key: u16,
    /// Emergency-only grant: scope ignored, reason required (R15).
    pub break_glass: bool,
    /// No window, lapse, MFA, elevation or dual control: allows on sight.
    pub plain: bool,
}

/// A grant's scope with ids interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CScope {
    All,
    /// Key in `Snapshot::tenants`.
    Tenant(u32),
    /// Index in `Snapshot::resource_sets`.
    Resources(u32),
    /// Resources the principal owns: of one tenant (its key), or of any (`ANY_TENANT`).
    Own(u32),
}

/// `CScope::Own` without a tenant.
pub(crate) const ANY_TENANT: u32 = u32::MAX;

/// A bundle grant's conditions and provenance.
#[derive(Debug)]
pub(crate) struct CGrant {
    pub role: u32,
    pub group: Option<u32>,
    pub scope: CScope,
    /// Index in `Snapshot::windows`, or `NO_WINDOW` (most grants have none).
    pub window: u32,
}

/// `CGrant::window` of a grant valid at all times.
pub(crate) const NO_WINDOW: u32 = u32::MAX;

/// When a grant may be used (R11) and when it lapses (R7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Window {
    pub not_before: Option<Timestamp>,
    pub expires: Option<Timestamp>,
    /// R7: when lapse applies, the time of last use it counts from.
    pub lapse_from: Option<Timestamp>,
}

impl Window {
    /// R11 and R7: whether the grant is usable at `now`.
    pub fn usable(&self, settings: &Settings, now: Timestamp) -> Result<(), crate::decision::Reason> {
        use crate::decision::Reason;
        if self.not_before.is_some_and(|nb| now < nb) {
            return Err(Reason::GrantNotYetValid);
        }
        if self.expires.is_some_and(|ex| now >= ex) {
            return Err(Reason::GrantExpired);
        }
        if let (Some(since), Some(lapse)) = (self.lapse_from, settings.unused_access_lapse)
            && now.exceeds(since, lapse)
        {
            return Err(Reason::GrantLapsed);
        }
        Ok(())
    }
}

/// An explicit deny rule (R14) with its selectors interned.
#[derive(Debug)]
pub(crate) struct CDeny {
    pub id: Box<str>,
    pub everyone: bool,
    pub principals: FxHashSet<u32>,
    pub groups: Box<[u32]>,
    pub tenants: FxHashSet<Box<str>>,
    pub resources: FxHashSet<Box<str>>,
    pub when: Box<[(Box<str>, Box<str>)]>,
}

/// A deny rule's action mask on one type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TypeDeny {
    pub deny: u32,
    pub actions: u64,
}

/// "Who can reach this?" indexes for access reviews (A2).
#[derive(Debug, Default)]
pub(crate) struct ReverseIndex {
    /// Tenant key -> (principal, grant) pairs with that tenant scope.
    pub by_tenant: FxHashMap<u32, Vec<(u32, u32)>>,
    /// (principal, grant) pairs scoped to everything, or emergency grants.
    pub everything: Vec<(u32, u32)>,
    /// (principal, grant) pairs scoped to resource lists.
    pub by_resources: Vec<(u32, u32)>,
}

/// Sizes of a compiled snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Principals.
    pub principals: usize,
    /// Bundle grants.
    pub grants: usize,
    /// Flattened (principal, type) entries.
    pub entries: usize,
    /// Distinct tenants named by grants.
    pub tenants: usize,
    /// Resource-id bitmaps.
    pub resource_sets: usize,
    /// Explicit deny rules.
    pub denies: usize,
    /// Approximate heap bytes held by the snapshot's indexes.
    pub approx_bytes: usize,
}

impl Snapshot {
    /// The version this snapshot was compiled as.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Sizes and an estimate of memory held.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether the snapshot knows this principal (byte-exact).
    pub fn has_principal(&self, id: &str) -> bool {
        self.principals.get(id).is_some()
    }

    /// Whether a resource type is classified sensitive (ePHI); unknown types count as sensitive.
    pub fn is_sensitive(&self, resource_type: &str) -> bool {
        self.type_keys
            .get(resource_type)
            .and_then(|&k| self.types.get(usize::from(k)))
            .is_none_or(|t| t.sensitive)
    }

    /// The actions a resource type defines, in declaration order; `None` for an unknown type.
    pub fn actions_of(&self, resource_type: &str) -> Option<impl Iterator<Item = &str>> {
        let t = self.types.get(usize::from(*self.type_keys.get(resource_type)?))?;
        Some(t.actions.iter().map(|a| &**a))
    }

    /// The resource attribute naming a type's owner (for `own` scopes); `None` for an unknown type.
    pub fn owner_attribute(&self, resource_type: &str) -> Option<&str> {
        let t = self.types.get(usize::from(*self.type_keys.get(resource_type)?))?;
        Some(&t.owner_attribute)
    }

    /// Whether the snapshot defines this role.
    pub fn has_role(&self, name: &str) -> bool {
        self.role_keys.contains_key(name)
    }

    /// The organisation's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The id of a rule as decisions and audit records name it.
    pub fn rule_name<'a>(&'a self, rule: &'a RuleRef) -> Cow<'a, str> {
        match rule {
            RuleRef::Grant(i) => {
                let found = self.grant_ids.binary_search_by_key(i, |(key, _)| *key).ok();
                match found.and_then(|f| self.grant_ids.get(f)) {
                    Some((_, id)) => Cow::Borrowed(&**id),
                    None => Cow::Owned(format!("grants[{i}]")),
                }
            }
            RuleRef::Deny(i) => match self.denies.get(*i as usize) {
                Some(d) => Cow::Borrowed(&*d.id),
                None => Cow::Owned(format!("denies[{i}]")),
            },
            RuleRef::Temporary(id) => Cow::Borrowed(&**id),
        }
    }

    pub(crate) fn principal(&self, id: &str) -> Option<PrincipalRef<'_>> {
        self.principals.get(id)
    }

    /// The validity window of a bundle grant. An index that is neither `NO_WINDOW` nor in
    /// range is a broken snapshot: `InternalError`, so the grant denies (fail closed).
    pub(crate) fn window(&self, g: &CGrant) -> Result<Window, crate::decision::Reason> {
        match g.window {
            NO_WINDOW => Ok(Window::default()),
            i => self
                .windows
                .get(i as usize)
                .copied()
                .ok_or(crate::decision::Reason::InternalError),
        }
    }

    /// Whether a bundle grant is usable at `now` (R11, R7); a broken window is not.
    pub(crate) fn grant_usable(&self, g: &CGrant, now: Timestamp) -> bool {
        self.window(g).and_then(|w| w.usable(&self.settings, now)).is_ok()
    }
}
