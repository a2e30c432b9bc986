//! Row filters (R17): for (principal, action, type, session), exactly the rows `check` allows,
//! as id sets (roaring bitmaps) and as a SQL predicate with bind parameters.

use crate::bundle::Scope;
use crate::decision::{Flags, Reason};
use crate::eval::{Coverage, Prelude, Subject, Tracer};
use crate::ids::IdSpace;
use crate::overlay::Overlay;
use crate::request::{Resource, Session};
use crate::snapshot::{ANY_TENANT, CScope, CType, Snapshot};
use crate::time::Timestamp;
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, BTreeSet};

/// A set of tenant or resource ids: interned keys plus names the snapshot never saw
/// (ids named only by overlay grants). INVARIANT: a name is in `names` only if its id
/// space gives it no key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdSet {
    /// Keys in the snapshot's id space (the ids themselves when the space is numeric).
    pub keys: RoaringBitmap,
    /// Ids without a key.
    pub names: BTreeSet<String>,
}

impl IdSet {
    fn one(space: &IdSpace, id: &str) -> IdSet {
        let mut set = IdSet::default();
        set.insert(space, id);
        set
    }

    fn insert(&mut self, space: &IdSpace, id: &str) {
        match space.key(id) {
            Some(k) => {
                self.keys.insert(k);
            }
            None => {
                self.names.insert(id.to_owned());
            }
        }
    }

    fn union_with(&mut self, other: &IdSet) {
        self.keys |= &other.keys;
        self.names.extend(other.names.iter().cloned());
    }

    fn intersect(&self, other: &IdSet) -> IdSet {
        IdSet {
            keys: &self.keys & &other.keys,
            names: self.names.intersection(&other.names).cloned().collect(),
        }
    }

    fn contains(&self, space: &IdSpace, id: &str) -> bool {
        match space.key(id) {
            Some(k) => self.keys.contains(k),
            None => self.names.contains(id),
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.names.is_empty()
    }

    /// Number of ids.
    pub fn len(&self) -> u64 {
        self.keys.len() + self.names.len() as u64
    }

    fn external(&self, space: &IdSpace) -> Vec<String> {
        let mut out: Vec<String> = self
            .keys
            .iter()
            .filter_map(|k| space.name(k).map(|n| n.into_owned()))
            .collect();
        out.extend(self.names.iter().cloned());
        out
    }
}

/// What one grant reaches: rows meeting every present condition (none present: every row).
#[derive(Debug, Clone, Default)]
struct Reach {
    tenants: Option<IdSet>,
    resources: Option<IdSet>,
    /// Rows whose owner column holds this principal id.
    owner: Option<String>,
    /// Conditions that no row can meet together.
    empty: bool,
}

impl Reach {
    fn tenants(set: IdSet) -> Reach {
        Reach {
            tenants: Some(set),
            ..Reach::default()
        }
    }

    fn resources(set: IdSet) -> Reach {
        Reach {
            resources: Some(set),
            ..Reach::default()
        }
    }

    fn owned_by(owner: &str, tenants: Option<IdSet>) -> Reach {
        Reach {
            tenants,
            owner: Some(owner.to_owned()),
            ..Reach::default()
        }
    }
}

/// Rows a principal may see: the union of its terms, minus the exclusions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Every row (before exclusions).
    pub all: bool,
    /// Rows whose tenant is in this set.
    pub tenants: IdSet,
    /// Rows whose id is in this set.
    pub resources: IdSet,
    /// Rows whose tenant is in the first set and id in the second (from dual control, R13).
    pub pairs: Vec<(IdSet, IdSet)>,
    /// Rows owned by someone (`own` scopes), within optional tenant and id sets.
    pub owned: Vec<Owned>,
}

/// Rows whose owner column holds `owner`, of the given tenants and ids when present.
#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    /// The owner's principal id: the principal, the one it acts as, or a co-signer (R13).
    pub owner: String,
    /// Only rows of these tenants.
    pub tenants: Option<IdSet>,
    /// Only rows with these ids.
    pub resources: Option<IdSet>,
}

impl Rows {
    fn is_empty(&self) -> bool {
        !self.all
            && self.tenants.is_empty()
            && self.resources.is_empty()
            && self.pairs.is_empty()
            && self.owned.is_empty()
    }
}

