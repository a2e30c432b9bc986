//! Acknowledged versions survive `kill -9`; corrupt or truncated files are skipped, never
//! half-loaded.
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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn version_file(dir: &std::path::Path, v: u64) -> std::path::PathBuf {
    dir.join("versions").join(format!("{v:020}.snapshot"))
}

#[tokio::test]
async fn a_corrupt_or_truncated_newest_version_is_skipped() {
    let dir = temp_dir("corrupt");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut a = server.admin().await;
    a.push_snapshot(admin(push_request(clinic_without_ann())))
        .await
        .unwrap();
    a.push_snapshot(admin(push_request(clinic_without_ann())))
        .await
        .unwrap();
    server.stop().await.unwrap();

    // Version 3 loses its tail; version 2 gets one byte flipped.
    let v3 = version_file(&dir, 3);
    let len = std::fs::metadata(&v3).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&v3)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let mut v2 = std::fs::read(version_file(&dir, 2)).unwrap();
    let last = v2.len() - 5;
    v2[last] ^= 0x20;
    std::fs::write(version_file(&dir, 2), v2).unwrap();

    let server = TestServer::start(&dir, None).await;
    let (mut a, mut c) = (server.admin().await, server.authz().await);
    let d = decide(&mut c, ann_reads()).await;
    assert_eq!(
        (d.version, is_allow(&d)),
        (1, true),
        "falls back to the newest version that verifies"
    );
    let listed = a
        .list_versions(admin(pb::ListVersionsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(listed.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1]);
    let next = a
        .push_snapshot(admin(push_request(example("clinic-portal"))))
        .await
        .unwrap()
        .into_inner()
        .version;
    assert_eq!(next, 4, "numbers of unusable files are never reused");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_pushes_keeps_every_acknowledged_version() {
    use portcullis_proto::v1::policy_admin_service_client::PolicyAdminServiceClient;
    let dir = temp_dir("kill9");
    for round in 0..3 {
        let port = free_port();
        let mut child = spawn_serve(&dir, port, &[]);
        let mut a = PolicyAdminServiceClient::new(connect(port).await);
        let before = a
            .get_snapshot_info(admin(pb::GetSnapshotInfoRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .live
            .unwrap()
            .version;
        let acked = Arc::new(AtomicU64::new(before));
        let pusher = {
            let acked = acked.clone();
            let mut a = a.clone();
            tokio::spawn(async move {
                loop {
                    let bundle = if acked.load(Ordering::SeqCst) % 2 == 0 {
                        clinic_without_ann()
                    } else {
                        example("clinic-portal")
                    };
                    match a.push_snapshot(admin(push_request(bundle))).await {
                        Ok(r) => acked.store(r.into_inner().version, Ordering::SeqCst),
                        Err(_) => break,
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(300 + 70 * round)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let _ = pusher.await;
        let last_acked = acked.load(Ordering::SeqCst);
        assert!(last_acked > before, "round {round}: no push was acknowledged");

        let port = free_port();
        let mut child = spawn_serve(&dir, port, &[]);
        let channel = connect(port).await;
        let mut a = PolicyAdminServiceClient::new(channel.clone());
        let live = a
            .get_snapshot_info(admin(pb::GetSnapshotInfoRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .live
            .unwrap();
        assert!(
            live.version == last_acked || live.version == last_acked + 1,
            "round {round}: acknowledged {last_acked}, restarted on {}",
            live.version
        );
        let mut c = portcullis_proto::v1::authorization_service_client::AuthorizationServiceClient::new(channel);
        // A child server reads the system clock: the example's fixed time is a what-if.
        let d = decide(&mut c, admin(ann_reads())).await;
        assert_eq!(d.version, live.version);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
