//! The compiler: validated bundle -> [`Snapshot`], then a self-check against the reference.

use crate::bundle::{Bundle, Classification, Scope, WILDCARD};
use crate::ids::IdSpace;
use crate::principal_keys::{NO_PRINCIPAL, PrincipalKeys, UNKNOWN_PRINCIPAL};
use crate::principals::{PrincipalRecord, PrincipalTable};
use crate::selfcheck::{self, Mismatch};
use crate::snapshot::{
    ANY_TENANT, CDeny, CGrant, CRole, CScope, CType, Entry, NO_WINDOW, ReverseIndex, Snapshot, Stats, TypeDeny, Window,
};
use crate::validate::{ValidationErrors, validate_knowing};
use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, OnceLock, mpsc};

/// Why a bundle did not become a snapshot.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    /// The bundle breaks the policy's own rules.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// More principals, grants or ids than 32-bit keys can number.
    #[error("the bundle is too large: more than 2^32 {0}")]
    TooLarge(&'static str),
    /// The bundle names something the compiler cannot find although validation passed: a
    /// bug. The compiler refuses rather than drop the rule (a dropped deny would fail open).
    #[error("internal error at `{path}`: {what} is missing from the compiled snapshot; nothing was compiled")]
    Internal {
        /// Where in the bundle.
        path: String,
        /// What could not be found.
        what: String,
    },
    /// The document could not be read.
    #[error(transparent)]
    Parse(#[from] crate::parse::ParseError),
    /// The caller stopped waiting (`CompileOptions::cancel`); nothing was produced.
    #[error("compilation was cancelled: the caller went away or its deadline passed")]
    Cancelled,
    /// The compiled evaluator disagreed with the reference or a policy test failed.
    #[error("self-check failed on {} request(s); first: {}", .0.len(), .0.first().map(|m| m.to_string()).unwrap_or_default())]
    SelfCheck(Vec<Mismatch>),
}

/// How much checking the compiler does after building, and how to stop it early.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// Generated requests run through both evaluators; `None` picks a number that keeps
    /// the reference (which scans the whole bundle per request) to a few seconds.
    pub self_check_samples: Option<usize>,
    /// Seed for the generated requests.
    pub seed: u64,
    /// Set by whoever waits for the result to stop the work at the next check point
    /// (between stages and between self-check requests); compile then fails `Cancelled`.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            self_check_samples: None,
            seed: 0x5eed,
            cancel: None,
        }
    }
}

/// Validates, compiles and self-checks `bundle` as snapshot `version`.
///
/// ```
/// use portcullis_policy::{compile, parse_bundle, Format};
/// let bundle = parse_bundle(br#"
/// resource_types: [{name: note, actions: [read]}]
/// roles: [{name: reader, permissions: {note: [read]}}]
/// principals: [{id: ann}]
/// grants: [{principal: ann, role: reader, scope: {tenant: acme}}]
/// "#, Format::Yaml).unwrap();
/// let snapshot = compile(&bundle, 7).unwrap();
/// assert_eq!(snapshot.version(), 7);
/// ```
pub fn compile(bundle: &Bundle, version: u64) -> Result<Snapshot, CompileError> {
    compile_with(bundle, version, CompileOptions::default())
}

/// Reads, validates, compiles and self-checks a bundle's bytes: exactly what a push
/// accepts (the server and `portcullis policy validate` both call this). Validation
/// problems carry their line in `bytes`.
pub fn compile_source(
    bytes: &[u8],
    format: crate::parse::Format,
    version: u64,
    options: CompileOptions,
) -> Result<Snapshot, CompileError> {
    let bundle = crate::parse::parse_bundle(bytes, format)?;
    compile_owned(bundle, version, options).map_err(|e| match e {
        CompileError::Invalid(mut errors) => {
            errors.locate(bytes);
            CompileError::Invalid(errors)
        }
        other => other,
    })
}

/// [`compile`] with explicit self-check options.
pub fn compile_with(bundle: &Bundle, version: u64, options: CompileOptions) -> Result<Snapshot, CompileError> {
    compile_cow(Cow::Borrowed(bundle), version, options)
}

/// [`compile_with`] on a bundle it may spend: the grants are freed once resolved, before the
/// snapshot is laid out, so the bundle and the finished snapshot are never held together.
pub fn compile_owned(bundle: Bundle, version: u64, options: CompileOptions) -> Result<Snapshot, CompileError> {
    compile_cow(Cow::Owned(bundle), version, options)
}

