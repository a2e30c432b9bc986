//! R7 dormancy from observed logins: an allowed check proves its session's
//! authentication, which keeps the account active past the bundle's last activity; the
//! observation survives a restart (file store) and shows in the live state; a dormant
//! account's own login, and a what-if question, prove nothing.
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
use std::time::Duration;

const DAY: i64 = 86_400;

async fn reason(server: &TestServer, req: impl tonic::IntoRequest<pb::CheckRequest>) -> String {
    decide(&mut server.authz().await, req).await.reason
}

async fn observed(server: &TestServer) -> std::collections::BTreeMap<String, i64> {
    server
        .admin()
        .await
        .get_snapshot_info(admin(pb::GetSnapshotInfoRequest { include_activity: true }))
        .await
        .unwrap()
        .into_inner()
        .observed_activity
}

async fn start(dir: &std::path::Path) -> TestServer {
    TestServer::start_with(dir, Some("clinic-portal"), |cfg| {
        cfg.activity_sync_interval = Duration::from_millis(50);
    })
    .await
}

#[tokio::test]
async fn observed_logins_keep_an_account_active_and_survive_a_restart() {
    let dir = temp_dir("activity-file");
    let server = start(&dir).await;
    // Without an observation, 100 days on, the bundle's last activity (a day before AT)
    // makes Dr Ann dormant: the control for everything below.
    server.clock.set(AT + 100 * DAY);
    assert_eq!(
        reason(&server, reads_at("dr-ann", AT + 100 * DAY)).await,
        "account_dormant"
    );
    // A dormant account's login proves nothing: Dr Bob stays dormant however often he tries.
    for _ in 0..2 {
        assert_eq!(
            reason(&server, reads_at("dr-bob", AT + 100 * DAY)).await,
            "account_dormant"
        );
    }

    // Day 60: Ann logs in and reads; the server sees it.
    server.clock.set(AT + 60 * DAY);
    assert!(is_allow(
        &decide(&mut server.authz().await, reads_at("dr-ann", AT + 60 * DAY)).await
    ));
    let seen = observed(&server).await;
    assert_eq!(seen.get("dr-ann"), Some(&(AT + 60 * DAY)));
    assert!(!seen.contains_key("dr-bob"), "{seen:?}");

    // Day 100: 40 days since the observed login, so she is active (the control above was
    // dormant at this very time), and this login is observed in turn.
    server.clock.set(AT + 100 * DAY);
    assert!(is_allow(
        &decide(&mut server.authz().await, reads_at("dr-ann", AT + 100 * DAY)).await
    ));
    server.stop().await.unwrap();
    assert!(dir.join("activity.json").exists());

    // After a restart the observation is still there.
    let server = start(&dir).await;
    server.clock.set(AT + 100 * DAY);
    assert_eq!(observed(&server).await.get("dr-ann"), Some(&(AT + 100 * DAY)));

    // Observations do not rescue forever: 91 days after the last one she is dormant.
    server.clock.set(AT + 191 * DAY);
    assert_eq!(
        reason(&server, reads_at("dr-ann", AT + 191 * DAY)).await,
        "account_dormant"
    );

    // An admin's what-if question about day 150 is allowed, but proves no login now.
    let mut what_if = reads_at("dr-ann", AT + 150 * DAY);
    what_if.at = Some(AT + 150 * DAY);
    assert!(is_allow(&decide(&mut server.authz().await, admin(what_if)).await));
    assert_eq!(
        reason(&server, reads_at("dr-ann", AT + 191 * DAY)).await,
        "account_dormant"
    );
    assert_eq!(observed(&server).await.get("dr-ann"), Some(&(AT + 100 * DAY)));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_login_is_never_recorded_later_than_the_server_clock() {
    let dir = temp_dir("activity-clamp");
    let server = start(&dir).await;
    // Within the 5 s skew a session may claim a slightly later authentication; the record
    // is the server's time, so a caller cannot stretch activity into the future.
    assert!(is_allow(
        &decide(&mut server.authz().await, reads_at("dr-ann", AT + 4)).await
    ));
    assert_eq!(observed(&server).await.get("dr-ann"), Some(&AT));
    server.stop().await.unwrap();
}
