//! Generators: random valid bundles and requests (for differential tests and the compiler's
//! self-check) and large synthetic bundles (for benchmarks and load tests).

use crate::bundle::{
    AccountStatus, Approval, Bundle, Classification, DenyRule, Grant, GrantTerms, Group, Principal, PrincipalKind,
    ResourceType, Role, Scope, Settings, WILDCARD,
};
use crate::name::Name;
use crate::overlay::{Overlay, TemporaryGrant};
use crate::request::{Factor, Request, Resource, Session};
use crate::time::{Seconds, Timestamp};
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// The time random bundles and requests are centred on (2027-01-15T08:00:00Z).
pub const BASE_TIME: Timestamp = Timestamp(1_800_000_000);

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
const PRINCIPALS: &[&str] = &["ann", "bob", "cy", "dee", "Ann", "eve", "fay", "gus"];
const TENANTS: &[&str] = &["acme", "globex", "Acme", "initech"];
const NETWORKS: &[&str] = &["vpn", "office", "wifi"];
const ATTRS: &[(&str, &str)] = &[("kind", "psychotherapy"), ("kind", "lab"), ("vip", "yes")];
/// Owner attributes random types use; random rows name owners under both.
const OWNER_ATTRIBUTES: &[&str] = &["owner", "patient"];

fn rng_for(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> Option<&'a T> {
    items.choose(rng)
}

fn maybe<T>(rng: &mut SmallRng, p: f64, value: impl FnOnce(&mut SmallRng) -> T) -> Option<T> {
    if rng.random_bool(p) { Some(value(rng)) } else { None }
}

fn subset(rng: &mut SmallRng, items: &[&str], p: f64) -> Vec<String> {
    items
        .iter()
        .filter(|_| rng.random_bool(p))
        .map(|s| s.to_string())
        .collect()
}