/// Resolves the grants on one thread while another looks their principals up (handing
/// the keys over as it goes), validates and works out the reference's answers; then lays
/// the snapshot out and puts it to them. Both threads only read the bundle. Validation's
/// errors come first: resolving an invalid bundle is wasted work, never its answer.
fn compile_cow(bundle: Cow<'_, Bundle>, version: u64, options: CompileOptions) -> Result<Snapshot, CompileError> {
    let cancelled = || options.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed));
    let samples = options.self_check_samples.unwrap_or_else(|| default_samples(&bundle));
    let b: &Bundle = &bundle;
    // Whichever thread asks first builds the table; the other waits for it.
    let keys = OnceLock::new();
    let principal_keys = || keys.get_or_init(|| PrincipalKeys::of(b));
    let (expected, resolved) = std::thread::scope(|scope| {
        let (send, grant_keys) = mpsc::channel();
        let checking = scope.spawn(|| {
            let keys = principal_keys();
            // A resolver that stopped early drops its end: the keys are not needed then.
            let unknown = keys.of_grants(&b.grants, |batch| {
                let _ = send.send(batch);
            });
            drop(send);
            validate_knowing(b, keys, &unknown)?;
            Ok::<_, CompileError>(
                (!cancelled()).then(|| selfcheck::expect(b, version, samples, options.seed, &cancelled)),
            )
        });
        let resolved = resolve(b, principal_keys, &grant_keys);
        match checking.join() {
            Ok(expected) => (expected, resolved),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    drop(keys);
    let expected = expected?;
    let resolved = resolved?;
    let expected = match expected {
        Some(expected) if !cancelled() => expected,
        _ => return Err(CompileError::Cancelled),
    };
    let (snapshot, tests) = match bundle {
        Cow::Borrowed(b) => (lay_out(b, resolved, version)?, Cow::Borrowed(&b.tests)),
        Cow::Owned(mut b) => {
            // Everything the snapshot needs from the grants is resolved: they go now,
            // before the principal table is laid out, so the two are never held together.
            drop(std::mem::take(&mut b.grants));
            (lay_out(&b, resolved, version)?, Cow::Owned(b.tests))
        }
    };
    let mismatches = expected.compare(&snapshot, &tests);
    if mismatches.is_empty() {
        Ok(snapshot)
    } else {
        Err(CompileError::SelfCheck(mismatches))
    }
}

/// About 200 million reference steps: 256 samples on small bundles, a few dozen on 10M grants.
fn default_samples(bundle: &Bundle) -> usize {
    let size = bundle.grants.len() + bundle.principals.len() + 1;
    (200_000_000 / size).clamp(16, 256)
}

fn key32(n: usize, what: &'static str) -> Result<u32, CompileError> {
    u32::try_from(n).map_err(|_| CompileError::TooLarge(what))
}

/// `found`, or an internal error naming the bundle path and the missing name.
fn found<T>(found: Option<T>, path: impl FnOnce() -> String, what: impl FnOnce() -> String) -> Result<T, CompileError> {
    found.ok_or_else(|| CompileError::Internal {
        path: path(),
        what: what(),
    })
}

/// Everything the snapshot needs from a bundle's grants, owning its data (nothing here
/// borrows the grants), so an owned bundle's grants can go before the principal table is
/// laid out.
struct Resolved {
    types: Vec<CType>,
    type_keys: FxHashMap<Box<str>, u16>,
    roles: Vec<CRole>,
    role_keys: FxHashMap<Box<str>, u32>,
    /// Each group's members' principal keys.
    members: Vec<Vec<u32>>,
    tenants: IdSpace,
    /// Entries per principal, to make room in the table.
    counts: Vec<u32>,
    /// Each grant's principal key, or `NO_PRINCIPAL` for a group's grant.
    grant_principals: Vec<u32>,
    grants: Vec<CGrant>,
    windows: Vec<Window>,
    resource_sets: Vec<RoaringBitmap>,
    set_types: Vec<u16>,
    reverse: ReverseIndex,
    impersonators: FxHashMap<u32, Vec<u32>>,
    entry_count: usize,
    grant_ids: Vec<(u32, Arc<str>)>,
    tenant_scoped: RoaringBitmap,
    denies: Vec<CDeny>,
    denies_by_type: Vec<Vec<TypeDeny>>,
}

/// Resolves `bundle`'s names to keys, its grants' principals' keys taken from
/// `grant_keys` (in order, in batches). Total on any bundle, valid or not (validation runs
/// beside it): a name it cannot resolve is an error, never a panic, and its errors count
/// only once validation has passed.
fn resolve<'a>(
    bundle: &'a Bundle,
    principal_keys: impl FnOnce() -> &'a PrincipalKeys<'a>,
    grant_keys: &Receiver<Vec<u32>>,
) -> Result<Resolved, CompileError> {
    if bundle.principals.len() >= UNKNOWN_PRINCIPAL as usize {
        return Err(CompileError::TooLarge("principals"));
    }
    let bundle_grants = &bundle.grants;
    // The resource ids grants list, by type, in one pass over the grants (not one per type).
    let mut listed: FxHashMap<&str, Vec<&[Box<str>]>> = FxHashMap::default();
    for g in bundle_grants {
        if let Scope::Resources { resource_type, ids } = &g.scope {
            listed.entry(resource_type).or_default().push(ids);
        }
    }
    let mut types = Vec::with_capacity(bundle.resource_types.len());
    let mut type_keys = FxHashMap::default();
    for (i, t) in bundle.resource_types.iter().enumerate() {
        let key = u16::try_from(i).map_err(|_| CompileError::TooLarge("resource types"))?;
        // Validation refuses more, but it runs beside this: the action bits must fit a u64.
        if t.actions.len() > crate::validate::MAX_ACTIONS {
            return Err(CompileError::Internal {
                path: format!("resource_types[{i}].actions"),
                what: format!("room for {} actions", t.actions.len()),
            });
        }
        type_keys.insert(Box::from(t.name.as_str()), key);
        let lists = listed.get(t.name.as_str()).map_or(&[][..], Vec::as_slice);
        let ids = lists.iter().flat_map(|ids| ids.iter().map(|s| &**s));
        let mask = |field: &str, names: &[String]| {
            names.iter().enumerate().try_fold(0u64, |m, (j, n)| {
                let i = found(
                    t.actions.iter().position(|a| a == n),
                    || format!("resource_types[{i}].{field}[{j}]"),
                    || format!("action `{n}`"),
                )?;
                Ok::<u64, CompileError>(m | (1 << i))
            })
        };
        types.push(CType {
            name: Box::from(t.name.as_str()),
            actions: t.actions.iter().map(|a| Box::from(a.as_str())).collect(),
            public: mask("public_actions", &t.public_actions)?,
            critical: if t.critical {
                u64::MAX
            } else {
                mask("critical_actions", &t.critical_actions)?
            },
            privileged: mask("privileged_actions", &t.privileged_actions)?,
            sensitive: t.classification == Classification::Sensitive,
            networks: t.networks.iter().map(|n| Box::from(n.as_str())).collect(),
            ids: IdSpace::build(ids).ok_or(CompileError::TooLarge("resource ids"))?,
            tenant_column: Box::from(t.tenant_column.as_str()),
            id_column: Box::from(t.id_column.as_str()),
            owner_attribute: Box::from(t.owner_attribute.as_str()),
            owner_column: Box::from(t.owner_column()),
        });
    }

    let mut roles = Vec::with_capacity(bundle.roles.len());
    let mut role_keys = FxHashMap::default();
    for (i, r) in bundle.roles.iter().enumerate() {
        role_keys.insert(Box::from(r.name.as_str()), key32(i, "roles")?);
        let mut perms: Vec<(u16, u64, u64)> = Vec::with_capacity(r.permissions.len());
        for (t, actions) in &r.permissions {
            let path = || format!("roles[{i}].permissions.{t}");
            let key = found(type_keys.get(t.as_str()).copied(), path, || {
                format!("resource type `{t}`")
            })?;
            let ct = found(types.get(usize::from(key)), path, || format!("resource type `{t}`"))?;
            let allowed = actions.iter().try_fold(0u64, |m, a| {
                Ok::<u64, CompileError>(m | found(ct.action_bit(a), path, || format!("action `{a}`"))?)
            })?;
            // Dual-control actions name actions of any of the role's types (R13).
            let dual = r
                .dual_control
                .iter()
                .filter_map(|a| ct.action_bit(a))
                .fold(0, |m, b| m | b)
                & allowed;
            perms.push((key, allowed, dual));
        }
        perms.sort_unstable();
        roles.push(CRole {
            name: Box::from(r.name.as_str()),
            requires_mfa: r.requires_mfa,
            privileged: r.privileged,
            break_glass: r.break_glass,
            impersonation: r.impersonation,
            perms,
        });
    }

    let principal_keys = principal_keys();
    let mut group_keys = FxHashMap::default();
    let mut members: Vec<Vec<u32>> = Vec::with_capacity(bundle.groups.len());
    for (i, g) in bundle.groups.iter().enumerate() {
        group_keys.insert(g.name.as_str(), key32(i, "groups")?);
        let keys = g.members.iter().enumerate().map(|(j, m)| {
            found(
                principal_keys.get(m),
                || format!("groups[{i}].members[{j}]"),
                || format!("principal `{m}`"),
            )
        });
        members.push(keys.collect::<Result<_, _>>()?);
    }

    let tenant_names = bundle_grants.iter().filter_map(|g| match &g.scope {
        Scope::Tenant(t) | Scope::Own { tenant: Some(t) } => Some(&**t),
        _ => None,
    });
    let tenants = IdSpace::build(tenant_names).ok_or(CompileError::TooLarge("tenants"))?;

    let s = &bundle.settings;
    // Entries are laid straight into the principal table: one pass over the grants
    // resolves them and counts each principal's entries, the table makes room, a second
    // pass places them (no per-principal lists held beside the table).
    let mut counts: Vec<u32> = vec![0; bundle.principals.len()];
    let mut grant_principals: Vec<u32> = Vec::with_capacity(bundle_grants.len());
    let mut grants = Vec::with_capacity(bundle_grants.len());
    let mut windows = Vec::new();
    let mut resource_sets = Vec::new();
    let mut set_types: Vec<u16> = Vec::new();
    let mut reverse = ReverseIndex::default();
    let mut impersonators: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    let mut entry_count = 0usize;
    // Ids live in their own table, left empty when no grant has one.
    let mut grant_ids: Vec<(u32, Arc<str>)> = Vec::new();
    let mut tenant_scoped = RoaringBitmap::new();
    for (i, g) in bundle_grants.iter().enumerate() {
        let gkey = key32(i, "grants")?;
        let at = |field: &str| format!("grants[{i}].{field}");
        if i == grant_principals.len() {
            // The looking-up thread is ahead: its lookups are a fraction of this loop's work.
            grant_principals.extend(grant_keys.recv().unwrap_or_default());
        }
        let principal = found(
            grant_principals.get(i).copied().filter(|&p| p != UNKNOWN_PRINCIPAL),
            || at("principal"),
            || format!("principal `{}`", g.principal.as_deref().unwrap_or_default()),
        )?;
        let role_key = found(
            role_keys.get(&*g.role).copied(),
            || at("role"),
            || format!("role `{}`", g.role),
        )?;
        let role = found(
            roles.get(role_key as usize),
            || at("role"),
            || format!("role `{}`", g.role),
        )?;
        let tenant_key = |t: &str| found(tenants.key(t), || at("scope.tenant"), || format!("tenant `{t}`"));
        let scope = match &g.scope {
            Scope::All => CScope::All,
            Scope::Tenant(t) => {
                let key = tenant_key(t)?;
                tenant_scoped.insert(key);
                CScope::Tenant(key)
            }
            Scope::Own { tenant } => CScope::Own(match tenant {
                Some(t) => tenant_key(t)?,
                None => ANY_TENANT,
            }),
            Scope::Resources { resource_type, ids } => {
                let what = || format!("resource type `{resource_type}`");
                let tkey = found(
                    type_keys.get(&**resource_type).copied(),
                    || at("scope.resources.type"),
                    what,
                )?;
                let space = &found(types.get(usize::from(tkey)), || at("scope.resources.type"), what)?.ids;
                let set = ids.iter().enumerate().map(|(j, id)| {
                    found(
                        space.key(id),
                        || at(&format!("scope.resources.ids[{j}]")),
                        || format!("resource id `{id}`"),
                    )
                });
                resource_sets.push(set.collect::<Result<RoaringBitmap, _>>()?);
                set_types.push(tkey);
                CScope::Resources(key32(resource_sets.len() - 1, "resource sets")?)
            }
        };
        let group = match &g.group {
            Some(gr) => Some(found(
                group_keys.get(&**gr).copied(),
                || at("group"),
                || format!("group `{gr}`"),
            )?),
            None => None,
        };
        let terms = g.terms();
        let lapse_from = if terms.non_standard && s.unused_access_lapse.is_some() {
            terms.last_used.or(terms.not_before)
        } else {
            None
        };
        let timeless = terms.not_before.is_none() && terms.expires.is_none() && lapse_from.is_none();
        let window = if timeless {
            NO_WINDOW
        } else {
            windows.push(Window {
                not_before: terms.not_before,
                expires: terms.expires,
                lapse_from,
            });
            key32(windows.len() - 1, "grant windows")?
        };
        let grant = CGrant {
            role: role_key,
            group,
            scope,
            window,
        };
        let subjects = subjects_of(&principal, &grant, &members, i)?;
        let per_subject = entries_of(role, &types, &set_types, &grant, gkey).count();
        let per_subject_u32 = u32::try_from(per_subject).map_err(|_| CompileError::TooLarge("principal entries"))?;
        for &p in subjects {
            let count = counts.get_mut(p as usize).ok_or(CompileError::TooLarge("principals"))?;
            *count = count
                .checked_add(per_subject_u32)
                .ok_or(CompileError::TooLarge("principal entries"))?;
            entry_count += per_subject;
            if role.impersonation {
                impersonators.entry(p).or_default().push(gkey);
            }
            match scope {
                _ if role.break_glass => reverse.everything.push((p, gkey)),
                CScope::All => reverse.everything.push((p, gkey)),
                CScope::Tenant(t) => reverse.by_tenant.entry(t).or_default().push((p, gkey)),
                CScope::Resources(_) => reverse.by_resources.push((p, gkey)),
                // Found through the owner a resource names, not through an index.
                CScope::Own(_) => {}
            }
        }
        grants.push(grant);
        if let Some(id) = &g.id {
            grant_ids.push((gkey, id.clone()));
        }
    }
    let (denies, denies_by_type) = compile_denies(bundle, &types, principal_keys, &group_keys)?;
    Ok(Resolved {
        types,
        type_keys,
        roles,
        role_keys,
        members,
        tenants,
        counts,
        grant_principals,
        grants,
        windows,
        resource_sets,
        set_types,
        reverse,
        impersonators,
        entry_count,
        grant_ids,
        tenant_scoped,
        denies,
        denies_by_type,
    })
}

/// Lays out the snapshot of `bundle` from what its grants resolved to; `bundle.grants` is
/// not read (an owned bundle's are freed by now).
fn lay_out(bundle: &Bundle, r: Resolved, version: u64) -> Result<Snapshot, CompileError> {
    let s = &bundle.settings;
    let denies_use_groups = bundle.denies.iter().any(|d| !d.groups.is_empty());
    // Group lists are only needed to match deny rules that select by group.
    let mut principal_groups: Vec<Vec<u32>> = vec![Vec::new(); bundle.principals.len()];
    for (gkey, list) in r.members.iter().enumerate().filter(|_| denies_use_groups) {
        for &p in list {
            if let Some(pg) = principal_groups.get_mut(p as usize) {
                pg.push(key32(gkey, "groups")?);
            }
        }
    }
    let records = bundle
        .principals
        .iter()
        .zip(r.counts)
        .zip(principal_groups)
        .map(|((p, entries), mut groups)| {
            groups.sort_unstable();
            groups.dedup();
            let cutoff = if p.customer {
                s.customer_dormant_after.or(s.dormant_after)
            } else {
                s.dormant_after
            };
            PrincipalRecord {
                id: &p.id,
                status: p.status,
                shared: p.shared,
                dormancy: cutoff.zip(p.last_activity).map(|(c, last)| (last, c)),
                tenant: p.tenant.as_deref(),
                groups,
                entries,
            }
        });
    let too_many = || CompileError::TooLarge("principal entries");
    let mut table = PrincipalTable::build(records, r.entry_count).ok_or_else(too_many)?;
    for ((gkey, grant), principal) in r.grants.iter().enumerate().zip(&r.grant_principals) {
        let gkey = key32(gkey, "grants")?;
        let role = found(
            r.roles.get(grant.role as usize),
            || format!("grants[{gkey}].role"),
            || "its role".to_owned(),
        )?;
        for &p in subjects_of(principal, grant, &r.members, gkey as usize)? {
            for e in entries_of(role, &r.types, &r.set_types, grant, gkey) {
                table.place(p, e).ok_or_else(too_many)?;
            }
        }
    }
    drop(r.grant_principals);
    let principals = table.finish().ok_or_else(too_many)?;

    let stats = Stats {
        principals: principals.len(),
        grants: r.grants.len(),
        entries: r.entry_count,
        tenants: r.tenant_scoped.len() as usize,
        resource_sets: r.resource_sets.len(),
        denies: r.denies.len(),
        approx_bytes: approx_bytes(&principals, &r.grants, &r.grant_ids, &r.resource_sets, &r.reverse),
    };
    Ok(Snapshot {
        version,
        settings: bundle.settings.clone(),
        types: r.types,
        type_keys: r.type_keys,
        roles: r.roles,
        role_keys: r.role_keys,
        group_names: bundle.groups.iter().map(|g| Box::from(g.name.as_str())).collect(),
        principals,
        tenants: r.tenants,
        grants: r.grants,
        grant_ids: r.grant_ids,
        windows: r.windows,
        resource_sets: r.resource_sets,
        denies: r.denies,
        denies_by_type: r.denies_by_type,
        impersonators: r.impersonators,
        reverse: r.reverse,
        stats,
    })
}

fn compile_denies(
    bundle: &Bundle,
    types: &[CType],
    principal_keys: &PrincipalKeys<'_>,
    group_keys: &FxHashMap<&str, u32>,
) -> Result<(Vec<CDeny>, Vec<Vec<TypeDeny>>), CompileError> {
    let mut by_type: Vec<Vec<TypeDeny>> = vec![Vec::new(); types.len()];
    let mut denies = Vec::with_capacity(bundle.denies.len());
    for (i, d) in bundle.denies.iter().enumerate() {
        let deny = key32(i, "deny rules")?;
        let mut typed = false;
        for (t, list) in types.iter().zip(by_type.iter_mut()) {
            if d.resource_type != WILDCARD && *d.resource_type != *t.name {
                continue;
            }
            typed = true;
            // Under `*` an action applies to the types that define it; on one type every
            // action must exist there (validation made sure).
            let mut actions = 0u64;
            for (j, a) in d.actions.iter().enumerate() {
                actions |= match (a == WILDCARD, t.action_bit(a)) {
                    (true, _) => u64::MAX,
                    (false, Some(b)) => b,
                    (false, None) if d.resource_type == WILDCARD => 0,
                    (false, None) => {
                        return Err(CompileError::Internal {
                            path: format!("denies[{i}].actions[{j}]"),
                            what: format!("action `{a}`"),
                        });
                    }
                };
            }
            if actions != 0 {
                list.push(TypeDeny { deny, actions });
            }
        }
        if !typed && d.resource_type != WILDCARD {
            return Err(CompileError::Internal {
                path: format!("denies[{i}].resource_type"),
                what: format!("resource type `{}`", d.resource_type),
            });
        }
        let keys = |field: &str, names: &[String], map: &dyn Fn(&str) -> Option<u32>| {
            let mut v = Vec::with_capacity(names.len());
            for (j, n) in names.iter().enumerate() {
                v.push(found(
                    map(n),
                    || format!("denies[{i}].{field}[{j}]"),
                    || format!("`{n}`"),
                )?);
            }
            v.sort_unstable();
            Ok::<_, CompileError>(v)
        };
        denies.push(CDeny {
            id: Box::from(d.id.as_str()),
            everyone: d.principals.is_empty() && d.groups.is_empty(),
            principals: keys("principals", &d.principals, &|p| principal_keys.get(p))?
                .into_iter()
                .collect(),
            groups: keys("groups", &d.groups, &|g| group_keys.get(g).copied())?.into_boxed_slice(),
            tenants: d.tenants.iter().map(|t| Box::from(t.as_str())).collect(),
            resources: d.resources.iter().map(|r| Box::from(r.as_str())).collect(),
            when: d
                .when
                .iter()
                .map(|(k, v)| (Box::from(k.as_str()), Box::from(v.as_str())))
                .collect(),
        });
    }
    Ok((denies, by_type))
}

/// The principals grant `index`'s entries go to: its principal (unless `NO_PRINCIPAL`),
/// or its group's members.
fn subjects_of<'a>(
    principal: &'a u32,
    grant: &CGrant,
    members: &'a [Vec<u32>],
    index: usize,
) -> Result<&'a [u32], CompileError> {
    match (*principal, grant.group) {
        (NO_PRINCIPAL, Some(g)) => members.get(g as usize).map(Vec::as_slice),
        (NO_PRINCIPAL, None) => None,
        _ => Some(std::slice::from_ref(principal)),
    }
    .ok_or_else(|| CompileError::Internal {
        path: format!("grants[{index}]"),
        what: "a subject (`principal` or `group`)".to_owned(),
    })
}

