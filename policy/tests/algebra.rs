//! Properties every policy must have, on random bundles: default deny (R1), explicit deny
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
//! wins (R14), grant order does not matter, and adding a grant never takes access away.

use portcullis_policy::bundle::{DenyRule, WILDCARD};
use portcullis_policy::synth::{random_bundle, random_overlay, random_request, rng};
use portcullis_policy::{Bundle, CompileOptions, Reason, Snapshot, compile_with};
use proptest::prelude::*;

const REQUESTS: usize = 32;

fn build(bundle: &Bundle) -> Snapshot {
    compile_with(
        bundle,
        1,
        CompileOptions {
            self_check_samples: Some(0),
            ..CompileOptions::default()
        },
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn without_grants_only_public_actions_allow(seed in any::<u64>()) {
        let mut bundle = random_bundle(seed);
        bundle.grants.clear();
        let snapshot = build(&bundle);
        let mut r = rng(seed);
        for _ in 0..REQUESTS {
            let d = snapshot.check(&random_request(&bundle, &mut r), &Default::default());
            prop_assert!(!d.is_allowed() || d.reason == Reason::PublicResource, "{d:?}");
        }
    }

    #[test]
    fn an_explicit_deny_beats_every_grant(seed in any::<u64>()) {
        let mut bundle = random_bundle(seed);
        bundle.denies.push(DenyRule {
            id: "everything".to_owned(),
            resource_type: WILDCARD.to_owned(),
            actions: vec![WILDCARD.to_owned()],
            ..DenyRule::default()
        });
        let snapshot = build(&bundle);
        let overlay = random_overlay(&bundle, seed);
        let mut r = rng(seed);
        for _ in 0..REQUESTS {
            let d = snapshot.check(&random_request(&bundle, &mut r), &overlay);
            prop_assert!(!d.is_allowed(), "{d:?}");
        }
    }

    #[test]
    fn grant_order_does_not_matter(seed in any::<u64>()) {
        let bundle = random_bundle(seed);
        let mut reversed = bundle.clone();
        reversed.grants.reverse();
        let (a, b) = (build(&bundle), build(&reversed));
        let mut r = rng(seed);
        for _ in 0..REQUESTS {
            let req = random_request(&bundle, &mut r);
            let (x, y) = (a.check(&req, &Default::default()), b.check(&req, &Default::default()));
            prop_assert_eq!((x.effect, x.reason), (y.effect, y.reason));
        }
    }

    #[test]
    fn adding_a_grant_never_turns_allow_into_deny(seed in any::<u64>(), drop in any::<prop::sample::Index>()) {
        let bundle = random_bundle(seed);
        prop_assume!(!bundle.grants.is_empty());
        let mut fewer = bundle.clone();
        fewer.grants.remove(drop.index(bundle.grants.len()));
        let (more, less) = (build(&bundle), build(&fewer));
        let overlay = random_overlay(&bundle, seed);
        let mut r = rng(seed);
        for _ in 0..REQUESTS {
            let req = random_request(&bundle, &mut r);
            if less.check(&req, &overlay).is_allowed() {
                prop_assert!(more.check(&req, &overlay).is_allowed());
            }
        }
    }
}
