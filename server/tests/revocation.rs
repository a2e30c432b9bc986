//! Revocations (R6) and temporary grants (R11) act on the very next check, survive
//! restarts and later pushes, and only an explicit reinstate lifts a revocation.
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

fn revoke(principal: &str) -> tonic::Request<pb::RevokePrincipalRequest> {
    admin(pb::RevokePrincipalRequest {
        principal: principal.into(),
        reason: "terminated".into(),
        author: "hr".into(),
    })
}

#[tokio::test]
async fn a_revocation_denies_at_once_and_survives_restart_and_push() {
    let dir = temp_dir("revoke");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let (mut a, mut c) = (server.admin().await, server.authz().await);
    assert!(is_allow(&decide(&mut c, ann_reads()).await));
    a.revoke_principal(revoke("dr-ann")).await.unwrap();
    let d = decide(&mut c, ann_reads()).await;
    assert_eq!(
        (is_allow(&d), d.reason.as_str(), d.requirement.as_str()),
        (false, "principal_revoked", "R6")
    );
    server.stop().await.unwrap();

    let server = TestServer::start(&dir, None).await;
    let (mut a, mut c) = (server.admin().await, server.authz().await);
    let d = decide(&mut c, ann_reads()).await;
    assert_eq!(
        d.reason, "principal_revoked",
        "a restart must not resurrect a revoked principal"
    );

    a.push_snapshot(admin(push_request(example("clinic-portal"))))
        .await
        .unwrap();
    let d = decide(&mut c, ann_reads()).await;
    assert_eq!(
        (d.version, d.reason.as_str()),
        (2, "principal_revoked"),
        "a push listing her as active does not undo it"
    );

    a.reinstate_principal(admin(pb::ReinstatePrincipalRequest {
        principal: "dr-ann".into(),
        reason: "error".into(),
        author: "hr".into(),
    }))
    .await
    .unwrap();
    assert!(is_allow(&decide(&mut c, ann_reads()).await));
    let err = a
        .reinstate_principal(admin(pb::ReinstatePrincipalRequest {
            principal: "dr-ann".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn temporary_grants_act_at_once_survive_pushes_and_refuse_unknown_names() {
    let dir = temp_dir("temporary");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let (mut a, mut c) = (server.admin().await, server.authz().await);
    let now = AT;
    let mut req = check("fd-jo", "read", "patient_record", "p-1", Some("clinic-south"));
    req.at = None;
    assert_eq!(decide(&mut c, req.clone()).await.reason, "no_matching_grant");

    let grant = |principal: &str, role: &str| {
        admin(pb::GrantTemporaryRequest {
            principal: principal.into(),
            role: role.into(),
            tenant: Some("clinic-south".into()),
            reason: "cover shift".into(),
            ..Default::default()
        })
    };
    let g = a
        .grant_temporary(grant("fd-jo", "clinician"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        g.expires_at,
        now + 3600,
        "default TTL is the snapshot's temporary_default_ttl (1h), from the server's clock"
    );
    let d = decide(&mut c, req.clone()).await;
    assert_eq!((is_allow(&d), d.rule.as_str()), (true, g.id.as_str()));

    a.push_snapshot(admin(push_request(example("clinic-portal"))))
        .await
        .unwrap();
    assert!(is_allow(&decide(&mut c, req.clone()).await), "survives pushes");
    server.stop().await.unwrap();

    let server = TestServer::start(&dir, None).await;
    let (mut a, mut c) = (server.admin().await, server.authz().await);
    assert!(is_allow(&decide(&mut c, req.clone()).await), "survives restarts");
    server.clock.set(g.expires_at);
    let mut later = req;
    later.session = Some(pb::Session {
        authenticated_at: Some(g.expires_at),
        last_activity: Some(g.expires_at),
        ..Default::default()
    });
    assert_eq!(
        decide(&mut c, later).await.reason,
        "grant_expired",
        "R11: inert once expired"
    );

    assert_eq!(
        a.grant_temporary(grant("nobody", "clinician"))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        a.grant_temporary(grant("fd-jo", "wizard")).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    let two_scopes = admin(pb::GrantTemporaryRequest {
        principal: "fd-jo".into(),
        role: "clinician".into(),
        all: true,
        tenant: Some("x".into()),
        ..Default::default()
    });
    assert_eq!(
        a.grant_temporary(two_scopes).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn temporary_grants_with_absurd_ttls_are_refused_not_panicked_on() {
    let dir = temp_dir("temporary-ttl");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut a = server.admin().await;
    let grant = |ttl_seconds: u64| {
        admin(pb::GrantTemporaryRequest {
            principal: "fd-jo".into(),
            role: "clinician".into(),
            tenant: Some("clinic-south".into()),
            ttl_seconds,
            reason: "cover shift".into(),
            ..Default::default()
        })
    };
    for ttl in [366 * 86_400 + 1, 1_000_000_000_000, i64::MAX as u64, u64::MAX] {
        let s = a.grant_temporary(grant(ttl)).await.unwrap_err();
        assert_eq!(s.code(), tonic::Code::InvalidArgument, "ttl {ttl}: {s:?}");
        assert!(s.message().contains("ttl_seconds"), "{}", s.message());
    }
    let g = a.grant_temporary(grant(366 * 86_400)).await.unwrap().into_inner();
    assert_eq!(g.expires_at, AT + 366 * 86_400, "the longest allowed TTL");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn every_admin_rpc_survives_extreme_numbers_with_a_clear_answer() {
    let dir = temp_dir("admin-extremes");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut a = server.admin().await;
    for v in [0, u64::MAX, i64::MAX as u64 + 1] {
        let s = a
            .rollback(admin(pb::RollbackRequest {
                version: v,
                author: "t".into(),
                expected_parent_version: Some(u64::MAX),
            }))
            .await
            .unwrap_err();
        assert!(
            matches!(
                s.code(),
                tonic::Code::NotFound | tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument
            ),
            "rollback {v}: {s:?}"
        );
        let s = a
            .export_snapshot(admin(pb::ExportSnapshotRequest { version: Some(v) }))
            .await
            .unwrap_err();
        assert!(
            matches!(s.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument),
            "export {v}: {s:?}"
        );
        let mut push = push_request(example("clinic-portal"));
        push.expected_parent_version = Some(v);
        let s = a.push_snapshot(admin(push)).await.unwrap_err();
        assert_eq!(s.code(), tonic::Code::FailedPrecondition, "push on {v}: {s:?}");
    }
    for format in [-1, 3, i32::MAX, i32::MIN] {
        let s = a
            .push_snapshot(admin(pb::PushSnapshotRequest {
                format,
                ..push_request(example("clinic-portal"))
            }))
            .await
            .unwrap_err();
        assert_eq!(s.code(), tonic::Code::InvalidArgument, "format {format}: {s:?}");
    }
    // Long names are bounded by the message limit and answered, never a crash.
    let long = "p".repeat(1 << 20);
    let revoked = a
        .revoke_principal(admin(pb::RevokePrincipalRequest {
            principal: long.clone(),
            reason: long.clone(),
            author: long,
        }))
        .await;
    assert!(
        revoked.is_ok()
            || revoked
                .as_ref()
                .is_err_and(|s| s.code() == tonic::Code::InvalidArgument)
    );
    // And the server still decides.
    assert!(is_allow(&decide(&mut server.authz().await, ann_reads()).await));
    let info = a
        .get_snapshot_info(admin(pb::GetSnapshotInfoRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.live.unwrap().version, 1, "nothing above changed the live version");
    server.stop().await.unwrap();
}
