//! The server owns the clock (trust model; R7, R9, R11): a caller with the check token
//! cannot move decision time, and session times that contradict it are refused.
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
use tonic::Code;

const YEAR: i64 = 365 * 86_400;

/// The status of a check that must be refused before evaluation.
async fn refused(server: &TestServer, req: impl tonic::IntoRequest<pb::CheckRequest>) -> tonic::Status {
    let mut c = server.authz().await;
    c.check(req).await.expect_err("must be refused, not decided")
}

#[tokio::test]
async fn caller_chosen_times_are_refused_outside_the_skew() {
    let dir = temp_dir("clock-at");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    for at in [0, -1, i64::MIN, AT - 3600, AT - 6, AT + 6, i64::MAX] {
        let mut req = ann_reads();
        req.at = Some(at);
        let s = refused(&server, req).await;
        assert_eq!(s.code(), Code::InvalidArgument, "at = {at}: {s:?}");
        assert!(s.message().contains("`at`"), "names the field: {}", s.message());
    }
    let mut c = server.authz().await;
    for at in [AT - 5, AT, AT + 5] {
        let mut req = ann_reads();
        req.at = Some(at);
        assert!(is_allow(&decide(&mut c, req).await), "within the 5 s skew: {at}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn idle_sessions_and_dormant_accounts_cannot_escape_through_time() {
    let dir = temp_dir("clock-escape");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut c = server.authz().await;

    // R9: idle for an hour at the server's time.
    let mut idle = ann_reads();
    idle.at = None;
    idle.session.as_mut().unwrap().authenticated_at = Some(AT - 7200);
    idle.session.as_mut().unwrap().last_activity = Some(AT - 3600);
    assert_eq!(decide(&mut c, idle.clone()).await.reason, "session_idle");
    // ... and "one hour before now" is not a way out.
    let mut back = idle.clone();
    back.at = Some(AT - 3500);
    assert_eq!(refused(&server, back).await.code(), Code::InvalidArgument);

    // A last activity ten years ahead would keep the session alive forever.
    let mut future = ann_reads();
    future.at = None;
    future.session.as_mut().unwrap().last_activity = Some(AT + 10 * YEAR);
    let s = refused(&server, future).await;
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().contains("session.last_activity"), "{}", s.message());

    // Activity before authentication, elevation before authentication, negative times.
    type Breakage = fn(&mut pb::Session);
    let cases: [(&str, Breakage); 4] = [
        ("session.last_activity", |s| s.last_activity = Some(AT - 7200)),
        ("session.elevated_at", |s| s.elevated_at = Some(AT - 7200)),
        ("session.authenticated_at", |s| s.authenticated_at = Some(-1)),
        ("session.authenticated_at", |s| s.authenticated_at = Some(AT + 60)),
    ];
    for (field, break_it) in cases {
        let mut req = ann_reads();
        break_it(req.session.as_mut().unwrap());
        let s = refused(&server, req).await;
        assert_eq!(s.code(), Code::InvalidArgument, "{field}");
        assert!(s.message().contains(field), "{field}: {}", s.message());
    }

    // R7: dr-bob is dormant now; `at` = 0 used to allow him.
    let mut bob = check("dr-bob", "read", "patient_record", "p-1", Some("clinic-north"));
    bob.at = Some(0);
    assert_eq!(refused(&server, bob.clone()).await.code(), Code::InvalidArgument);
    bob.at = None;
    assert_eq!(decide(&mut c, bob).await.reason, "account_dormant");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn admins_may_ask_what_if_and_batches_and_filters_follow_the_same_rule() {
    let dir = temp_dir("clock-what-if");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut c = server.authz().await;

    // What-if with the admin token: dr-bob half a year ago, when he was active.
    let mut bob = check("dr-bob", "read", "patient_record", "p-1", Some("clinic-north"));
    let then = AT - 170 * 86_400;
    bob.at = Some(then);
    bob.session = Some(pb::Session {
        authenticated_at: Some(then - 60),
        last_activity: Some(then - 30),
        ..Default::default()
    });
    let d = c
        .explain(admin(bob.clone()))
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert_ne!(d.reason, "account_dormant", "evaluated at the admin's time: {d:?}");
    let s = c.check(bob.clone()).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "without the admin token");
    let s = c
        .check(with_token(bob.clone(), "not-the-admin-token"))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated, "a wrong token is no admin token");

    // BatchCheck: the offending item is named.
    let mut skewed = ann_reads();
    skewed.at = Some(AT - 600);
    let s = c
        .batch_check(pb::BatchCheckRequest {
            requests: vec![ann_reads(), skewed],
            min_version: 0,
            min_overlay_seq: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().starts_with("requests[1]: `at`"), "{}", s.message());

    // FilterRows.
    let filter = |at: Option<i64>| pb::FilterRowsRequest {
        principal: "dr-ann".into(),
        action: "read".into(),
        resource_type: "patient_record".into(),
        session: ann_reads().session,
        at,
        min_version: 0,
        min_overlay_seq: 0,
    };
    assert_eq!(
        c.filter_rows(filter(Some(0))).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let rows = c.filter_rows(filter(None)).await.unwrap().into_inner();
    assert_eq!(rows.kind, pb::filter_rows_response::Kind::Some as i32, "{rows:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_audit_record_shows_the_decision_time_and_who_chose_it() {
    let dir = temp_dir("clock-audit");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut c = server.authz().await;
    let mut by_server = ann_reads();
    by_server.at = None;
    decide(&mut c, by_server).await;
    let mut by_caller = ann_reads();
    by_caller.at = Some(AT - 3);
    decide(&mut c, by_caller).await;
    server.stop().await.unwrap();

    let text = std::fs::read_dir(dir.join("audit"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    let recs: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let times: Vec<_> = recs
        .iter()
        .map(|r| (r["decision_time"].as_str().unwrap(), r["caller_time"].as_bool()))
        .collect();
    assert_eq!(
        times,
        vec![("2026-11-23T10:00:00Z", None), ("2026-11-23T09:59:57Z", Some(true))]
    );
}