/// A deny rule (R14) restricted to rows: rows matching every present condition are removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exclusion {
    /// Deny rule id.
    pub rule: String,
    /// Tenants it applies to (empty: any).
    pub tenants: BTreeSet<String>,
    /// Resource ids it applies to (empty: any).
    pub resources: BTreeSet<String>,
    /// Attribute values it applies to.
    pub when: BTreeMap<String, String>,
}

/// The answer to "which rows may this principal see?".
#[derive(Debug, Clone, PartialEq)]
pub enum RowFilter {
    /// No row, and why: the reason a check would give (an expired grant says
    /// `grant_expired`, a missing co-signer `dual_control_required`, ...).
    None {
        /// Why, as a reason code.
        reason: Reason,
    },
    /// Some rows (possibly every row minus exclusions).
    Rows {
        /// Rows allowed.
        rows: Rows,
        /// Rows removed by deny rules.
        exclusions: Vec<Exclusion>,
        /// Snapshot version.
        version: u64,
        /// Resource type key.
        type_key: u16,
    },
}

/// Bind parameter of a SQL predicate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum SqlParam {
    /// A text array (`= ANY($n)`).
    TextArray(Vec<String>),
    /// One text value.
    Text(String),
}

/// A SQL boolean expression over the type's tenant and id columns, with `$n` parameters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SqlPredicate {
    /// The expression, e.g. `("tenant_id" = ANY($1) OR "id" = ANY($2))`.
    pub sql: String,
    /// Parameters in order.
    pub params: Vec<SqlParam>,
}

impl Snapshot {
    /// R17: the rows of `resource_type` that `principal` may `action`, under `session` at `now`.
    ///
    /// A row is allowed exactly when `check` on it allows (tested against the evaluator).
    pub fn filter_rows(
        &self,
        principal: &str,
        action: &str,
        resource_type: &str,
        session: &Session,
        now: Timestamp,
        overlay: &Overlay,
    ) -> RowFilter {
        let tracer = &mut Tracer::off();
        let none = |reason| RowFilter::None { reason };
        let (type_key, ctype, bit) = match self.resolve(resource_type, action, tracer) {
            Ok(t) => t,
            Err(r) => return none(r),
        };
        let mut flags = Flags::default();
        let prelude = match self.prelude(
            principal,
            self.principal(principal),
            ctype,
            bit,
            session,
            overlay,
            now,
            &mut flags,
            tracer,
        ) {
            Ok(p) => p,
            Err(r) => return none(r),
        };
        let (subjects, (rows, failure)) = match prelude {
            Prelude::Public(p) => (
                [p, None],
                (
                    Rows {
                        all: true,
                        ..Rows::default()
                    },
                    None,
                ),
            ),
            Prelude::Principal(s) => {
                let subjects = [Some(s.effective), s.impersonating.then_some(s.actor)];
                (subjects, self.granted_rows(&s, type_key, bit, session, now, overlay))
            }
        };
        let mut exclusions = Vec::new();
        for td in self.denies_by_type.get(usize::from(type_key)).into_iter().flatten() {
            let Some(rule) = self.denies.get(td.deny as usize) else {
                continue;
            };
            if td.actions & bit == 0 || !self.deny_subject_matches(rule, &subjects) {
                continue;
            }
            if rule.tenants.is_empty() && rule.resources.is_empty() && rule.when.is_empty() {
                return none(Reason::ExplicitDeny);
            }
            exclusions.push(Exclusion {
                rule: rule.id.to_string(),
                tenants: rule.tenants.iter().map(|t| t.to_string()).collect(),
                resources: rule.resources.iter().map(|t| t.to_string()).collect(),
                when: rule.when.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            });
        }
        if rows.is_empty() {
            return none(failure.unwrap_or(Reason::NoMatchingGrant));
        }
        RowFilter::Rows {
            rows,
            exclusions,
            version: self.version,
            type_key,
        }
    }

