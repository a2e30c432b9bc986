//! `portcullis review` and `portcullis policy diff` against a real server, in every format.
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

async fn portcullis(args: Vec<String>) -> (i32, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
    .await
    .unwrap()
}

fn args(server: &TestServer, words: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = words.iter().map(|s| s.to_string()).collect();
    v.extend(["--server".into(), server.url(), "--token".into(), ADMIN_TOKEN.into()]);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_and_diffs_come_from_the_live_server() {
    let dir = temp_dir("cli-review");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut a = server.admin().await;
    a.push_snapshot(admin(push_request(clinic_without_ann())))
        .await
        .unwrap();
    a.grant_temporary(admin(pb::GrantTemporaryRequest {
        principal: "fd-jo".into(),
        role: "clinician".into(),
        tenant: Some("clinic-south".into()),
        ttl_seconds: 600,
        ..Default::default()
    }))
    .await
    .unwrap();

    let (code, out) = portcullis(args(&server, &["review", "tenant", "clinic-north", "--format", "csv"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("# Who can reach tenant `clinic-north`\nprincipal,account,grant,"),
        "{out}"
    );
    assert!(
        out.contains("\nnurse-cy,terminated,north-clinicians,clinician,north-clinicians,"),
        "{out}"
    );
    assert!(
        !out.contains("\ndr-ann,"),
        "version 2 dropped Ann from the group: {out}"
    );

    let (code, out) = portcullis(args(&server, &["review", "temporary", "--format", "json"])).await;
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v[0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(
        (rows[0]["grantee"].as_str(), rows[0]["ticket"].as_str()),
        (Some("fd-jo"), Some("overlay"))
    );

    let (code, out) = portcullis(args(&server, &["review", "service-accounts", "--format", "markdown"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("| svc-reminders | it-team | active |  | front_desk |"),
        "{out}"
    );

    let (code, out) = portcullis(args(&server, &["policy", "diff", "1", "2"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("group") && out.contains("north-clinicians") && out.contains("changed"),
        "{out}"
    );
    assert!(
        out.contains("members: [\"dr-ann\",\"nurse-cy\"] -> [\"nurse-cy\"]"),
        "{out}"
    );
    server.stop().await.unwrap();
}
