//! Crash soak (#10): kill -9 the server at random moments during pushes, revocations and
//! audited checks; after each restart every acknowledged push and revocation is there and
//! the audit chain verifies. CI runs a few cycles; the full soak is
//! `PORTCULLIS_SOAK_CYCLES=100 cargo test --release -p portcullis-server --test soak -- --nocapture`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use common::*;
use portcullis_proto::v1 as pb;
use portcullis_proto::v1::authorization_service_client::AuthorizationServiceClient;
use portcullis_proto::v1::policy_admin_service_client::PolicyAdminServiceClient;
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What clients saw acknowledged before the kill.
#[derive(Debug, Default)]
struct Acked {
    versions: Vec<u64>,
    revoked: Vec<String>,
    audited_checks: u64,
}

fn cycles() -> usize {
    std::env::var("PORTCULLIS_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_acknowledged() {
    let dir = temp_dir("soak");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x50a6);
    let (mut total_versions, mut total_revoked, mut total_checks) = (0, 0, 0);
    for cycle in 0..cycles() {
        let port = free_port();
        let mut child = spawn_serve(&dir, port, &["--audit-all"]);
        let channel = connect(port).await;
        let acked = Arc::new(Mutex::new(Acked::default()));
        let mut workers = Vec::new();
        {
            let (mut a, acked) = (PolicyAdminServiceClient::new(channel.clone()), acked.clone());
            workers.push(tokio::spawn(async move {
                while let Ok(r) = a.push_snapshot(admin(push_request(example("clinic-portal")))).await {
                    acked.lock().unwrap().versions.push(r.into_inner().version);
                }
            }));
        }
        {
            let (mut a, acked) = (PolicyAdminServiceClient::new(channel.clone()), acked.clone());
            workers.push(tokio::spawn(async move {
                for i in 0.. {
                    let who = format!("soak-{cycle}-{i}");
                    let req = pb::RevokePrincipalRequest {
                        principal: who.clone(),
                        reason: "soak".into(),
                        author: "soak".into(),
                    };
                    if a.revoke_principal(admin(req)).await.is_err() {
                        break;
                    }
                    acked.lock().unwrap().revoked.push(who);
                }
            }));
        }
        for _ in 0..2 {
            let (mut c, acked) = (AuthorizationServiceClient::new(channel.clone()), acked.clone());
            workers.push(tokio::spawn(async move {
                while c.check(admin(ann_reads())).await.is_ok() {
                    acked.lock().unwrap().audited_checks += 1;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..1500))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for w in workers {
            let _ = w.await;
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());

        // Restart on the same directory: everything acknowledged is there.
        let port = free_port();
        let mut child = spawn_serve(&dir, port, &["--audit-all"]);
        let mut a = PolicyAdminServiceClient::new(connect(port).await);
        let stored: Vec<u64> = a
            .list_versions(admin(pb::ListVersionsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .versions
            .iter()
            .map(|v| v.version)
            .collect();
        for v in &acked.versions {
            assert!(stored.contains(v), "cycle {cycle}: acknowledged version {v} is gone");
        }
        let info = a
            .get_snapshot_info(admin(pb::GetSnapshotInfoRequest::default()))
            .await
            .unwrap()
            .into_inner();
        for who in &acked.revoked {
            assert!(
                info.revoked.iter().any(|r| &r.principal == who),
                "cycle {cycle}: acknowledged revocation of {who} is gone"
            );
        }
        // The restart cut any torn record; the chain verifies from the first record.
        match portcullis_server::audit::verify(&dir.join("audit")).unwrap() {
            Ok(records) => assert!(records > 0, "cycle {cycle}"),
            Err(broken) => panic!("cycle {cycle}: audit chain broken at {broken}"),
        }
        child.kill().unwrap();
        child.wait().unwrap();
        total_versions += acked.versions.len();
        total_revoked += acked.revoked.len();
        total_checks += acked.audited_checks;
    }
    eprintln!(
        "{} kill -9 cycles: {total_versions} acknowledged pushes, {total_revoked} revocations and {total_checks} audited checks survived",
        cycles()
    );
}
