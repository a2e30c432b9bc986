//! Portcullis `check` beside cedar-policy's `is_authorized` and casbin's `enforce`, on the
//! same policy (RBAC scoped per tenant, an MFA condition, an explicit deny) and the same
//! requests, at 1,000 and 100,000 principals. Before timing, all three must agree on
//! every request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "bench code"
)]

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi, RbacApi};
use cedar_policy::{Authorizer, Context, Entities, Entity, EntityUid, PolicySet, RestrictedExpression};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_policy::bundle::{DenyRule, Grant, Principal, ResourceType, Role};
use portcullis_policy::{
    Bundle, CompileOptions, Factor, Overlay, Request, Resource, Scope, Session, Snapshot, compile_with,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::str::FromStr;

const ACTIONS: [&str; 3] = ["read", "write", "export"];

/// One request, as each engine wants it.
struct Case {
    portcullis: Request,
    cedar: cedar_policy::Request,
    casbin: (String, String, String, String),
}

/// Tenants of principal `i`: two per principal.
fn tenants_of(i: usize, tenants: usize) -> [String; 2] {
    [format!("t{}", i % tenants), format!("t{}", (i * 7 + 3) % tenants)]
}

fn bundle(principals: usize, tenants: usize) -> Bundle {
    let mut grants = Vec::new();
    for i in 0..principals {
        for t in tenants_of(i, tenants) {
            grants.push(Grant::to_principal(
                &format!("u{i}"),
                "clinician",
                Scope::Tenant(t.into()),
            ));
        }
    }
    Bundle {
        resource_types: vec![ResourceType::new("record", &ACTIONS)],
        roles: vec![Role {
            name: "clinician".into(),
            permissions: [("record".to_owned(), ACTIONS.iter().map(|a| a.to_string()).collect())].into(),
            requires_mfa: true,
            approvals_required: Some(0),
            ..Role::default()
        }],
        principals: (0..principals)
            .map(|i| Principal {
                id: format!("u{i}"),
                ..Principal::default()
            })
            .collect(),
        grants,
        denies: vec![DenyRule {
            id: "no-export".into(),
            resource_type: "record".into(),
            actions: vec!["export".into()],
            ..DenyRule::default()
        }],
        ..Bundle::default()
    }
}

const CEDAR_POLICIES: &str = r#"
permit(principal, action in [Action::"read", Action::"write", Action::"export"], resource)
when { principal.tenants.contains(resource.tenant) && context.mfa };
forbid(principal, action == Action::"export", resource);
"#;

const CASBIN_MODEL: &str = r#"
[request_definition]
r = sub, dom, act, mfa

[policy_definition]
p = sub, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = (p.sub == "*" && r.act == p.act) || (g(r.sub, p.sub, r.dom) && r.act == p.act && r.mfa == "yes")
"#;

fn uid(kind: &str, id: &str) -> EntityUid {
    EntityUid::from_str(&format!("{kind}::\"{id}\"")).unwrap()
}

struct Engines {
    snapshot: Snapshot,
    policies: PolicySet,
    entities: Entities,
    casbin: Enforcer,
    cases: Vec<Case>,
}

fn setup(principals: usize, runtime: &tokio::runtime::Runtime) -> Engines {
    let tenants = (principals / 10).max(10);
    let options = CompileOptions {
        self_check_samples: Some(16),
        ..CompileOptions::default()
    };
    let snapshot = compile_with(&bundle(principals, tenants), 1, options).unwrap();

    let mut rng = SmallRng::seed_from_u64(42);
    let mut cases = Vec::new();
    let mut records = Vec::new();
    for k in 0..1024 {
        let i = rng.random_range(0..principals);
        let own = tenants_of(i, tenants);
        let tenant = if rng.random_bool(0.7) {
            own[rng.random_range(0..2)].clone()
        } else {
            format!("t{}", rng.random_range(0..tenants))
        };
        let action = ACTIONS[if rng.random_bool(0.2) {
            2
        } else {
            rng.random_range(0..2)
        }];
        let mfa = rng.random_bool(0.8);
        let id = format!("r{k}");
        let mut factors = vec![Factor::Password];
        if mfa {
            factors.push(Factor::Totp);
        }
        let context = Context::from_pairs([("mfa".to_owned(), RestrictedExpression::new_bool(mfa))]).unwrap();
        records.push(
            Entity::new(
                uid("Record", &id),
                HashMap::from([("tenant".to_owned(), RestrictedExpression::new_string(tenant.clone()))]),
                HashSet::new(),
            )
            .unwrap(),
        );
        cases.push(Case {
            portcullis: Request {
                principal: format!("u{i}"),
                action: action.to_owned(),
                resource: Resource {
                    resource_type: "record".into(),
                    id: id.clone(),
                    tenant: Some(tenant.clone()),
                    ..Resource::default()
                },
                session: Session {
                    factors,
                    ..Session::default()
                },
                at: Some(portcullis_policy::synth::BASE_TIME),
            },
            cedar: cedar_policy::Request::new(
                uid("User", &format!("u{i}")),
                uid("Action", action),
                uid("Record", &id),
                context,
                None,
            )
            .unwrap(),
            casbin: (
                format!("u{i}"),
                tenant,
                action.to_owned(),
                if mfa { "yes" } else { "no" }.to_owned(),
            ),
        });
    }

    let users = (0..principals).map(|i| {
        let set =
            RestrictedExpression::new_set(tenants_of(i, tenants).into_iter().map(RestrictedExpression::new_string));
        Entity::new(
            uid("User", &format!("u{i}")),
            HashMap::from([("tenants".to_owned(), set)]),
            HashSet::new(),
        )
        .unwrap()
    });
    let entities = Entities::from_entities(users.chain(records), None).unwrap();
    let policies = PolicySet::from_str(CEDAR_POLICIES).unwrap();

    let casbin = runtime.block_on(async {
        let model = DefaultModel::from_str(CASBIN_MODEL).await.unwrap();
        let mut e = Enforcer::new(model, MemoryAdapter::default()).await.unwrap();
        let rules = ACTIONS
            .iter()
            .map(|a| vec!["clinician".to_owned(), a.to_string(), "allow".to_owned()]);
        let mut all: Vec<Vec<String>> = rules.collect();
        all.push(vec!["*".to_owned(), "export".to_owned(), "deny".to_owned()]);
        e.add_policies(all).await.unwrap();
        for i in 0..principals {
            for t in tenants_of(i, tenants) {
                e.add_role_for_user(&format!("u{i}"), "clinician", Some(&t))
                    .await
                    .unwrap();
            }
        }
        e
    });
    Engines {
        snapshot,
        policies,
        entities,
        casbin,
        cases,
    }
}

fn peers(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let authorizer = Authorizer::new();
    for principals in [1_000, 100_000] {
        let e = setup(principals, &runtime);
        let mut allowed = 0;
        for case in &e.cases {
            let p = e.snapshot.check(&case.portcullis, Overlay::empty()).is_allowed();
            let ce = authorizer
                .is_authorized(&case.cedar, &e.policies, &e.entities)
                .decision()
                == cedar_policy::Decision::Allow;
            let (s, d, a, m) = &case.casbin;
            let ca = e
                .casbin
                .enforce((s.as_str(), d.as_str(), a.as_str(), m.as_str()))
                .unwrap();
            assert_eq!((p, p), (ce, ca), "engines disagree on {:?}", case.casbin);
            allowed += usize::from(p);
        }
        assert!(
            allowed > 100 && allowed < 1000,
            "{allowed} of 1024 allowed: the request mix must exercise both outcomes"
        );

        let mut group = c.benchmark_group(format!("peers/{principals}"));
        let n = e.cases.len();
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter("portcullis"), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                black_box(e.snapshot.check(black_box(&e.cases[i].portcullis), Overlay::empty()))
            })
        });
        group.bench_function(BenchmarkId::from_parameter("cedar"), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                black_box(authorizer.is_authorized(black_box(&e.cases[i].cedar), &e.policies, &e.entities))
            })
        });
        group.bench_function(BenchmarkId::from_parameter("casbin"), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                let (s, d, a, m) = &e.cases[i].casbin;
                black_box(
                    e.casbin
                        .enforce((s.as_str(), d.as_str(), a.as_str(), m.as_str()))
                        .unwrap(),
                )
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = peers
}
criterion_main!(benches);
