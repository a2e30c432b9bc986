//! Pushes while serving: new versions take effect at once, bad ones never do, CAS holds,
//! and concurrent readers never see a torn snapshot.
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
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Mutex;

#[tokio::test]
async fn a_push_is_seen_by_the_next_check() {
    let dir = temp_dir("push-seen");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let (mut a, mut c) = (server.admin().await, server.authz().await);
    assert!(is_allow(&decide(&mut c, ann_reads()).await));
    let v = a
        .push_snapshot(admin(push_request(clinic_without_ann())))
        .await
        .unwrap()
        .into_inner()
        .version;
    let d = decide(&mut c, ann_reads()).await;
    assert_eq!((is_allow(&d), d.version), (false, v));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_invalid_push_is_rejected_with_every_problem_and_changes_nothing() {
    let dir = temp_dir("invalid-push");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let (mut a, mut c) = (server.admin().await, server.authz().await);
    let mut text = String::from_utf8(example("clinic-portal")).unwrap();
    text = text.replace(
        "role: front_desk, scope: {tenant: clinic-north}}",
        "role: front_dsk, scope: {tenant: clinic-north}}",
    );
    text = text.replace(
        "{id: svc-reminders, kind: service, owner: it-team}",
        "{id: svc-reminders, kind: service}",
    );
    let err = a
        .push_snapshot(admin(push_request(text.into_bytes())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let msg = err.message();
    assert!(
        msg.contains("grants[dee-desk].role (line 84): unknown role `front_dsk`"),
        "{msg}"
    );
    assert!(
        msg.contains("grants[jo-desk].role (line 85): unknown role `front_dsk`"),
        "{msg}"
    );
    assert!(
        msg.contains("service account `svc-reminders` has no owner (R5)"),
        "{msg}"
    );

    let garbage = a
        .push_snapshot(admin(push_request(b"{{{{ not yaml".to_vec())))
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), tonic::Code::InvalidArgument);

    let d = decide(&mut c, ann_reads()).await;
    assert_eq!((is_allow(&d), d.version), (true, 1), "the old snapshot keeps serving");
    let versions = a
        .list_versions(admin(pb::ListVersionsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(versions.len(), 1, "nothing was stored");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn compare_and_swap_rejects_a_stale_parent() {
    let dir = temp_dir("cas");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut a = server.admin().await;
    let mut first = push_request(clinic_without_ann());
    first.expected_parent_version = Some(1);
    assert_eq!(
        a.push_snapshot(admin(first.clone()))
            .await
            .unwrap()
            .into_inner()
            .version,
        2
    );
    let err = a.push_snapshot(admin(first)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("expected live version 1, but version 2 is live"),
        "{}",
        err.message()
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn min_version_refuses_stale_reads() {
    let dir = temp_dir("min-version");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut c = server.authz().await;
    let mut r = ann_reads();
    r.min_version = 2;
    let err = c.check(r.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("server is at snapshot version 1"),
        "{}",
        err.message()
    );
    r.min_version = 1;
    assert!(c.check(r).await.is_ok());
    server.stop().await.unwrap();
}

/// 8 client tasks check continuously while 200 pushes alternate two policies: no errors,
/// and every decision is the one the version that answered gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checks_never_see_a_torn_snapshot() {
    let dir = temp_dir("torn");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let allows_ann: Arc<Mutex<HashMap<u64, bool>>> = Arc::new(Mutex::new(HashMap::from([(1, true)])));
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..8 {
        let mut c = server.authz().await;
        let done = done.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let batch = c
                    .batch_check(pb::BatchCheckRequest {
                        requests: vec![ann_reads(), ann_reads()],
                        min_version: 0,
                        min_overlay_seq: 0,
                    })
                    .await
                    .expect("no errors while pushing");
                let b = batch.into_inner();
                assert!(
                    b.decisions.iter().all(|d| d.version == b.version),
                    "one batch, one snapshot"
                );
                seen.push((b.version, is_allow(&b.decisions[0])));
                let d = c
                    .check(ann_reads())
                    .await
                    .expect("no errors while pushing")
                    .into_inner()
                    .decision
                    .unwrap();
                seen.push((d.version, is_allow(&d)));
            }
            seen
        }));
    }
    let mut a = server.admin().await;
    let (with, without) = (example("clinic-portal"), clinic_without_ann());
    for i in 0..200 {
        let allows = i % 2 == 1;
        let bundle = if allows { with.clone() } else { without.clone() };
        let v = a
            .push_snapshot(admin(push_request(bundle)))
            .await
            .unwrap()
            .into_inner()
            .version;
        allows_ann.lock().await.insert(v, allows);
    }
    done.store(true, Ordering::Relaxed);
    let expected = allows_ann.lock().await.clone();
    let mut total = 0;
    for r in readers {
        for (version, allowed) in r.await.unwrap() {
            assert_eq!(Some(&allowed), expected.get(&version), "version {version}");
            total += 1;
        }
    }
    assert!(total > 16, "readers made only {total} calls");
    server.stop().await.unwrap();
}
