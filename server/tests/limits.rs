//! Input limits at N-1, N and N+1, malformed requests, and authentication.
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
use prost::Message;

#[tokio::test]
async fn batch_size_limit() {
    let dir = temp_dir("batch-limit");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| c.limits.max_batch = 5).await;
    let mut c = server.authz().await;
    for n in [4, 5] {
        let r = c
            .batch_check(pb::BatchCheckRequest {
                requests: vec![ann_reads(); n],
                min_version: 0,
                min_overlay_seq: 0,
            })
            .await
            .unwrap();
        assert_eq!(r.into_inner().decisions.len(), n);
    }
    let err = c
        .batch_check(pb::BatchCheckRequest {
            requests: vec![ann_reads(); 6],
            min_version: 0,
            min_overlay_seq: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "batch of 6 requests exceeds the limit of 5");
    server.stop().await.unwrap();
}

/// The clinic example padded with a trailing comment to exactly `len` bytes.
fn bundle_of_len(len: usize) -> Vec<u8> {
    let mut b = example("clinic-portal");
    b.extend_from_slice(b"\n#");
    assert!(b.len() <= len);
    b.resize(len, b'x');
    b
}

#[tokio::test]
async fn bundle_size_limit() {
    let limit = example("clinic-portal").len() + 100;
    let dir = temp_dir("bundle-limit");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| c.limits.max_bundle_bytes = limit).await;
    let mut a = server.admin().await;
    for len in [limit - 1, limit] {
        a.push_snapshot(admin(push_request(bundle_of_len(len)))).await.unwrap();
    }
    let err = a
        .push_snapshot(admin(push_request(bundle_of_len(limit + 1))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert_eq!(
        err.message(),
        format!("bundle of {} bytes exceeds the limit of {limit} bytes", limit + 1)
    );
    let err = a
        .validate_snapshot(admin(pb::ValidateSnapshotRequest {
            bundle: bundle_of_len(limit + 1),
            format: 0,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    server.stop().await.unwrap();
}

/// A check request whose encoded size is exactly `len`.
fn check_of_len(len: usize) -> pb::CheckRequest {
    let mut r = ann_reads();
    let base = r.encoded_len();
    let res = r.resource.as_mut().unwrap();
    res.attributes.insert("pad".into(), String::new());
    let mut pad = len.saturating_sub(r.encoded_len());
    loop {
        r.resource
            .as_mut()
            .unwrap()
            .attributes
            .insert("pad".into(), "x".repeat(pad));
        match r.encoded_len().cmp(&len) {
            std::cmp::Ordering::Equal => return r,
            std::cmp::Ordering::Greater => pad -= 1,
            std::cmp::Ordering::Less => pad += 1,
        }
        assert!(base < len);
    }
}

#[tokio::test]
async fn message_size_limit() {
    let limit = 4096;
    let dir = temp_dir("message-limit");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| c.limits.max_message_bytes = limit).await;
    let mut c = server.authz().await;
    for len in [limit - 1, limit] {
        let d = decide(&mut c, check_of_len(len)).await;
        assert!(is_allow(&d));
    }
    let err = c.check(check_of_len(limit + 1)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    // The server is still there.
    assert!(c.check(ann_reads()).await.is_ok());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn undecodable_requests_are_invalid_arguments_and_gzip_is_accepted() {
    let dir = temp_dir("status-codes");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    // Field 1 of CheckRequest is a string; a Timestamp puts a varint there.
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let err = grpc
        .unary(
            tonic::Request::new(prost_types::Timestamp { seconds: 5, nanos: 0 }),
            tonic::codegen::http::uri::PathAndQuery::from_static("/portcullis.v1.AuthorizationService/Check"),
            tonic_prost::ProstCodec::<prost_types::Timestamp, ()>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("decode"), "{}", err.message());

    let mut c = server
        .authz()
        .await
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    assert!(is_allow(&decide(&mut c, ann_reads()).await));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_servers_own_timeout_is_deadline_exceeded() {
    let dir = temp_dir("deadline");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| {
        c.request_timeout = std::time::Duration::from_millis(200);
        c.consistency_wait = std::time::Duration::from_secs(5);
    })
    .await;
    // A version that never arrives keeps the call waiting past the server's deadline.
    let mut req = ann_reads();
    req.min_version = 99;
    let started = std::time::Instant::now();
    let err = server.authz().await.check(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_requests_get_precise_errors() {
    let dir = temp_dir("malformed");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut c = server.authz().await;
    let mut no_resource = ann_reads();
    no_resource.resource = None;
    let err = c.check(no_resource).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (tonic::Code::InvalidArgument, "`resource` is required")
    );

    let mut bad_factor = ann_reads();
    bad_factor.session.as_mut().unwrap().factors.push("retina".into());
    let err = c.check(bad_factor.clone()).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (tonic::Code::InvalidArgument, "unknown factor kind `retina`")
    );

    let err = c
        .batch_check(pb::BatchCheckRequest {
            requests: vec![ann_reads(), bad_factor],
            min_version: 0,
            min_overlay_seq: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "requests[1]: unknown factor kind `retina`");

    let unknown_type = check("dr-ann", "read", "starship", "x", None);
    assert_eq!(decide(&mut c, unknown_type).await.reason, "unknown_resource_type");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn admin_calls_need_a_valid_token_and_change_nothing_without_one() {
    let dir = temp_dir("auth");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut a = server.admin().await;
    let err = a
        .push_snapshot(tonic::Request::new(push_request(clinic_without_ann())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let err = a
        .push_snapshot(with_token(push_request(clinic_without_ann()), "guess"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let err = a
        .revoke_principal(with_token(
            pb::RevokePrincipalRequest {
                principal: "dr-ann".into(),
                ..Default::default()
            },
            "guess",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let versions = a
        .list_versions(admin(pb::ListVersionsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(versions.len(), 1);
    let mut c = server.authz().await;
    assert!(is_allow(&decide(&mut c, ann_reads()).await));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_configured_tokens_one_is_generated_owner_only() {
    let dir = temp_dir("generated-token");
    let mut cfg = portcullis_server::serve::ServeConfig::new(dir.clone());
    portcullis_server::serve::prepare(&mut cfg).await.unwrap();
    let path = dir.join("admin-token");
    let token = std::fs::read_to_string(&path).unwrap();
    assert_eq!(token.len(), 64);
    let admin = portcullis_server::scopes::Scope::Admin;
    assert!(cfg.credentials.token(&token).is_some_and(|(_, s)| s.has(admin)));
    assert!(cfg.credentials.token("admin").is_none());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[tokio::test]
async fn plaintext_on_a_public_address_is_refused_without_insecure() {
    let dir = temp_dir("insecure");
    let mut cfg = portcullis_server::serve::ServeConfig::new(dir.clone());
    let engine = portcullis_server::serve::prepare(&mut cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = portcullis_server::serve::run(cfg, engine, listener, async {})
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refusing to serve plaintext on non-loopback address"),
        "{err}"
    );
}

#[tokio::test]
async fn hostile_yaml_is_refused_quickly_and_the_server_keeps_serving() {
    let dir = temp_dir("hostile-yaml");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut a = server.admin().await;
    let deep = format!("roles: {}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for i in 0..12 {
        let prev = if i == 0 { "a".to_owned() } else { format!("l{}", i - 1) };
        bomb.push_str(&format!(
            "l{i}: &l{i} {{<<: *{prev}, m: [*{prev}, *{prev}, *{prev}, *{prev}]}}\n"
        ));
    }
    for (what, bundle) in [("deep", deep), ("alias bomb", bomb.into_bytes())] {
        let started = std::time::Instant::now();
        let err = a.push_snapshot(admin(push_request(bundle))).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{what}: {err:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{what}");
    }
    assert!(is_allow(&decide(&mut server.authz().await, ann_reads()).await));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn overload_is_shed_at_once_and_admin_calls_are_not_counted() {
    let dir = temp_dir("shed");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| {
        c.max_concurrent_decisions = 1;
        c.consistency_wait = std::time::Duration::from_millis(800);
    })
    .await;
    // One decision call holds the only permit, waiting for a version that never comes.
    let mut waiting = ann_reads();
    waiting.min_version = 99;
    let mut c = server.authz().await;
    let held = tokio::spawn(async move { c.check(waiting).await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let err = server.authz().await.check(ann_reads()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(300),
        "refused at once"
    );
    // Admin and review calls are not shed by a flood of checks.
    let info = server
        .admin()
        .await
        .get_snapshot_info(admin(pb::GetSnapshotInfoRequest::default()))
        .await;
    assert!(info.is_ok(), "{info:?}");
    // Once the held call ends, decisions flow again.
    assert_eq!(held.await.unwrap().unwrap_err().code(), tonic::Code::FailedPrecondition);
    assert!(is_allow(&decide(&mut server.authz().await, ann_reads()).await));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_oversized_header_fails_its_call_not_the_connection() {
    let dir = temp_dir("big-header");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let channel = server.channel().await;
    let mut c = portcullis_proto::v1::authorization_service_client::AuthorizationServiceClient::new(channel.clone());
    let mut big = tonic::Request::new(ann_reads());
    big.metadata_mut()
        .insert("x-padding", "x".repeat(64 << 10).parse().unwrap());
    assert!(c.check(big).await.is_err());
    // The same connection still serves.
    assert!(is_allow(&decide(&mut c, ann_reads()).await));
    server.stop().await.unwrap();
}

/// The soft limit on open files, from /proc (Linux); 1024 when unknown.
fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_do_not_stop_service() {
    // The server runs as its own process, so each side has its own descriptor limit.
    let dir = temp_dir("idle-connections");
    let port = free_port();
    let mut child = spawn_serve(&dir, port, &[]);
    let channel = connect(port).await;
    let n = 10_000.min(open_file_limit().saturating_sub(256));
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    eprintln!("{n} idle connections open");
    let started = std::time::Instant::now();
    let mut c = portcullis_proto::v1::authorization_service_client::AuthorizationServiceClient::new(channel);
    assert!(is_allow(&decide(&mut c, admin(ann_reads())).await));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(idle);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn missing_versions_are_not_found_in_plain_words() {
    let dir = temp_dir("not-found");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut a = server.admin().await;
    let export = a
        .export_snapshot(admin(pb::ExportSnapshotRequest { version: Some(999) }))
        .await
        .unwrap_err();
    let rollback = a
        .rollback(admin(pb::RollbackRequest {
            version: 999,
            author: "t".into(),
            expected_parent_version: None,
        }))
        .await
        .unwrap_err();
    for s in [export, rollback] {
        assert_eq!(s.code(), tonic::Code::NotFound, "{s:?}");
        assert!(s.message().contains("999"), "{}", s.message());
        assert!(!s.message().contains("os error"), "{}", s.message());
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_abandoned_by_its_caller_changes_nothing_and_blocks_nothing() {
    use portcullis_policy::synth::{LargeShape, large_bundle};
    let dir = temp_dir("abandoned-push");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let big = serde_json::to_vec(&large_bundle(LargeShape {
        principals: 5_000,
        grants: 50_000,
        tenants: 100,
        wide_resources: 10,
        seed: 3,
    }))
    .unwrap();
    let mut push = admin(pb::PushSnapshotRequest {
        bundle: big,
        format: pb::BundleFormat::Json as i32,
        author: "ci".into(),
        expected_parent_version: None,
        message: String::new(),
    });
    push.set_timeout(std::time::Duration::from_millis(100));
    let mut a = server.admin().await;
    let err = a.push_snapshot(push).await.unwrap_err();
    assert!(
        matches!(err.code(), tonic::Code::Cancelled | tonic::Code::DeadlineExceeded),
        "{err:?}"
    );
    // Nothing was stored, and the writer is free for the next push at once.
    let pushed = a
        .push_snapshot(admin(push_request(example("clinic-portal"))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pushed.version, 2);
    server.stop().await.unwrap();
}
