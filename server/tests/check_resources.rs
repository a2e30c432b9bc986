//! CheckResources on a real server: for random principals, sessions and resources, every
//! compact decision equals the Check of the single request; its one `decisions` audit
//! record, flattened, equals the records those Checks write; malformed calls are refused
//! naming the item.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use common::*;
use portcullis_policy::synth::{random_request, rng};
use portcullis_policy::{Format, Request, parse_bundle};
use portcullis_proto::v1 as pb;
use rand::Rng;
use serde_json::Value;

/// A compact decision spelled out as Check spells it: (effect, reason, rule, break glass,
/// impersonated, not found).
fn spelled(d: &pb::CompactDecision, rules: &[String]) -> (i32, String, String, bool, bool, bool) {
    let code = pb::ReasonCode::try_from(d.reason).unwrap();
    let reason = code.as_str_name().strip_prefix("REASON_CODE_").unwrap().to_lowercase();
    let rule = match d.rule {
        0 => String::new(),
        n => rules[n as usize - 1].clone(),
    };
    (d.effect, reason, rule, d.break_glass, d.impersonated, d.not_found)
}

fn of_check(d: &pb::Decision) -> (i32, String, String, bool, bool, bool) {
    (
        d.effect,
        d.reason.clone(),
        d.rule.clone(),
        d.break_glass,
        d.impersonated,
        d.not_found,
    )
}

/// A random principal and session (fresh, with MFA, two times in three, so grants are
/// reached), and items of random resources with one to three random actions.
fn random_call(
    bundle: &portcullis_policy::Bundle,
    seed: u64,
) -> (Request, Vec<(portcullis_policy::Resource, Vec<String>)>) {
    let mut rng = rng(seed);
    let mut base = random_request(bundle, &mut rng);
    if seed % 3 != 0 {
        freshen(&mut base);
    }
    let items = (0..rng.random_range(1..12))
        .map(|_| {
            let r = random_request(bundle, &mut rng);
            let actions = (0..rng.random_range(1..4))
                .map(|_| random_request(bundle, &mut rng).action)
                .collect();
            (r.resource, actions)
        })
        .collect();
    (base, items)
}

