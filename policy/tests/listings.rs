//! Listings equal checks (A2): for random bundles, overlays, times and resources, the
//! principals a usable-only `list_subjects` returns are exactly those a check allows with
//! a session meeting the listed needs, and every principal some session lets in is listed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use portcullis_policy::synth::{BASE_TIME, random_bundle, random_overlay, random_row, rng};
use portcullis_policy::{
    AccessPath, Bundle, CompileOptions, Factor, Listing, Need, Overlay, Request, Resource, Session, Snapshot, Target,
    Timestamp, compile_with,
};
use proptest::prelude::*;
use rand::Rng;
use std::collections::BTreeSet;

const BUNDLES: u32 = 64;
const RESOURCES_PER_BUNDLE: usize = 4;

/// A session that is fresh at `at` and brings what `needs` asks for, with `co_signer`.
fn session_for(needs: &[Need], at: Timestamp, co_signer: Option<&str>) -> Session {
    let mut s = Session {
        authenticated_at: Some(Timestamp(at.0 - 60)),
        last_activity: Some(Timestamp(at.0 - 10)),
        factors: vec![Factor::Password],
        co_signer: co_signer.map(str::to_owned),
        ..Session::default()
    };
    for need in needs {
        match need {
            Need::Mfa => s.factors.push(Factor::Totp),
            Need::Elevation(role) => {
                s.elevated_role = Some(role.clone());
                s.elevated_at = Some(at);
            }
            Need::BreakGlassReason => s.break_glass_reason = Some("patient crashing".into()),
            Need::Network(networks) => s.network = networks.first().cloned(),
            Need::CoSigner => {}
        }
    }
    s
}

fn allows(
    snapshot: &Snapshot,
    overlay: &Overlay,
    principal: &str,
    action: &str,
    resource: &Resource,
    session: Session,
    at: Timestamp,
) -> bool {
    let req = Request {
        principal: principal.to_owned(),
        action: action.to_owned(),
        resource: resource.clone(),
        session,
        at: Some(at),
    };
    snapshot.check(&req, overlay).is_allowed()
}

/// Whether the listed path's needs, met by a session (and some co-signer when one is
/// needed), let its principal in.
fn path_lets_in(
    snapshot: &Snapshot,
    overlay: &Overlay,
    bundle: &Bundle,
    path: &AccessPath,
    action: &str,
    resource: &Resource,
    at: Timestamp,
) -> bool {
    let needs_co_signer = path.needs.contains(&Need::CoSigner);
    let co_signers: Vec<Option<&str>> = if needs_co_signer {
        bundle.principals.iter().map(|p| Some(p.id.as_str())).collect()
    } else {
        vec![None]
    };
    co_signers.into_iter().any(|c| {
        allows(
            snapshot,
            overlay,
            &path.principal,
            action,
            resource,
            session_for(&path.needs, at, c),
            at,
        )
    })
}

/// Whether any session at all lets `principal` in: MFA, the type's network, an emergency
/// reason, elevation into any role (or none) and any co-signer (or none).
fn some_session_lets_in(
    snapshot: &Snapshot,
    overlay: &Overlay,
    bundle: &Bundle,
    principal: &str,
    action: &str,
    resource: &Resource,
    at: Timestamp,
) -> bool {
    let network = bundle
        .resource_types
        .iter()
        .find(|t| t.name == resource.resource_type)
        .and_then(|t| t.networks.first().cloned());
    let mut base = vec![Need::Mfa, Need::BreakGlassReason];
    base.extend(network.map(|n| Need::Network(vec![n])));
    let roles = std::iter::once(None).chain(bundle.roles.iter().map(|r| Some(r.name.clone())));
    roles.into_iter().any(|role| {
        let mut needs = base.clone();
        needs.extend(role.map(Need::Elevation));
        std::iter::once(None)
            .chain(bundle.principals.iter().map(|p| Some(p.id.as_str())))
            .any(|c| {
                allows(
                    snapshot,
                    overlay,
                    principal,
                    action,
                    resource,
                    session_for(&needs, at, c),
                    at,
                )
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(BUNDLES))]

    #[test]
    fn usable_listings_are_exactly_who_checks_allow(seed in any::<u64>()) {
        let bundle = random_bundle(seed);
        let options = CompileOptions { self_check_samples: Some(0), ..CompileOptions::default() };
        let snapshot = compile_with(&bundle, 1, options).unwrap();
        let overlay = random_overlay(&bundle, seed ^ 0x1157);
        let mut rng = rng(seed ^ 0x7e57);
        for _ in 0..RESOURCES_PER_BUNDLE {
            let at = Timestamp(BASE_TIME.0 + rng.random_range(-3..=3) * 3_600);
            let ti = rng.random_range(0..bundle.resource_types.len());
            let rtype = &bundle.resource_types[ti];
            let mut resource = random_row(&bundle, &mut rng);
            resource.resource_type = rtype.name.clone();
            // The listing is asked with the owner only: the check sees the same resource.
            let owner = resource.attributes.get(&rtype.owner_attribute).cloned();
            resource.attributes.clear();
            if let Some(o) = &owner {
                resource.attributes.insert(rtype.owner_attribute.clone(), o.clone());
            }
            for action in rtype.actions.iter().filter(|a| !rtype.public_actions.contains(a)) {
                let target = Target::Resource { id: &resource.id, tenant: resource.tenant.as_deref(), owner: owner.as_deref() };
                let listing = Listing { at, overlay: &overlay, usable_only: true };
                let paths = snapshot.list_subjects(action, &rtype.name, target, &listing);
                let listed: BTreeSet<&str> = paths.iter().map(|p| p.principal.as_str()).collect();
                for path in &paths {
                    prop_assert!(path.blocked.is_none());
                    prop_assert!(path_lets_in(&snapshot, &overlay, &bundle, path, action, &resource, at),
                        "listed but denied: {path:?}\naction {action} resource {resource:?} at {at}\nbundle {}", serde_yaml::to_string(&bundle).unwrap());
                }
                for p in &bundle.principals {
                    if !listed.contains(p.id.as_str()) {
                        prop_assert!(!some_session_lets_in(&snapshot, &overlay, &bundle, &p.id, action, &resource, at),
                            "{} is let in but not listed\naction {action} resource {resource:?} at {at}\nlisting {paths:?}\nbundle {}", p.id, serde_yaml::to_string(&bundle).unwrap());
                    }
                }
            }
        }
    }
}
