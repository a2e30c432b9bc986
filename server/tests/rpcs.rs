//! Every RPC of both services against a real server.
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

#[tokio::test]
async fn decision_rpcs_answer_from_the_live_snapshot() {
    let dir = temp_dir("rpcs");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut c = server.authz().await;

    let d = decide(&mut c, ann_reads()).await;
    assert!(is_allow(&d));
    assert_eq!(
        (d.reason.as_str(), d.requirement.as_str(), d.rule.as_str(), d.version),
        ("granted", "R2", "north-clinicians", 1)
    );

    let mut other = ann_reads();
    other.resource.as_mut().unwrap().tenant = Some("clinic-south".into());
    other.hide_forbidden = true;
    let d = decide(&mut c, other.clone()).await;
    assert!(!is_allow(&d));
    assert_eq!(d.reason, "no_matching_grant");
    assert!(d.not_found, "R17: hide_forbidden marks denies as not found");

    let unknown = check("nobody", "read", "patient_record", "p-1", Some("clinic-north"));
    let d = decide(&mut c, unknown).await;
    assert_eq!(
        d.reason, "unknown_principal",
        "unknown principals are denies, not errors"
    );

    let e = c
        .explain(admin(ann_reads()))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert!(e.trace.iter().any(|s| s.contains("north-clinicians")), "{:?}", e.trace);

    let batch = c
        .batch_check(pb::BatchCheckRequest {
            requests: vec![ann_reads(), other],
            min_version: 0,
            min_overlay_seq: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        batch.decisions.iter().map(is_allow).collect::<Vec<_>>(),
        vec![true, false]
    );
    assert_eq!(batch.version, 1);

    let f = c
        .filter_rows(pb::FilterRowsRequest {
            principal: "dr-ann".into(),
            action: "read".into(),
            resource_type: "patient_record".into(),
            session: ann_reads().session,
            at: Some(AT),
            min_version: 0,
            min_overlay_seq: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.kind, pb::filter_rows_response::Kind::Some as i32);
    assert_eq!(f.tenant_ids, vec!["clinic-north".to_owned()]);
    assert_eq!(f.sql, "(\"tenant_id\" = ANY($1))");
    assert_eq!(f.sql_params.len(), 1);

    let list = |usable_only| pb::ListSubjectsRequest {
        action: "read".into(),
        resource_type: "patient_record".into(),
        tenant: Some("clinic-north".into()),
        resource_id: None,
        min_version: 0,
        owner: None,
        at: None,
        usable_only,
    };
    let subjects = c.list_subjects(admin(list(false))).await.unwrap().into_inner();
    let cy = subjects.paths.iter().find(|p| p.principal == "nurse-cy").unwrap();
    assert_eq!(cy.blocked, "account_terminated");
    let kim = subjects.paths.iter().find(|p| p.principal == "er-kim").unwrap();
    assert_eq!(kim.needs, vec!["break_glass_reason".to_owned()]);
    let usable = c.list_subjects(admin(list(true))).await.unwrap().into_inner();
    assert!(usable.paths.iter().all(|p| p.blocked.is_empty()));
    assert!(!usable.paths.iter().any(|p| p.principal == "nurse-cy"));
    let who: Vec<_> = subjects
        .paths
        .iter()
        .map(|p| (p.principal.as_str(), p.grant.as_str()))
        .collect();
    assert!(who.contains(&("dr-ann", "north-clinicians")), "{who:?}");
    assert!(
        who.contains(&("er-kim", "kim-emergency")),
        "break-glass holders are listed: {who:?}"
    );
    assert!(!who.iter().any(|(p, _)| *p == "dr-bob"), "{who:?}");

    let access = c
        .list_principal_access(admin(pb::ListPrincipalAccessRequest {
            principal: "mgr-eve".into(),
            min_version: 0,
            at: None,
            usable_only: false,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        access
            .paths
            .iter()
            .any(|p| p.grant == "eve-admin" && p.resource_type == "clinic_settings")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn admin_rpcs_push_validate_list_rollback_and_change_the_overlay() {
    let dir = temp_dir("admin-rpcs");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut a = server.admin().await;
    let mut c = server.authz().await;

    let bad = b"principals: [{id: svc, kind: service}]\ngrants: [{principal: svc, role: nope, scope: all}]\n".to_vec();
    let v = a
        .validate_snapshot(admin(pb::ValidateSnapshotRequest {
            bundle: bad,
            format: pb::BundleFormat::Yaml as i32,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!v.valid);
    let places: Vec<_> = v.problems.iter().map(|p| (p.path.as_str(), p.line)).collect();
    assert_eq!(
        places,
        vec![("principals[svc]", 1), ("grants[0].role", 2), ("resource_types", 0)]
    );

    // ValidateSnapshot does what a push does: a bundle whose own test fails is not valid.
    let mut failing = String::from_utf8(example("clinic-portal")).unwrap();
    failing.push_str(
        "\ntests:\n  - name: nobody reads\n    request: {principal: nobody, action: read, resource: {type: nope, id: x}, at: \"2026-11-23T10:00:00Z\"}\n    expect: allow\n",
    );
    let v = a
        .validate_snapshot(admin(pb::ValidateSnapshotRequest {
            bundle: failing.into_bytes(),
            format: pb::BundleFormat::Yaml as i32,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!v.valid);
    assert!(
        v.problems[0].message.contains("policy test `nobody reads`"),
        "{:?}",
        v.problems
    );

    let pushed = a
        .push_snapshot(admin(push_request(clinic_without_ann())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pushed.version, 2);
    assert_eq!(pushed.content_hash.len(), 64);
    assert!(!is_allow(&decide(&mut c, ann_reads()).await));

    let versions = a
        .list_versions(admin(pb::ListVersionsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(versions[0].parent, 1);
    assert_eq!(versions[0].author, "test");

    let rolled = a
        .rollback(admin(pb::RollbackRequest {
            version: 1,
            author: "ops".into(),
            expected_parent_version: Some(2),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.version, 3);
    assert_eq!(rolled.content_hash, versions[1].content_hash);
    let d = decide(&mut c, ann_reads()).await;
    assert!(is_allow(&d));
    assert_eq!(d.version, 3);

    let err = a
        .rollback(admin(pb::RollbackRequest {
            version: 99,
            author: "ops".into(),
            expected_parent_version: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    let g = a
        .grant_temporary(admin(pb::GrantTemporaryRequest {
            principal: "fd-jo".into(),
            role: "clinician".into(),
            tenant: Some("clinic-north".into()),
            ttl_seconds: 3600,
            reason: "INC-1".into(),
            author: "sec".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mut jo = ann_reads();
    jo.principal = "fd-jo".into();
    jo.at = None;
    let d = decide(&mut c, jo).await;
    assert!(is_allow(&d), "{d:?}");
    assert_eq!(d.rule, g.id);

    a.revoke_principal(admin(pb::RevokePrincipalRequest {
        principal: "dr-ann".into(),
        reason: "left".into(),
        author: "hr".into(),
    }))
    .await
    .unwrap();
    let info = a
        .get_snapshot_info(admin(pb::GetSnapshotInfoRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.live.unwrap().version, 3);
    assert_eq!(
        info.revoked
            .iter()
            .map(|r| (r.principal.as_str(), r.reason.as_str()))
            .collect::<Vec<_>>(),
        vec![("dr-ann", "left")]
    );
    assert_eq!(info.temporary_grants.len(), 1);
    assert_eq!(info.temporary_grants[0].scope, "tenant:clinic-north");

    a.reinstate_principal(admin(pb::ReinstatePrincipalRequest {
        principal: "dr-ann".into(),
        reason: "rehired".into(),
        author: "hr".into(),
    }))
    .await
    .unwrap();
    assert!(is_allow(&decide(&mut c, ann_reads()).await));
    server.stop().await.unwrap();
}