/// A small random bundle that passes validation, exercising every rule decided per request.
pub fn random_bundle(seed: u64) -> Bundle {
    let rng = &mut rng_for(seed);
    let settings = Settings {
        idle_timeout: maybe(rng, 0.4, |_| Seconds(15 * 60)),
        max_session_age: maybe(rng, 0.4, |_| Seconds(3 * HOUR)),
        elevation_max_age: maybe(rng, 0.5, |_| Seconds(HOUR)),
        dormant_after: maybe(rng, 0.5, |_| Seconds(90 * DAY)),
        customer_dormant_after: maybe(rng, 0.3, |_| Seconds(30 * DAY)),
        unused_access_lapse: maybe(rng, 0.5, |_| Seconds(30 * DAY)),
        sms_acceptable: rng.random_bool(0.5),
        ..Settings::default()
    };
    let mut resource_types = Vec::new();
    for (i, name) in ["record", "study", "leaflet"].iter().enumerate() {
        let all_actions = ["read", "write", "delete", "export"];
        let actions: Vec<String> = all_actions
            .iter()
            .take(rng.random_range(2..=4))
            .map(|a| a.to_string())
            .collect();
        let classification = *pick(
            rng,
            &[
                Classification::Sensitive,
                Classification::Internal,
                Classification::Public,
            ],
        )
        .unwrap_or(&Classification::Internal);
        let public_actions = if classification == Classification::Public && rng.random_bool(0.7) {
            vec!["read".to_owned()]
        } else {
            Vec::new()
        };
        let action_names: Vec<&str> = actions.iter().map(String::as_str).collect();
        let critical = rng.random_bool(0.15);
        let critical_actions = if !critical && rng.random_bool(0.3) {
            subset(rng, &action_names, 0.5)
        } else {
            Vec::new()
        };
        let privileged_actions = if rng.random_bool(0.2) {
            subset(rng, &action_names, 0.4)
        } else {
            Vec::new()
        };
        resource_types.push(ResourceType {
            name: name.to_string(),
            actions,
            classification,
            critical,
            critical_actions,
            privileged_actions,
            networks: if rng.random_bool(0.25) {
                subset(rng, NETWORKS.get(..2).unwrap_or(NETWORKS), 0.7)
            } else {
                Vec::new()
            },
            public_actions,
            tenant_column: "tenant_id".to_owned(),
            id_column: if i == 0 { "id".to_owned() } else { "uid".to_owned() },
            owner_attribute: pick(rng, OWNER_ATTRIBUTES).copied().unwrap_or("owner").to_owned(),
            owner_column: None,
        });
    }
    let mut roles = Vec::new();
    for i in 0..rng.random_range(2..=6) {
        let mut permissions = BTreeMap::new();
        for t in &resource_types {
            if rng.random_bool(0.6) {
                let acts: Vec<String> = t.actions.iter().filter(|_| rng.random_bool(0.6)).cloned().collect();
                if !acts.is_empty() {
                    permissions.insert(t.name.clone(), acts);
                }
            }
        }
        let granted: Vec<String> = permissions.values().flatten().cloned().collect();
        let dual_control = if rng.random_bool(0.35) {
            granted.iter().take(1).cloned().collect()
        } else {
            Vec::new()
        };
        roles.push(Role {
            name: format!("role{i}"),
            permissions,
            privileged: rng.random_bool(0.2),
            requires_mfa: rng.random_bool(0.25),
            temporary_only: rng.random_bool(0.15),
            max_ttl: None,
            approvals_required: Some(if rng.random_bool(0.2) { 1 } else { 0 }),
            dual_control,
            break_glass: rng.random_bool(0.12),
            impersonation: rng.random_bool(0.15),
        });
    }
    let count = rng.random_range(3..=PRINCIPALS.len());
    let principals: Vec<Principal> = PRINCIPALS
        .get(..count)
        .unwrap_or(PRINCIPALS)
        .iter()
        .map(|id| Principal {
            id: id.to_string(),
            kind: PrincipalKind::Human,
            status: if rng.random_bool(0.85) {
                AccountStatus::Active
            } else {
                *pick(
                    rng,
                    &[
                        AccountStatus::Disabled,
                        AccountStatus::Locked,
                        AccountStatus::Terminated,
                    ],
                )
                .unwrap_or(&AccountStatus::Locked)
            },
            tenant: pick(rng, TENANTS)
                .filter(|_| rng.random_bool(0.6))
                .map(|t| t.to_string()),
            customer: rng.random_bool(0.3),
            last_activity: maybe(rng, 0.7, |r| Timestamp(BASE_TIME.0 - r.random_range(0..100) * DAY)),
            shared: rng.random_bool(0.1),
            ..Principal::default()
        })
        .collect();
    let ids: Vec<&str> = principals.iter().map(|p| p.id.as_str()).collect();
    let groups: Vec<Group> = (0..rng.random_range(0..=2))
        .map(|i| Group {
            name: format!("group{i}"),
            members: subset(rng, &ids, 0.4),
        })
        .collect();
    let mut grants = Vec::new();
    for i in 0..rng.random_range(2..=20) {
        let Some(role) = pick(rng, &roles) else { break };
        let on_group = !groups.is_empty() && rng.random_bool(0.25);
        let (principal, group, grantees): (Option<Box<str>>, Option<Name>, Vec<String>) = if on_group {
            let Some(g) = pick(rng, &groups).cloned() else { continue };
            (None, Some(g.name.as_str().into()), g.members.clone())
        } else {
            let p = pick(rng, &ids).copied().unwrap_or("ann");
            (Some(p.into()), None, vec![p.to_string()])
        };
        let typed: Vec<&String> = role.permissions.keys().collect();
        let scope = match rng.random_range(0..12) {
            0 => Scope::All,
            10 => Scope::Own { tenant: None },
            11 => Scope::Own {
                tenant: pick(rng, TENANTS).map(|t| (*t).into()),
            },
            1..=3 if !typed.is_empty() => {
                let t = pick(rng, &typed).map_or("record", |s| s.as_str());
                let pool: &[&str] = if t == "record" {
                    &["1", "2", "3", "40", "007"]
                } else {
                    &["s1", "s2", "S1", "s3"]
                };
                let mut chosen: Vec<Box<str>> = pool
                    .iter()
                    .filter(|_| rng.random_bool(0.4))
                    .map(|s| Box::from(*s))
                    .collect();
                if chosen.is_empty() {
                    chosen.extend(pool.first().map(|s| Box::from(*s)));
                }
                Scope::Resources {
                    resource_type: t.into(),
                    ids: chosen.into(),
                }
            }
            _ => Scope::Tenant(pick(rng, TENANTS).copied().unwrap_or("acme").into()),
        };
        let not_before = maybe(rng, 0.25, |r| Timestamp(BASE_TIME.0 - r.random_range(-2..=2) * HOUR));
        let mut expires = maybe(rng, if role.temporary_only { 1.0 } else { 0.25 }, |r| {
            Timestamp(BASE_TIME.0 + r.random_range(-2..=3) * HOUR)
        });
        if let (Some(nb), Some(ex)) = (not_before, expires)
            && nb >= ex
        {
            expires = Some(Timestamp(nb.0 + HOUR));
        }
        let approvers: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|p| !grantees.iter().any(|g| g == p))
            .collect();
        let needed = usize::from(role.approvals_required.unwrap_or(0));
        if approvers.len() < needed {
            continue;
        }
        let approvals = approvers
            .iter()
            .take(needed)
            .map(|by| Approval {
                by: (*by).into(),
                role: Some("manager".into()),
                at: None,
            })
            .collect();
        let non_standard = rng.random_bool(0.2);
        grants.push(
            Grant {
                id: if rng.random_bool(0.5) {
                    Some(format!("g{i}").into())
                } else {
                    None
                },
                principal,
                group,
                role: role.name.as_str().into(),
                scope,
                terms: None,
            }
            .with_terms(GrantTerms {
                not_before,
                expires,
                approvals,
                ticket: None,
                non_standard,
                last_used: if non_standard {
                    maybe(rng, 0.7, |r| Timestamp(BASE_TIME.0 - r.random_range(0..60) * DAY))
                } else {
                    None
                },
            }),
        );
    }
    let mut denies = Vec::new();
    for i in 0..rng.random_range(0..=2) {
        let t = pick(rng, &resource_types).map_or("record".to_owned(), |t| t.name.clone());
        let wildcard = rng.random_bool(0.2);
        let actions = if rng.random_bool(0.3) {
            vec![WILDCARD.to_owned()]
        } else {
            vec!["read".to_owned()]
        };
        let group_names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        denies.push(DenyRule {
            id: format!("deny{i}"),
            description: None,
            principals: subset(rng, &ids, 0.2),
            groups: subset(rng, &group_names, 0.2),
            resource_type: if wildcard { WILDCARD.to_owned() } else { t },
            actions,
            tenants: subset(rng, TENANTS, 0.2),
            resources: subset(rng, &["1", "s1", "2"], 0.2),
            when: if rng.random_bool(0.2) {
                ATTRS
                    .iter()
                    .take(1)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            } else {
                BTreeMap::new()
            },
        });
    }
    Bundle {
        settings,
        resource_types,
        roles,
        groups,
        principals,
        grants,
        denies,
        tests: Vec::new(),
    }
}

