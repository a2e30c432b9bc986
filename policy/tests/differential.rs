//! The compiled evaluator against the reference, on random bundles, overlays and requests;
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
//! and row filters against `check` row by row.

use portcullis_policy::selfcheck::same;
use portcullis_policy::synth::{random_bundle, random_overlay, random_request, random_row, rng};
use portcullis_policy::{CompileOptions, compile_with, reference, validate};
use proptest::prelude::*;

const BUNDLES: u32 = 256;
const REQUESTS_PER_BUNDLE: usize = 48;
const FILTERS_PER_BUNDLE: usize = 8;
const ROWS_PER_FILTER: usize = 24;

fn no_self_check() -> CompileOptions {
    CompileOptions {
        self_check_samples: Some(0),
        ..CompileOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(BUNDLES))]

    /// 256 bundles x 48 requests = 12,288 decisions compared per run (issue: >= 10,000 over >= 200).
    #[test]
    fn compiled_agrees_with_reference(seed in any::<u64>()) {
        let bundle = random_bundle(seed);
        prop_assert!(validate(&bundle).is_ok(), "generator made an invalid bundle: {:?}", validate(&bundle));
        let snapshot = compile_with(&bundle, 3, no_self_check()).unwrap();
        let overlay = random_overlay(&bundle, seed ^ 0xa5a5);
        let mut rng = rng(seed);
        for _ in 0..REQUESTS_PER_BUNDLE {
            let req = random_request(&bundle, &mut rng);
            let compiled = snapshot.check(&req, &overlay);
            let expected = reference::check(&bundle, &overlay, &req, 3);
            prop_assert!(same(&compiled, &expected),
                "compiled {:?} vs reference {:?}\nrequest: {}\nbundle: {}\noverlay: {:?}",
                compiled, expected, serde_json::to_string(&req).unwrap(), serde_yaml::to_string(&bundle).unwrap(), overlay);
        }
    }

    /// `check_each` (one principal and session, many resources and actions) decides each
    /// item as the reference decides the single request.
    #[test]
    fn check_each_agrees_with_reference(seed in any::<u64>()) {
        let bundle = random_bundle(seed);
        let snapshot = compile_with(&bundle, 3, no_self_check()).unwrap();
        let overlay = random_overlay(&bundle, seed ^ 0x3c3c);
        let mut rng = rng(seed.wrapping_add(2));
        let mut base = random_request(&bundle, &mut rng);
        let items: Vec<_> = (0..REQUESTS_PER_BUNDLE / 4)
            .map(|_| {
                let other = random_request(&bundle, &mut rng);
                let again = random_request(&bundle, &mut rng);
                (other.resource, vec![other.action, again.action])
            })
            .collect();
        let mut decided = 0;
        snapshot.check_each(&mut base.clone(), items.clone(), &overlay, |req, compiled| {
            let (resource, actions) = &items[decided / 2];
            assert_eq!((&req.resource, &req.action), (resource, &actions[decided % 2]));
            base.resource = resource.clone();
            base.action = actions[decided % 2].clone();
            let expected = reference::check(&bundle, &overlay, &base, 3);
            assert!(same(&compiled, &expected), "check_each {compiled:?} vs reference {expected:?}\nrequest: {}",
                serde_json::to_string(&base).unwrap());
            decided += 1;
        });
        prop_assert_eq!(decided, items.len() * 2);
    }

    /// A row passes `filter_rows` exactly when `check` allows it (R17).
    #[test]
    fn filter_rows_equals_check(seed in any::<u64>()) {
        let bundle = random_bundle(seed);
        let snapshot = compile_with(&bundle, 3, no_self_check()).unwrap();
        let overlay = random_overlay(&bundle, seed ^ 0x5a5a);
        let mut rng = rng(seed.wrapping_add(1));
        for _ in 0..FILTERS_PER_BUNDLE {
            let template = random_request(&bundle, &mut rng);
            let now = template.at.unwrap();
            let filter = snapshot.filter_rows(&template.principal, &template.action, &template.resource.resource_type, &template.session, now, &overlay);
            let sql = filter.to_sql(&snapshot);
            prop_assert!(sql.is_some());
            for _ in 0..ROWS_PER_FILTER {
                let mut req = template.clone();
                let mut row = random_row(&bundle, &mut rng);
                row.resource_type = template.resource.resource_type.clone();
                req.resource = row.clone();
                let decision = snapshot.check(&req, &overlay);
                prop_assert_eq!(filter.allows(&snapshot, &row), decision.is_allowed(),
                    "row {:?} filter {:?} decision {:?}\nrequest {}\nbundle {}", row, filter, decision,
                    serde_json::to_string(&req).unwrap(), serde_yaml::to_string(&bundle).unwrap());
            }
        }
    }
}