fn wire_items(items: &[(portcullis_policy::Resource, Vec<String>)]) -> Vec<pb::ResourceActions> {
    items
        .iter()
        .map(|(r, actions)| pb::ResourceActions {
            resource: Some(wire_resource(r)),
            actions: actions.clone(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_equals_the_check_of_its_single_request() {
    let dir = temp_dir("check-resources-random");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| c.audit = None).await;
    let bundle = parse_bundle(&example("clinic-portal"), Format::Yaml).unwrap();
    let mut authz = server.authz().await;
    let (mut compared, mut allowed, mut refused) = (0, 0, 0);
    for seed in 0..150u64 {
        let (base, items) = random_call(&bundle, seed);
        let hide = seed % 2 == 0;
        let wire = wire_request(&base);
        let answer = authz
            .check_resources(admin(pb::CheckResourcesRequest {
                principal: base.principal.clone(),
                session: wire.session.clone(),
                at: wire.at,
                items: wire_items(&items),
                hide_forbidden: hide,
                ..Default::default()
            }))
            .await;
        let mut singles = Vec::new();
        for (resource, actions) in &items {
            for action in actions {
                let mut r = base.clone();
                r.resource = resource.clone();
                r.action = action.clone();
                let mut w = wire_request(&r);
                w.hide_forbidden = hide;
                singles.push(authz.check(admin(w)).await.map(|r| r.into_inner().decision.unwrap()));
            }
        }
        match answer {
            Ok(resp) => {
                let resp = resp.into_inner();
                assert_eq!(resp.decisions.len(), singles.len(), "one decision per (item, action)");
                for (i, (got, single)) in resp.decisions.iter().zip(&singles).enumerate() {
                    let single = single.as_ref().unwrap();
                    assert_eq!(
                        spelled(got, &resp.rules),
                        of_check(single),
                        "seed {seed}, decision {i}: {}",
                        serde_json::to_string(&base).unwrap()
                    );
                    assert_eq!(resp.version, single.version);
                    allowed += usize::from(is_allow(single));
                    compared += 1;
                }
                let mut unique = resp.rules.clone();
                unique.sort();
                unique.dedup();
                assert_eq!(unique.len(), resp.rules.len(), "each rule named once");
            }
            Err(s) => {
                // The call's principal and session are refused as each single request is.
                let single = singles.first().unwrap().as_ref().unwrap_err();
                assert_eq!((s.code(), s.message()), (single.code(), single.message()));
                refused += 1;
            }
        }
    }
    assert!(
        compared >= 500 && allowed >= 30 && refused <= 75,
        "{compared} compared, {allowed} allowed, {refused} calls refused"
    );
    server.stop().await.unwrap();
}

/// Audit records without what differs between two calls (ids, times, chain, peer port).
fn stable(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            for volatile in ["id", "time", "seq", "prev", "hash", "client", "trace_id"] {
                r.as_object_mut().unwrap().remove(volatile);
            }
            r
        })
        .collect()
}

#[tokio::test]
async fn audit_records_equal_those_of_the_single_checks() {
    let dir = temp_dir("check-resources-audit");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut c = server.authz().await;
    let ann = ann_reads();
    // Sensitive and allowed, not sensitive and allowed, denied: A1 wants the first and last.
    let items = vec![
        pb::ResourceActions {
            resource: ann.resource.clone(),
            actions: vec!["read".into(), "delete".into()],
        },
        pb::ResourceActions {
            resource: Some(pb::Resource {
                r#type: "appointment".into(),
                id: "a-1".into(),
                tenant: Some("clinic-north".into()),
                ..Default::default()
            }),
            actions: vec!["read".into()],
        },
        pb::ResourceActions {
            resource: Some(pb::Resource {
                r#type: "patient_record".into(),
                id: "p-2".into(),
                tenant: Some("clinic-south".into()),
                ..Default::default()
            }),
            actions: vec!["read".into()],
        },
    ];
    for item in &items {
        for action in &item.actions {
            let mut single = ann.clone();
            single.resource = item.resource.clone();
            single.action = action.clone();
            c.check(single).await.unwrap();
        }
    }
    let resp = c
        .check_resources(pb::CheckResourcesRequest {
            principal: ann.principal.clone(),
            session: ann.session.clone(),
            at: ann.at,
            items,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.decisions.len(), 4);
    server.stop().await.unwrap();

    let all = audit_records(&dir.join("audit"));
    let (group, singles) = all.split_last().unwrap();
    assert!(singles.len() >= 2, "{all:#?}");
    assert!(singles.iter().all(|r| r["kind"] == "decision"), "{all:#?}");
    // One call, one record: its decisions in the call's order, one trace.
    assert_eq!(group["kind"], "decisions", "{group:#}");
    assert_eq!(group["outcome"], "mixed", "{group:#}");
    // What every decision shares is said once, not in each row.
    assert_eq!(group["same"]["severity"], "info", "{group:#}");
    assert!(
        !group["columns"].as_array().unwrap().contains(&"severity".into()),
        "{group:#}"
    );
    let flat = portcullis_server::audit::flatten(group.clone());
    assert_eq!(stable(singles), stable(&flat));
    assert!(flat.iter().all(|r| r["trace_id"] == group["trace_id"]), "{flat:#?}");
    assert_eq!(
        portcullis_server::audit::verify(&dir.join("audit")).unwrap(),
        Ok(all.len() as u64)
    );
    // `audit export` writes the same, one decision per line.
    let mut exported = Vec::new();
    let lines = portcullis_server::audit::export(&dir.join("audit"), &mut exported).unwrap();
    let exported: Vec<Value> = String::from_utf8(exported)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines as usize, singles.len() * 2);
    assert_eq!(exported, [singles, &flat[..]].concat());
}

#[tokio::test]
async fn malformed_calls_are_refused_naming_the_item() {
    let dir = temp_dir("check-resources-limits");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| c.limits.max_batch = 4).await;
    let mut c = server.authz().await;
    let ann = ann_reads();
    let item = |actions: &[&str]| pb::ResourceActions {
        resource: ann.resource.clone(),
        actions: actions.iter().map(|a| (*a).to_owned()).collect(),
    };
    let call = |items| pb::CheckResourcesRequest {
        principal: ann.principal.clone(),
        session: ann.session.clone(),
        at: ann.at,
        items,
        ..Default::default()
    };
    // The limit counts decisions: 2 items of 2 actions fit, a third action does not.
    let ok = c
        .check_resources(call(vec![item(&["read", "update"]), item(&["read", "delete"])]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.decisions.len(), 4);
    let refusals = [
        (
            call(vec![item(&["read", "update"]), item(&["read", "delete", "read"])]),
            "batch of 5 decisions exceeds the limit of 4",
        ),
        (
            call(vec![item(&["read"]), item(&[])]),
            "items[1]: give at least one action",
        ),
        (
            call(vec![
                item(&["read"]),
                pb::ResourceActions {
                    resource: None,
                    actions: vec!["read".into()],
                },
            ]),
            "items[1]: `resource` is required",
        ),
    ];
    for (request, message) in refusals {
        let err = c.check_resources(request).await.unwrap_err();
        assert_eq!((err.code(), err.message()), (tonic::Code::InvalidArgument, message));
    }
    // No items: no decisions, still the version that would have decided.
    let empty = c.check_resources(call(vec![])).await.unwrap().into_inner();
    assert_eq!((empty.decisions.len(), empty.version), (0, 1));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_asks_the_bundle_or_the_server_alike() {
    let dir = temp_dir("check-resources-cli");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let at = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(AT as u64))
        .to_string();
    let run = move |target: &[&str]| {
        let mut args = vec!["check", "--principal", "dr-ann", "--action", "read,write,delete"];
        args.extend([
            "--type",
            "patient_record",
            "--tenant",
            "clinic-north",
            "--ids",
            "p-1,p-2",
        ]);
        args.extend(["--fresh", "--factor", "password", "--at", at.as_str()]);
        args.extend(target);
        std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(&args)
            .output()
            .unwrap()
    };
    let url = server.url();
    let bundle = example_path("clinic-portal");
    let local = run(&["--bundle", bundle.to_str().unwrap()]);
    let remote = tokio::task::spawn_blocking(move || run(&["--server", url.as_str(), "--token", ADMIN_TOKEN]))
        .await
        .unwrap();
    let text = String::from_utf8(local.stdout).unwrap();
    assert_eq!(text, String::from_utf8_lossy(&remote.stdout), "{remote:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[0].starts_with("p-1 read ALLOW granted (R2)"), "{text}");
    assert!(lines[2].starts_with("p-1 delete DENY unknown_action (R1)"), "{text}");
    // Some denied: exit code 1, as for a single check.
    assert_eq!((local.status.code(), remote.status.code()), (Some(1), Some(1)));
    server.stop().await.unwrap();
}