/// A random overlay for `bundle`: a revocation and some temporary grants, sometimes.
pub fn random_overlay(bundle: &Bundle, seed: u64) -> Overlay {
    let rng = &mut rng_for(seed);
    let mut overlay = Overlay::default();
    let ids: Vec<&str> = bundle.principals.iter().map(|p| p.id.as_str()).collect();
    if rng.random_bool(0.15)
        && let Some(p) = pick(rng, &ids)
    {
        overlay.revoked.insert(p.to_string());
    }
    // R7: logins the server observed, some recent and some long ago.
    for p in &ids {
        if rng.random_bool(0.2) {
            overlay
                .activity
                .observe(p, Timestamp(BASE_TIME.0 - rng.random_range(0..=200) * DAY));
        }
    }
    for i in 0..rng.random_range(0..=2) {
        let (Some(p), Some(role)) = (pick(rng, &ids), pick(rng, &bundle.roles)) else {
            break;
        };
        let scope = if rng.random_bool(0.2) {
            Scope::Own { tenant: None }
        } else if rng.random_bool(0.5) {
            Scope::Tenant(pick(rng, TENANTS).copied().unwrap_or("acme").into())
        } else {
            Scope::Resources {
                resource_type: "record".into(),
                ids: Box::new(["2".into(), "99".into(), "x9".into()]),
            }
        };
        overlay
            .temporary
            .entry(p.to_string())
            .or_default()
            .push(TemporaryGrant {
                id: format!("temp{i}"),
                principal: p.to_string(),
                role: role.name.clone(),
                scope,
                not_before: None,
                expires: Timestamp(BASE_TIME.0 + rng.random_range(-1..=2) * HOUR),
            });
    }
    overlay
}

