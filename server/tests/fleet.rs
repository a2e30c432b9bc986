//! Fleet mode: replicas sharing one real PostgreSQL server. A push or a revocation made
//! through any replica is served by every replica (R6 "immediately"), compare-and-swap
//! has exactly one winner, and a replica cut off from the store never serves a stale allow.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use common::pg::Postgres;
use common::*;
use portcullis_proto::v1 as pb;
use std::time::{Duration, Instant};
use tonic::Code;

/// A replica of the fleet on `pg`, with its own data directory (audit trail, token).
async fn replica(pg: &Postgres, name: &str, seed: Option<&str>) -> TestServer {
    let url = pg.url();
    let id = name.to_owned();
    TestServer::start_with(&temp_dir(name), seed, move |cfg| {
        cfg.store = Some(url);
        cfg.replica_id = id;
        cfg.store_poll_interval = Duration::from_millis(500);
        cfg.store_max_staleness = Duration::from_secs(2);
        cfg.activity_sync_interval = Duration::from_millis(100);
    })
    .await
}

async fn fleet(pg: &Postgres, n: usize) -> Vec<TestServer> {
    let mut out = vec![replica(pg, "fleet-a", Some("clinic-portal")).await];
    for i in 1..n {
        out.push(replica(pg, &format!("fleet-{i}"), Some("clinic-portal")).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_on_one_replica_is_served_by_all_and_a_revocation_denies_everywhere() {
    let pg = Postgres::start();
    let fleet = fleet(&pg, 3).await;
    let mut a = fleet[0].admin().await;
    let pushed = a
        .push_snapshot(admin(push_request(clinic_without_ann())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pushed.version, 2, "the seed was version 1, pushed once by one replica");
    for r in &fleet[1..] {
        let mut c = r.authz().await;
        // Read-your-writes: the replica waits for version 2 rather than answer from 1.
        let mut req = ann_reads();
        req.min_version = pushed.version;
        let d = decide(&mut c, req).await;
        assert_eq!((d.version, d.reason.as_str()), (2, "no_matching_grant"));
    }

    a.rollback(admin(pb::RollbackRequest {
        version: 1,
        author: "test".into(),
        expected_parent_version: None,
    }))
    .await
    .unwrap();
    let mut b = fleet[1].admin().await;
    let revoked = b
        .revoke_principal(admin(pb::RevokePrincipalRequest {
            principal: "dr-ann".into(),
            reason: "terminated".into(),
            author: "hr".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.overlay_seq, 1);
    for r in [&fleet[0], &fleet[2]] {
        let mut c = r.authz().await;
        let took = eventually(Duration::from_secs(1), || {
            let mut c = c.clone();
            async move { decide(&mut c, ann_reads()).await.reason == "principal_revoked" }
        })
        .await;
        eprintln!("revocation reached a replica in {took:?}");
        let mut req = ann_reads();
        req.min_overlay_seq = revoked.overlay_seq;
        let d = decide(&mut c, req).await;
        assert_eq!(
            (d.reason.as_str(), d.overlay_seq, d.version),
            ("principal_revoked", 1, 3)
        );
    }
    // Every replica lists the fleet's history (A4).
    let mut c = fleet[2].admin().await;
    let versions: Vec<_> = c
        .list_versions(admin(pb::ListVersionsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .versions
        .iter()
        .map(|v| (v.version, v.rollback_of))
        .collect();
    assert_eq!(versions, vec![(3, Some(1)), (2, None), (1, None)]);
    let dirs: Vec<_> = fleet.iter().map(|r| r.dir.join("audit")).collect();
    for r in fleet {
        r.stop().await.unwrap();
    }

    // Each replica keeps its own chain, every record naming the replica.
    for (dir, name) in dirs.iter().zip(["fleet-a", "fleet-1", "fleet-2"]) {
        let text: String = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        let replicas: std::collections::BTreeSet<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["replica"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(replicas, [name.to_owned()].into(), "{}", dir.display());
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify"])
        .args(&dirs)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert_eq!(report.matches("chain intact").count(), 3, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_on_the_same_parent_have_exactly_one_winner() {
    let pg = Postgres::start();
    let fleet = fleet(&pg, 3).await;
    for round in 0..5u64 {
        let parent = 1 + round;
        let mut tasks = Vec::new();
        for r in &fleet {
            let mut a = r.admin().await;
            tasks.push(tokio::spawn(async move {
                let mut req = push_request(example("clinic-portal"));
                req.expected_parent_version = Some(parent);
                a.push_snapshot(admin(req)).await
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => won.push(r.into_inner().version),
                Err(s) => assert_eq!(s.code(), Code::FailedPrecondition, "round {round}: {s:?}"),
            }
        }
        assert_eq!(won, vec![parent + 1], "round {round}: exactly one push wins");
        // Every replica reaches the winner before the next round's compare-and-swap.
        for r in &fleet {
            let mut req = ann_reads();
            req.min_version = parent + 1;
            decide(&mut r.authz().await, req).await;
        }
    }
    // Far ahead of anything pushed: waits the consistency bound, then refuses.
    let mut req = ann_reads();
    req.min_version = 99;
    let started = Instant::now();
    let s = fleet[0].authz().await.check(req).await.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    for r in fleet {
        r.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_rows_are_skipped_and_late_replicas_and_lost_listeners_catch_up() {
    let pg = Postgres::start();
    let fleet = fleet(&pg, 2).await;
    let mut a = fleet[0].admin().await;
    // Ten changes: five pushes, five overlay changes.
    for i in 0..5 {
        let bundle = if i % 2 == 0 {
            clinic_without_ann()
        } else {
            example("clinic-portal")
        };
        a.push_snapshot(admin(push_request(bundle))).await.unwrap();
        a.revoke_principal(admin(pb::RevokePrincipalRequest {
            principal: format!("ghost-{i}"),
            reason: "test".into(),
            author: "hr".into(),
        }))
        .await
        .unwrap();
    }
    let late = replica(&pg, "fleet-late", Some("clinic-portal")).await;
    let d = decide(&mut late.authz().await, ann_reads()).await;
    assert_eq!(
        (d.version, d.overlay_seq, d.reason.as_str()),
        (6, 5, "no_matching_grant")
    );

    // A row whose bytes do not match their SHA-256 (a valid bundle that lets Ann in, under
    // the hash of version 6 that does not): refused, the fleet keeps serving 6.
    pg.sql(
        "BEGIN;
         UPDATE portcullis_heads SET value = 7 WHERE name = 'version';
         INSERT INTO portcullis_versions (version, parent, sha256, author, message, created_at, format, bundle)
           SELECT 7, 6, (SELECT sha256 FROM portcullis_versions WHERE version = 6),
                  'mallory', 'tampered', created_at, format, bundle
           FROM portcullis_versions WHERE version = 5;
         SELECT pg_notify('portcullis_changes', 'version:7');
         COMMIT;",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for r in fleet.iter().chain([&late]) {
        let d = decide(&mut r.authz().await, ann_reads()).await;
        assert_eq!(
            (d.version, d.reason.as_str()),
            (6, "no_matching_grant"),
            "the tampered version 7 is never served"
        );
    }
    let listed = a
        .list_versions(admin(pb::ListVersionsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.versions.iter().all(|v| v.version != 7),
        "listed only when it verifies"
    );

    // Lost LISTEN connections: the replicas still converge (reconnect, or the poll).
    let killed = pg
        .sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'")
        .unwrap();
    assert_eq!(killed, "3", "one listener per replica");
    let pushed = a
        .push_snapshot(admin(push_request(example("clinic-portal"))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        pushed.version, 8,
        "numbers are never reused, even for a refused version"
    );
    for r in fleet.iter().chain([&late]) {
        let c = r.authz().await;
        eventually(Duration::from_secs(2), || {
            let mut c = c.clone();
            async move { decide(&mut c, ann_reads()).await.version == 8 }
        })
        .await;
    }
    for r in fleet {
        r.stop().await.unwrap();
    }
    late.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_cut_off_from_postgres_serves_until_the_staleness_bound_then_refuses() {
    let mut pg = Postgres::start();
    let fleet = fleet(&pg, 2).await;
    let (mut a, mut c) = (fleet[0].admin().await, fleet[1].authz().await);

    // Load: eight callers checking back to back on both replicas, before and after the kill.
    let started = Instant::now();
    let callers: Vec<_> = (0..8)
        .map(|i| {
            let server = &fleet[i % 2];
            let url = server.url();
            tokio::spawn(async move {
                let mut c = pb::authorization_service_client::AuthorizationServiceClient::connect(url)
                    .await
                    .unwrap();
                let (mut allowed, mut failed) = (0u64, 0u64);
                while started.elapsed() < Duration::from_millis(1500) {
                    match c.check(ann_reads()).await {
                        Ok(r) if r.get_ref().decision.as_ref().is_some_and(is_allow) => allowed += 1,
                        _ => failed += 1,
                    }
                }
                (allowed, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg.kill9();
    // Within the bound: decisions go on, from memory, with no error.
    let (mut allowed, mut failed) = (0, 0);
    for caller in callers {
        let (a, f) = caller.await.unwrap();
        allowed += a;
        failed += f;
    }
    assert_eq!(failed, 0, "{allowed} allowed");
    assert!(allowed > 100, "the load ran: {allowed} checks");
    // Writes fail clearly while the store is gone.
    let s = a
        .revoke_principal(admin(pb::RevokePrincipalRequest {
            principal: "dr-ann".into(),
            reason: "x".into(),
            author: "hr".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    // Past the bound (2 s): UNAVAILABLE, never a stale allow.
    eventually(Duration::from_secs(3), || {
        let mut c = c.clone();
        async move { c.check(ann_reads()).await.is_err_and(|s| s.code() == Code::Unavailable) }
    })
    .await;

    pg.run();
    // Back: replicas replay what they missed and answer again; a revocation reaches both.
    eventually(Duration::from_secs(10), || {
        let mut c = c.clone();
        async move { c.check(ann_reads()).await.is_ok() }
    })
    .await;
    let revoked = a
        .revoke_principal(admin(pb::RevokePrincipalRequest {
            principal: "dr-ann".into(),
            reason: "left".into(),
            author: "hr".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut req = ann_reads();
    req.min_overlay_seq = revoked.overlay_seq;
    assert_eq!(decide(&mut c, req).await.reason, "principal_revoked");
    for r in fleet {
        r.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_observed_by_one_replica_keeps_the_account_active_on_all() {
    const DAY: i64 = 86_400;
    let pg = Postgres::start();
    let fleet = fleet(&pg, 2).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let ann = |t: i64| reads_at("dr-ann", t);
    // Day 100: by the bundle alone she is dormant (R7).
    b.clock.set(AT + 100 * DAY);
    assert_eq!(
        decide(&mut b.authz().await, ann(AT + 100 * DAY)).await.reason,
        "account_dormant"
    );
    // Day 60 on replica A: she logs in and reads.
    a.clock.set(AT + 60 * DAY);
    assert!(is_allow(&decide(&mut a.authz().await, ann(AT + 60 * DAY)).await));
    // B learns of it through PostgreSQL within a few sync rounds.
    eventually(Duration::from_secs(5), || async {
        is_allow(&decide(&mut b.authz().await, ann(AT + 100 * DAY)).await)
    })
    .await;
    // And B's own observation of day 100 is written back for the fleet.
    let want = (AT + 100 * DAY).to_string();
    eventually(Duration::from_secs(5), || async {
        pg.sql("SELECT authenticated_at FROM portcullis_activity WHERE principal = 'dr-ann'")
            .is_ok_and(|v| v.trim() == want)
    })
    .await;
    for r in fleet {
        r.stop().await.unwrap();
    }
}