/// A grant's entries for each subject: one per resource type its role has permissions on
/// (only the listed type for a resource-list scope, unless the role is for emergencies).
fn entries_of<'a>(
    role: &'a CRole,
    types: &'a [CType],
    set_types: &'a [u16],
    grant: &CGrant,
    gkey: u32,
) -> impl Iterator<Item = Entry> + 'a {
    let scope = grant.scope;
    let scope_type = match scope {
        CScope::Resources(i) => set_types.get(i as usize).copied(),
        _ => None,
    };
    let timeless = grant.window == NO_WINDOW;
    role.perms
        .iter()
        .filter(move |(t, _, _)| role.break_glass || scope_type.is_none_or(|s| s == *t))
        .map(move |&(type_key, actions, dual)| {
            let privileged_here = types
                .get(usize::from(type_key))
                .is_some_and(|t| t.privileged & actions != 0);
            Entry {
                actions,
                scope,
                grant: gkey,
                type_key,
                break_glass: role.break_glass,
                plain: timeless
                    && dual == 0
                    && !role.requires_mfa
                    && !role.privileged
                    && !privileged_here
                    && !role.break_glass,
            }
        })
}

fn approx_bytes(
    principals: &PrincipalTable,
    grants: &[CGrant],
    ids: &[(u32, Arc<str>)],
    sets: &[RoaringBitmap],
    reverse: &ReverseIndex,
) -> usize {
    let grant_bytes =
        std::mem::size_of_val(grants) + std::mem::size_of_val(ids) + ids.iter().map(|(_, id)| id.len()).sum::<usize>();
    let set_bytes: usize = sets.iter().map(|s| s.serialized_size()).sum();
    let pairs =
        reverse.everything.len() + reverse.by_resources.len() + reverse.by_tenant.values().map(Vec::len).sum::<usize>();
    principals.approx_bytes() + grant_bytes + set_bytes + pairs * 8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{LargeShape, large_bundle};
    use crate::{Effect, Overlay, RuleRef};

    /// Builds (no self-check) the snapshot of an already validated bundle.
    fn build(bundle: &Bundle, version: u64) -> Result<Snapshot, CompileError> {
        let keys = PrincipalKeys::of(bundle);
        let (send, grant_keys) = mpsc::channel();
        keys.of_grants(&bundle.grants, |batch| send.send(batch).unwrap());
        drop(send);
        lay_out(bundle, resolve(bundle, || &keys, &grant_keys)?, version)
    }

    fn yaml(text: &str) -> Bundle {
        crate::parse_bundle(text.as_bytes(), crate::Format::Yaml).unwrap()
    }

    #[test]
    fn validation_errors_come_before_what_resolving_an_invalid_bundle_finds() {
        // Resolving, beside validation, fails on each of these (the action bits of the
        // first would not fit); compile answers with validation's own error.
        let actions: Vec<String> = (0..65).map(|i| format!("a{i}")).collect();
        let cases = [
            (
                format!(
                    "resource_types: [{{name: note, actions: [{}]}}]\nprincipals: [{{id: ann}}]",
                    actions.join(", ")
                ),
                "resource_types[0].actions",
            ),
            (
                format!("{BASE}grants: [{{principal: ann, role: writer, scope: all}}]"),
                "grants[0].role",
            ),
            (
                format!("{BASE}grants: [{{principal: cy, role: reader, scope: all}}]"),
                "grants[0].principal",
            ),
        ];
        for (text, path) in cases {
            match compile(&yaml(&text), 1) {
                Err(CompileError::Invalid(errors)) => {
                    assert!(errors.to_string().contains(path), "{path}: {errors}");
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    const BASE: &str = "
resource_types: [{name: note, actions: [read, write]}]
roles: [{name: reader, permissions: {note: [read]}}]
principals: [{id: ann}, {id: bob}]
";

    #[test]
    fn an_owned_bundle_compiles_to_what_a_borrowed_one_does() {
        use crate::synth::{random_bundle, random_request, rng};
        for seed in 0..24 {
            let mut bundle = random_bundle(seed);
            let borrowed = compile(&bundle, 5).unwrap();
            let owned = compile_owned(bundle.clone(), 5, CompileOptions::default()).unwrap();
            assert_eq!(owned.stats(), borrowed.stats(), "seed {seed}");
            let mut rng = rng(seed);
            let requests: Vec<_> = (0..32).map(|_| random_request(&bundle, &mut rng)).collect();
            for r in &requests {
                let (a, b) = (owned.check(r, Overlay::empty()), borrowed.check(r, Overlay::empty()));
                assert!(selfcheck::same(&a, &b), "seed {seed}: {a:?} against {b:?}");
            }
            // A bundle test that expects the opposite of the decision refuses both ways,
            // in the same words: the owned path checks against the reference it worked
            // out before the grants went.
            let request = requests[0].clone();
            let decision = borrowed.check(&request, Overlay::empty());
            bundle.tests.push(crate::PolicyTest {
                name: "flipped".to_owned(),
                request,
                expect: if decision.is_allowed() {
                    Effect::Deny
                } else {
                    Effect::Allow
                },
                reason: None,
                rule: None,
                flags: None,
                hide_forbidden: false,
            });
            let refusal = |r: Result<Snapshot, CompileError>| match r {
                Err(CompileError::SelfCheck(m)) => m,
                other => panic!(
                    "seed {seed}: expected a self-check failure, got {:?}",
                    other.map(|_| ())
                ),
            };
            let from_owned = refusal(compile_owned(bundle.clone(), 5, CompileOptions::default()));
            assert_eq!(from_owned, refusal(compile(&bundle, 5)), "seed {seed}");
            assert_eq!(from_owned.len(), 1, "seed {seed}: {from_owned:?}");
            assert_eq!(from_owned[0].what, "policy test `flipped`");
        }
    }

    #[test]
    fn decisions_name_a_grant_by_its_id_or_its_place() {
        let named = compile(
            &yaml(&format!(
                "{BASE}grants: [{{principal: ann, role: reader, scope: all}}, {{id: bob-reads, principal: bob, role: reader, scope: all}}, {{principal: bob, role: reader, scope: all}}]"
            )),
            1,
        )
        .unwrap();
        let anonymous = compile(
            &yaml(&format!("{BASE}grants: [{{principal: bob, role: reader, scope: all}}]")),
            1,
        )
        .unwrap();
        assert_eq!(named.rule_name(&RuleRef::Grant(0)), "grants[0]");
        assert_eq!(named.rule_name(&RuleRef::Grant(1)), "bob-reads");
        assert_eq!(named.rule_name(&RuleRef::Grant(2)), "grants[2]");
        assert_eq!(named.grant_ids.len(), 1, "only grants with an id are in the table");
        assert_eq!(anonymous.rule_name(&RuleRef::Grant(0)), "grants[0]");
        assert!(anonymous.grant_ids.is_empty(), "no table when no grant has an id");
        assert_eq!(
            std::mem::size_of::<CGrant>(),
            24,
            "a compiled grant holds no id of its own"
        );
    }

    #[test]
    fn the_compiler_refuses_rather_than_drops_a_rule_validation_missed() {
        // `build` trusts validation; each of these slipped past it would once have been
        // dropped silently (a deny rule losing its subject fails open). Now: an error.
        let cases = [
            (
                "denies: [{id: d, principals: [carol], resource_type: note, actions: [read]}]",
                "denies[0].principals[0]",
            ),
            (
                "denies: [{id: d, resource_type: note, actions: [erase]}]",
                "denies[0].actions[0]",
            ),
            (
                "denies: [{id: d, resource_type: memo, actions: [read]}]",
                "denies[0].resource_type",
            ),
            (
                "denies: [{id: d, groups: [nurses], resource_type: note, actions: [read]}]",
                "denies[0].groups[0]",
            ),
            (
                "grants: [{principal: carol, role: reader, scope: all}]",
                "grants[0].principal",
            ),
            ("grants: [{principal: ann, role: writer, scope: all}]", "grants[0].role"),
            ("groups: [{name: g, members: [carol]}]", "groups[0].members[0]"),
        ];
        for (extra, path) in cases {
            let bundle = yaml(&format!("{BASE}{extra}"));
            match build(&bundle, 1) {
                Err(CompileError::Internal { path: p, .. }) => assert_eq!(p, path, "{extra}"),
                other => panic!(
                    "{extra}: expected an internal error at {path}, got {:?}",
                    other.map(|_| ())
                ),
            }
            assert!(compile(&bundle, 1).is_err(), "{extra}");
        }
        let bad_role = yaml(
            "resource_types: [{name: note, actions: [read]}]\nroles: [{name: r, permissions: {note: [read, erase]}}]",
        );
        assert!(
            matches!(build(&bad_role, 1), Err(CompileError::Internal { path, .. }) if path == "roles[0].permissions.note")
        );
    }

    #[test]
    fn a_broken_window_index_denies_as_an_internal_error() {
        use crate::{Reason, Request, Resource};
        let bundle = yaml(&format!(
            "{BASE}grants: [{{principal: ann, role: reader, scope: all, expires: \"2999-01-01T00:00:00Z\"}}]"
        ));
        let mut snapshot = compile(&bundle, 1).unwrap();
        let req = Request {
            principal: "ann".into(),
            action: "read".into(),
            resource: Resource {
                resource_type: "note".into(),
                id: "n".into(),
                ..Resource::default()
            },
            at: Some(crate::Timestamp(1_800_000_000)),
            ..Request::default()
        };
        assert!(snapshot.check(&req, Overlay::empty()).is_allowed());
        snapshot.windows.clear(); // the grant's window index now points nowhere
        let d = snapshot.check(&req, Overlay::empty());
        assert_eq!((d.effect, d.reason), (crate::Effect::Deny, Reason::InternalError));
        let filter = snapshot.filter_rows("ann", "read", "note", &req.session, req.at.unwrap(), Overlay::empty());
        assert_eq!(
            filter,
            crate::RowFilter::None {
                reason: Reason::InternalError
            }
        );
    }

    #[test]
    fn a_cancelled_compile_stops_early_and_produces_nothing() {
        let bundle = large_bundle(LargeShape {
            principals: 2_000,
            grants: 20_000,
            tenants: 50,
            wide_resources: 10,
            seed: 7,
        });
        let cancel = Arc::new(AtomicBool::new(true));
        let options = CompileOptions {
            cancel: Some(cancel.clone()),
            ..CompileOptions::default()
        };
        assert!(matches!(
            compile_with(&bundle, 1, options.clone()),
            Err(CompileError::Cancelled)
        ));
        // Cancelled from another thread while the self-check runs: it stops well before
        // the samples it was asked for.
        cancel.store(false, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let canceller = {
            let cancel = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                cancel.store(true, Ordering::Relaxed);
            })
        };
        let slow = CompileOptions {
            self_check_samples: Some(1_000_000_000),
            ..options
        };
        assert!(matches!(compile_with(&bundle, 1, slow), Err(CompileError::Cancelled)));
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        canceller.join().unwrap();
    }
}