/// A random request against `bundle`: mostly known names, sometimes unknown or mis-cased ones.
pub fn random_request(bundle: &Bundle, rng: &mut SmallRng) -> Request {
    let principal = match rng.random_range(0..20) {
        0 => String::new(),
        1 => "nobody".to_owned(),
        _ => pick(rng, &bundle.principals).map_or_else(String::new, |p| p.id.clone()),
    };
    let (resource_type, action) = match pick(rng, &bundle.resource_types) {
        Some(t) if rng.random_range(0..30) != 0 => {
            let action = if rng.random_range(0..30) == 0 {
                "fly".to_owned()
            } else {
                pick(rng, &t.actions).cloned().unwrap_or_default()
            };
            (t.name.clone(), action)
        }
        _ => ("spaceship".to_owned(), "read".to_owned()),
    };
    let mut resource = random_row(bundle, rng);
    resource.resource_type = resource_type;
    let role = |rng: &mut SmallRng| pick(rng, &bundle.roles).map(|r| r.name.clone());
    let other = |rng: &mut SmallRng| pick(rng, &bundle.principals).map(|p| p.id.clone());
    let mut factors = vec![Factor::Password];
    if rng.random_bool(0.5) {
        factors.push(*pick(rng, &[Factor::Totp, Factor::Sms, Factor::Passkey]).unwrap_or(&Factor::Totp));
    }
    let session = Session {
        authenticated_at: maybe(rng, 0.9, |r| Timestamp(BASE_TIME.0 - r.random_range(0..5) * HOUR)),
        last_activity: maybe(rng, 0.95, |r| Timestamp(BASE_TIME.0 - r.random_range(0..20) * 60)),
        factors,
        elevated_role: if rng.random_bool(0.3) { role(rng) } else { None },
        elevated_at: maybe(rng, 0.5, |r| Timestamp(BASE_TIME.0 - r.random_range(0..3) * HOUR)),
        network: pick(rng, NETWORKS)
            .filter(|_| rng.random_bool(0.8))
            .map(|n| n.to_string()),
        co_signer: if rng.random_bool(0.5) { other(rng) } else { None },
        break_glass_reason: maybe(rng, 0.15, |r| {
            if r.random_bool(0.8) {
                "patient crashing".to_owned()
            } else {
                "  ".to_owned()
            }
        }),
        acting_as: if rng.random_bool(0.1) { other(rng) } else { None },
    };
    if rng.random_bool(0.3) {
        // Resources owned by whoever the request involves, so `own` scopes are exercised.
        let owner = [Some(&principal), session.acting_as.as_ref(), session.co_signer.as_ref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .choose(rng)
            .map_or_else(String::new, |o| (*o).clone());
        for attribute in OWNER_ATTRIBUTES {
            resource.attributes.insert((*attribute).to_owned(), owner.clone());
        }
    }
    Request {
        principal,
        action,
        resource,
        session,
        at: Some(Timestamp(BASE_TIME.0 + rng.random_range(-3..=3) * HOUR)),
    }
}

/// A random row (resource without a type): ids and tenants from the pools random bundles use.
pub fn random_row(bundle: &Bundle, rng: &mut SmallRng) -> Resource {
    let from_grant = pick(rng, &bundle.grants).map(|g| g.scope.clone());
    let id = match from_grant {
        Some(Scope::Resources { ids, .. }) if rng.random_bool(0.5) => {
            pick(rng, &ids).map_or_else(String::new, |s| s.to_string())
        }
        _ => pick(rng, &["1", "2", "3", "40", "007", "s1", "s2", "S1", "99", "x9"])
            .copied()
            .unwrap_or("1")
            .to_owned(),
    };
    let mut attributes = BTreeMap::new();
    if let Some((k, v)) = pick(rng, ATTRS).filter(|_| rng.random_bool(0.3)) {
        attributes.insert(k.to_string(), v.to_string());
    }
    for attribute in OWNER_ATTRIBUTES {
        if let Some(p) = pick(rng, &bundle.principals).filter(|_| rng.random_bool(0.4)) {
            attributes.insert((*attribute).to_owned(), p.id.clone());
        }
    }
    Resource {
        resource_type: String::new(),
        id,
        tenant: pick(rng, TENANTS)
            .filter(|_| rng.random_bool(0.85))
            .map(|t| t.to_string()),
        attributes,
    }
}

/// A seeded random-number generator for the functions above.
pub fn rng(seed: u64) -> SmallRng {
    rng_for(seed)
}

/// Shape of a large synthetic bundle.
#[derive(Debug, Clone, Copy)]
pub struct LargeShape {
    /// Principals (`u0`, `u1`, ...).
    pub principals: usize,
    /// Grants, spread over principals.
    pub grants: usize,
    /// Tenants (`t0`, `t1`, ...).
    pub tenants: usize,
    /// Resource ids granted to principal `u0` directly (for row-filter benchmarks).
    pub wide_resources: u32,
    /// Seed.
    pub seed: u64,
}

/// A large bundle in the shape of a multi-tenant clinical platform: each principal holds
/// tenant-scoped grants of a few roles; one in twenty grants names resource ids instead.
pub fn large_bundle(shape: LargeShape) -> Bundle {
    let rng = &mut rng_for(shape.seed);
    let types = [
        ("patient_record", true),
        ("appointment", false),
        ("invoice", false),
        ("study", true),
    ];
    let resource_types: Vec<ResourceType> = types
        .iter()
        .map(|(name, sensitive)| ResourceType {
            classification: if *sensitive {
                Classification::Sensitive
            } else {
                Classification::Internal
            },
            ..ResourceType::new(name, &["read", "write", "delete", "export"])
        })
        .collect();
    let role = |name: &str, perms: &[(&str, &[&str])], requires_mfa: bool| Role {
        name: name.to_owned(),
        permissions: perms
            .iter()
            .map(|(t, a)| (t.to_string(), a.iter().map(|x| x.to_string()).collect()))
            .collect(),
        requires_mfa,
        approvals_required: Some(0),
        ..Role::default()
    };
    let roles = vec![
        role(
            "clinician",
            &[
                ("patient_record", &["read", "write"]),
                ("appointment", &["read", "write"]),
            ],
            false,
        ),
        role(
            "nurse",
            &[("patient_record", &["read"]), ("appointment", &["read", "write"])],
            false,
        ),
        role("billing", &[("invoice", &["read", "write", "export"])], false),
        role("researcher", &[("study", &["read", "export"])], true),
        role("front_desk", &[("appointment", &["read", "write", "delete"])], false),
    ];
    let principals: Vec<Principal> = (0..shape.principals)
        .map(|i| Principal {
            id: format!("u{i}"),
            last_activity: Some(BASE_TIME),
            ..Principal::default()
        })
        .collect();
    let mut grants = Vec::with_capacity(shape.grants + 1);
    if shape.principals > 0 && shape.wide_resources > 0 {
        let ids = (0..shape.wide_resources).map(|i| i.to_string().into()).collect();
        let scope = Scope::Resources {
            resource_type: "patient_record".into(),
            ids,
        };
        grants.push(Grant {
            id: Some("wide".into()),
            ..Grant::to_principal("u0", "clinician", scope)
        });
    }
    for i in 0..shape.grants {
        let p = if shape.principals == 0 {
            break;
        } else {
            i % shape.principals
        };
        let Some(r) = pick(rng, &roles) else { break };
        let scope = if rng.random_range(0..20) == 0 {
            let t = r.permissions.keys().next().map_or("appointment", String::as_str);
            Scope::Resources {
                resource_type: t.into(),
                ids: (0..3)
                    .map(|_| rng.random_range(0..1_000_000u32).to_string().into())
                    .collect(),
            }
        } else {
            Scope::Tenant(format!("t{}", rng.random_range(0..shape.tenants.max(1))).into())
        };
        grants.push(Grant::to_principal(&format!("u{p}"), &r.name, scope));
    }
    let denies = vec![DenyRule {
        id: "no-export-of-records".to_owned(),
        description: Some("patient records never leave the platform in bulk".to_owned()),
        resource_type: "patient_record".to_owned(),
        actions: vec!["export".to_owned()],
        ..DenyRule::default()
    }];
    Bundle {
        settings: Settings {
            idle_timeout: Some(Seconds(15 * 60)),
            dormant_after: Some(Seconds(90 * DAY)),
            ..Settings::default()
        },
        resource_types,
        roles,
        groups: Vec::new(),
        principals,
        grants,
        denies,
        tests: Vec::new(),
    }
}
