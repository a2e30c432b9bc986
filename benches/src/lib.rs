//! Workloads shared by the Portcullis benchmarks: bundles at several scales and request
//! sets drawn from them.

use portcullis_policy::synth::{BASE_TIME, LargeShape, large_bundle};
use portcullis_policy::{Bundle, Factor, Format, Request, Resource, Scope, Session, Timestamp, parse_bundle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A bundle to benchmark against, with a short name for reports.
#[derive(Debug)]
pub struct Workload {
    /// `example`, `1k`, `1m`, ...
    pub name: String,
    /// The bundle.
    pub bundle: Bundle,
    /// The time requests are decided at (the example's accounts are active in late 2026).
    pub at: Timestamp,
}

/// The clinic-portal example bundle, embedded.
pub fn example() -> Workload {
    let bytes = include_bytes!("../../examples/clinic-portal.yaml");
    let bundle = parse_bundle(bytes, Format::Yaml).unwrap_or_default();
    Workload {
        name: "example".to_owned(),
        bundle,
        at: Timestamp(1_795_428_000),
    }
}

/// A generated bundle: `principals` principals with ten grants each over 10,000 tenants,
/// plus one grant of 100,000 record ids to `u0` for row-filter benchmarks.
pub fn generated(name: &str, principals: usize) -> Workload {
    let bundle = large_bundle(LargeShape {
        principals,
        grants: principals * 10,
        tenants: 10_000,
        wide_resources: 100_000,
        seed: 7,
    });
    Workload {
        name: name.to_owned(),
        bundle,
        at: BASE_TIME,
    }
}

/// The scales named by `PORTCULLIS_BENCH_SCALES` (default `example,1k,1m`).
pub fn scales() -> Vec<Workload> {
    let spec = std::env::var("PORTCULLIS_BENCH_SCALES").unwrap_or_else(|_| "example,1k,1m".to_owned());
    spec.split(',')
        .filter_map(|s| match s.trim() {
            "example" => Some(example()),
            "1k" => Some(generated("1k", 1_000)),
            "100k" => Some(generated("100k", 100_000)),
            "1m" => Some(generated("1m", 1_000_000)),
            _ => None,
        })
        .collect()
}

/// A session that passes idle, age and MFA checks at `at`.
pub fn good_session(at: Timestamp) -> Session {
    Session {
        authenticated_at: Some(at),
        last_activity: Some(at),
        factors: vec![Factor::Password, Factor::Totp],
        ..Session::default()
    }
}

/// `count` requests at `at` built from random tenant-scoped grants: on the grant's tenant
/// when `allow`, and on a tenant no one has a grant on otherwise.
pub fn requests(bundle: &Bundle, at: Timestamp, count: usize, allow: bool, seed: u64) -> Vec<Request> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(count);
    let mut attempts = 0;
    while out.len() < count && attempts < count * 100 && !bundle.grants.is_empty() {
        attempts += 1;
        let Some(g) = bundle.grants.get(rng.random_range(0..bundle.grants.len())) else {
            continue;
        };
        let (Some(principal), Scope::Tenant(tenant)) = (&g.principal, &g.scope) else {
            continue;
        };
        let Some(role) = bundle.roles.iter().find(|r| *r.name == *g.role) else {
            continue;
        };
        let Some((rtype, actions)) = role.permissions.iter().next() else {
            continue;
        };
        let Some(action) = actions.first() else { continue };
        out.push(Request {
            principal: principal.to_string(),
            action: action.clone(),
            resource: Resource {
                resource_type: rtype.clone(),
                id: rng.random_range(0..1_000_000u32).to_string(),
                tenant: Some(if allow {
                    tenant.to_string()
                } else {
                    "no-such-tenant".to_owned()
                }),
                ..Resource::default()
            },
            session: good_session(at),
            at: Some(at),
        });
    }
    out
}