    fn granted_rows(
        &self,
        s: &Subject<'_>,
        type_key: u16,
        bit: u64,
        session: &Session,
        now: Timestamp,
        overlay: &Overlay,
    ) -> (Rows, Option<Reason>) {
        let mut rows = Rows::default();
        let me = s.effective_p.id;
        let mut co_signer: Option<Vec<Reach>> = None;
        let ctype = self.types.get(usize::from(type_key));
        // The furthest-reaching failure among grants that did not admit, ranked as `check`
        // ranks them, so an empty filter gives the reason a check would (R11, R13, ...).
        let mut failure: Option<Reason> = None;
        let mut fail = |reason: Reason| {
            if failure.is_none_or(|f| reason.grant_stage_rank() > f.grant_stage_rank()) {
                failure = Some(reason);
            }
        };
        let admit = |rows: &mut Rows, reach: Reach, dual: bool, co_signer: &mut Option<Vec<Reach>>| {
            if !dual {
                add(rows, reach);
                return Ok(());
            }
            let cover = co_signer.get_or_insert_with(|| {
                let mut reaches = Vec::new();
                let co_signer = session.co_signer.as_deref().unwrap_or_default();
                // Only the reaches matter here: each covering grant adds the rows it reaches.
                let _ = self.co_signer_covers(session.co_signer.as_deref(), s, type_key, bit, overlay, now, |c| {
                    if let Some(ctype) = ctype {
                        reaches.push(match c {
                            Coverage::Compiled(scope) => self.reach(scope, co_signer),
                            Coverage::Overlay(scope) => overlay_reach(scope, &self.tenants, ctype, co_signer),
                        });
                    }
                    false
                });
                reaches
            });
            for c in cover.iter() {
                add(rows, intersect(reach.clone(), c));
            }
            if cover.is_empty() {
                Err(Reason::DualControlRequired)
            } else {
                Ok(())
            }
        };
        for e in s.effective_p.entries_for(type_key) {
            if e.actions & bit == 0 {
                continue;
            }
            if e.plain {
                add(&mut rows, self.reach(e.scope, me));
                continue;
            }
            let stages = self
                .grant_view(e.grant, type_key, bit)
                .and_then(|view| self.stages(&view, e.break_glass, session, s, now));
            match stages {
                Ok(dual) => {
                    let reach = if e.break_glass {
                        Reach::default()
                    } else {
                        self.reach(e.scope, me)
                    };
                    admit(&mut rows, reach, dual, &mut co_signer).unwrap_or_else(&mut fail);
                }
                Err(reason) => fail(reason),
            }
        }
        for t in overlay.temporary_for(s.effective_p.id) {
            let (Some((view, bg)), Some(ctype)) = (self.temporary_view(t, type_key, bit), ctype) else {
                continue;
            };
            match self.stages(&view, bg, session, s, now) {
                Ok(dual) => {
                    let reach = if bg {
                        Reach::default()
                    } else {
                        overlay_reach(&t.scope, &self.tenants, ctype, me)
                    };
                    admit(&mut rows, reach, dual, &mut co_signer).unwrap_or_else(&mut fail);
                }
                Err(reason) => fail(reason),
            }
        }
        (rows, failure)
    }

    /// What a compiled scope of a grant held by `holder` reaches.
    fn reach(&self, scope: CScope, holder: &str) -> Reach {
        let tenant = |t: u32| {
            let mut set = IdSet::default();
            set.keys.insert(t);
            set
        };
        match scope {
            CScope::All => Reach::default(),
            CScope::Tenant(t) => Reach::tenants(tenant(t)),
            CScope::Resources(i) => Reach::resources(IdSet {
                keys: self.resource_sets.get(i as usize).cloned().unwrap_or_default(),
                names: BTreeSet::new(),
            }),
            CScope::Own(ANY_TENANT) => Reach::owned_by(holder, None),
            CScope::Own(t) => Reach::owned_by(holder, Some(tenant(t))),
        }
    }
}

/// What an overlay grant's scope, held by `holder`, reaches among rows of `ctype`.
fn overlay_reach(scope: &Scope, tenants: &IdSpace, ctype: &CType, holder: &str) -> Reach {
    match scope {
        Scope::All => Reach::default(),
        Scope::Tenant(t) => Reach::tenants(IdSet::one(tenants, t)),
        Scope::Resources {
            resource_type,
            ids: list,
        } => {
            let mut set = IdSet::default();
            if **resource_type == *ctype.name {
                for id in list {
                    set.insert(&ctype.ids, id);
                }
            }
            Reach::resources(set)
        }
        Scope::Own { tenant } => Reach::owned_by(holder, tenant.as_deref().map(|t| IdSet::one(tenants, t))),
    }
}

/// Adds the rows of one reach to `rows`.
fn add(rows: &mut Rows, reach: Reach) {
    let unmeetable = |set: &Option<IdSet>| set.as_ref().is_some_and(IdSet::is_empty);
    if reach.empty || unmeetable(&reach.tenants) || unmeetable(&reach.resources) {
        return;
    }
    match (reach.owner, reach.tenants, reach.resources) {
        (Some(owner), tenants, resources) => rows.owned.push(Owned {
            owner,
            tenants,
            resources,
        }),
        (None, None, None) => rows.all = true,
        (None, Some(t), None) => rows.tenants.union_with(&t),
        (None, None, Some(r)) => rows.resources.union_with(&r),
        (None, Some(t), Some(r)) => rows.pairs.push((t, r)),
    }
}

/// The rows both reaches reach.
fn intersect(a: Reach, b: &Reach) -> Reach {
    let both = |x: Option<IdSet>, y: &Option<IdSet>| match (x, y) {
        (None, y) => y.clone(),
        (Some(x), None) => Some(x),
        (Some(x), Some(y)) => Some(x.intersect(y)),
    };
    let (owner, clash) = match (a.owner, &b.owner) {
        (Some(x), Some(y)) => {
            let clash = x != *y;
            (Some(x), clash)
        }
        (x, y) => (x.or_else(|| y.clone()), false),
    };
    Reach {
        tenants: both(a.tenants, &b.tenants),
        resources: both(a.resources, &b.resources),
        owner,
        empty: a.empty || b.empty || clash,
    }
}

impl RowFilter {
    /// Whether `row` passes the filter: the same answer `check` gives for it (R17).
    /// Fails closed (false) when `snapshot` is not the one that built the filter.
    pub fn allows(&self, snapshot: &Snapshot, row: &Resource) -> bool {
        let RowFilter::Rows {
            rows,
            exclusions,
            version,
            type_key,
        } = self
        else {
            return false;
        };
        let Some(ctype) = snapshot.types.get(usize::from(*type_key)) else {
            return false;
        };
        if *version != snapshot.version || *ctype.name != *row.resource_type {
            return false;
        }
        let tenant_in = |set: &IdSet| {
            row.tenant
                .as_deref()
                .is_some_and(|t| set.contains(&snapshot.tenants, t))
        };
        let id_in = |set: &IdSet| set.contains(&ctype.ids, &row.id);
        let owner = crate::eval::owner_of(ctype, row);
        let granted = rows.all
            || tenant_in(&rows.tenants)
            || id_in(&rows.resources)
            || rows.pairs.iter().any(|(t, r)| tenant_in(t) && id_in(r))
            || rows.owned.iter().any(|o| {
                owner == Some(o.owner.as_str())
                    && o.tenants.as_ref().is_none_or(tenant_in)
                    && o.resources.as_ref().is_none_or(id_in)
            });
        granted
            && !exclusions.iter().any(|x| {
                (x.tenants.is_empty() || row.tenant.as_ref().is_some_and(|t| x.tenants.contains(t)))
                    && (x.resources.is_empty() || x.resources.contains(&row.id))
                    && x.when.iter().all(|(k, v)| row.attributes.get(k) == Some(v))
            })
    }

    /// Allowed resource ids as a portable roaring bitmap, when the type's ids are numeric
    /// and no tenant, pair or `all` term needs the database to decide.
    pub fn resource_bitmap(&self, snapshot: &Snapshot) -> Option<&RoaringBitmap> {
        let RowFilter::Rows { rows, type_key, .. } = self else {
            return None;
        };
        let numeric = snapshot.types.get(usize::from(*type_key))?.ids.is_numeric();
        (numeric && rows.resources.names.is_empty()).then_some(&rows.resources.keys)
    }

    /// Allowed tenant ids and resource ids, as the bundle spells them.
    pub fn id_lists(&self, snapshot: &Snapshot) -> (Vec<String>, Vec<String>) {
        match self {
            RowFilter::Rows { rows, type_key, .. } => match snapshot.types.get(usize::from(*type_key)) {
                Some(ctype) => (
                    rows.tenants.external(&snapshot.tenants),
                    rows.resources.external(&ctype.ids),
                ),
                None => (Vec::new(), Vec::new()),
            },
            RowFilter::None { .. } => (Vec::new(), Vec::new()),
        }
    }

    /// The ids of a set of this filter as the bundle spells them (`tenants`: a tenant set,
    /// else a resource set of the filter's type).
    pub fn names(&self, snapshot: &Snapshot, set: &IdSet, tenants: bool) -> Vec<String> {
        let RowFilter::Rows { type_key, .. } = self else {
            return Vec::new();
        };
        match (tenants, snapshot.types.get(usize::from(*type_key))) {
            (true, _) => set.external(&snapshot.tenants),
            (false, Some(ctype)) => set.external(&ctype.ids),
            (false, None) => Vec::new(),
        }
    }

    /// The filter as a SQL predicate over the type's `tenant_column`, `id_column` and
    /// `owner_column` (and attribute columns named by deny rules), with `$n` bind parameters.
    /// `None` means the filter was not built by `snapshot`.
    pub fn to_sql(&self, snapshot: &Snapshot) -> Option<SqlPredicate> {
        let RowFilter::Rows {
            rows,
            exclusions,
            version,
            type_key,
        } = self
        else {
            return Some(SqlPredicate {
                sql: "FALSE".to_owned(),
                params: Vec::new(),
            });
        };
        let ctype = snapshot
            .types
            .get(usize::from(*type_key))
            .filter(|_| *version == snapshot.version)?;
        let tc = quote_ident(&ctype.tenant_column);
        let ic = quote_ident(&ctype.id_column);
        let mut params = Vec::new();
        let mut bind = |p: SqlParam| {
            params.push(p);
            format!("${}", params.len())
        };
        let mut terms = Vec::new();
        if rows.all {
            terms.push("TRUE".to_owned());
        }
        if !rows.tenants.is_empty() {
            terms.push(format!(
                "{tc} = ANY({})",
                bind(SqlParam::TextArray(rows.tenants.external(&snapshot.tenants)))
            ));
        }
        if !rows.resources.is_empty() {
            terms.push(format!(
                "{ic} = ANY({})",
                bind(SqlParam::TextArray(rows.resources.external(&ctype.ids)))
            ));
        }
        for (t, r) in &rows.pairs {
            let tp = bind(SqlParam::TextArray(t.external(&snapshot.tenants)));
            let rp = bind(SqlParam::TextArray(r.external(&ctype.ids)));
            terms.push(format!("({tc} = ANY({tp}) AND {ic} = ANY({rp}))"));
        }
        let oc = quote_ident(&ctype.owner_column);
        for o in &rows.owned {
            let mut conds = vec![format!("{oc} = {}", bind(SqlParam::Text(o.owner.clone())))];
            if let Some(t) = &o.tenants {
                conds.push(format!(
                    "{tc} = ANY({})",
                    bind(SqlParam::TextArray(t.external(&snapshot.tenants)))
                ));
            }
            if let Some(r) = &o.resources {
                conds.push(format!(
                    "{ic} = ANY({})",
                    bind(SqlParam::TextArray(r.external(&ctype.ids)))
                ));
            }
            terms.push(format!("({})", conds.join(" AND ")));
        }
        let mut sql = if terms.is_empty() {
            "FALSE".to_owned()
        } else {
            format!("({})", terms.join(" OR "))
        };
        for x in exclusions {
            let mut conds = Vec::new();
            if !x.tenants.is_empty() {
                conds.push(format!(
                    "{tc} = ANY({})",
                    bind(SqlParam::TextArray(x.tenants.iter().cloned().collect()))
                ));
            }
            if !x.resources.is_empty() {
                conds.push(format!(
                    "{ic} = ANY({})",
                    bind(SqlParam::TextArray(x.resources.iter().cloned().collect()))
                ));
            }
            for (k, v) in &x.when {
                conds.push(format!("{} = {}", quote_ident(k), bind(SqlParam::Text(v.clone()))));
            }
            sql.push_str(&format!(" AND NOT COALESCE(({}), FALSE)", conds.join(" AND ")));
        }
        Some(SqlPredicate { sql, params })
    }
}

/// Quotes a SQL identifier (`"a""b"`), so names from the bundle cannot inject SQL.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
