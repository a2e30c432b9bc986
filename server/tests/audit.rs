//! The audit trail (A1): what is recorded, the hash chain and its verification, the
//! backpressure policies, flushing on shutdown, and the metrics endpoint.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use common::*;
use portcullis_policy::bundle::AuditBackpressure;
use portcullis_proto::v1 as pb;
use portcullis_server::audit::{
    Admit, Audit, AuditItem, AuditRecord, Break, Coverage, Deferred, POLL_EVERY, SinkConfig, group, verify,
};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

#[tokio::test]
async fn a1_decisions_and_admin_calls_are_recorded_and_chained() {
    let dir = temp_dir("audit-a1");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let (mut c, mut a) = (server.authz().await, server.admin().await);
    // Allowed, not sensitive: not required by A1.
    c.check(check("fd-jo", "read", "appointment", "a-1", Some("clinic-north")))
        .await
        .unwrap();
    // Allowed on sensitive data, a deny, and a break-glass.
    c.check(ann_reads()).await.unwrap();
    c.check(check("fd-jo", "read", "patient_record", "p-2", Some("clinic-north")))
        .await
        .unwrap();
    let mut glass = check("er-kim", "read", "patient_record", "p-9", Some("clinic-south"));
    glass.session.as_mut().unwrap().break_glass_reason = Some("cardiac arrest".into());
    let mut traced = tonic::Request::new(glass);
    traced.metadata_mut().insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    c.check(traced).await.unwrap();
    a.revoke_principal(admin(pb::RevokePrincipalRequest {
        principal: "nurse-cy".into(),
        reason: "left".into(),
        author: "hr".into(),
    }))
    .await
    .unwrap();
    server.stop().await.unwrap();

    let audit_dir = dir.join("audit");
    assert_eq!(verify(&audit_dir).unwrap(), Ok(4));
    let recs = audit_records(&audit_dir);
    let summary: Vec<_> = recs
        .iter()
        .map(|r| {
            (
                r["principal"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("dr-ann", "allow", "granted"),
            ("fd-jo", "deny", "no_matching_grant"),
            ("er-kim", "allow", "break_glass"),
            ("hr", "ok", "ok")
        ]
    );
    let ann = &recs[0];
    assert_eq!(ann["rule"], "north-clinicians");
    assert_eq!(ann["version"], 1);
    assert_eq!(ann["tenant"], "clinic-north");
    assert!(ann["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    let glass = &recs[2];
    assert_eq!(
        (glass["severity"].as_str(), glass["break_glass_reason"].as_str()),
        (Some("high"), Some("cardiac arrest"))
    );
    assert_eq!(glass["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(recs[3]["kind"], "admin");
    assert_eq!(recs[3]["action"], "revoke_principal");
}

#[tokio::test]
async fn the_records_of_one_untraced_call_share_a_fresh_trace_id() {
    let dir = temp_dir("audit-trace-ids");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let mut c = server.authz().await;
    for _ in 0..2 {
        c.batch_check(pb::BatchCheckRequest {
            requests: vec![ann_reads(); 3],
            min_version: 0,
            min_overlay_seq: 0,
        })
        .await
        .unwrap();
    }
    server.stop().await.unwrap();
    let recs = audit_records(&dir.join("audit"));
    let ids: Vec<&str> = recs.iter().map(|r| r["trace_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 6, "{recs:#?}");
    for id in &ids {
        assert!(
            id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{id}"
        );
    }
    assert!(ids[..3].iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(ids[3..].iter().all(|id| *id == ids[3]), "{ids:?}");
    assert_ne!(ids[0], ids[3], "each call has its own trace");
}

#[tokio::test]
async fn verify_names_the_first_altered_or_deleted_record() {
    let dir = temp_dir("audit-tamper");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| {
        c.audit.as_mut().unwrap().all_decisions = true
    })
    .await;
    let mut c = server.authz().await;
    for _ in 0..5 {
        c.check(ann_reads()).await.unwrap();
    }
    server.stop().await.unwrap();
    let audit_dir = dir.join("audit");
    assert_eq!(verify(&audit_dir).unwrap(), Ok(5));
    let file = std::fs::read_dir(&audit_dir).unwrap().next().unwrap().unwrap().path();
    let original = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = original.lines().collect();

    let altered: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 2 {
                l.replace("\"allow\"", "\"deny\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&file, altered.join("\n") + "\n").unwrap();
    let broken = verify(&audit_dir).unwrap().unwrap_err();
    assert_eq!((broken.line, broken.problem.clone()), (3, Break::Altered { seq: 3 }));

    let deleted: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| *l)
        .collect();
    std::fs::write(&file, deleted.join("\n") + "\n").unwrap();
    let broken = verify(&audit_dir).unwrap().unwrap_err();
    assert_eq!(
        (broken.line, broken.problem.clone()),
        (2, Break::Gap { expected: 2, found: 3 })
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify"])
        .arg(&audit_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(":2: expected record 2, found 3: 1 record(s) deleted"),
        "{text}"
    );

    std::fs::write(&file, original).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["audit", "verify"])
        .arg(&audit_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test]
async fn the_chain_continues_across_restarts_and_cuts_a_torn_tail() {
    let dir = temp_dir("audit-restart");
    for round in 0..2 {
        let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| {
            c.audit.as_mut().unwrap().all_decisions = true
        })
        .await;
        let mut c = server.authz().await;
        for _ in 0..3 {
            c.check(ann_reads()).await.unwrap();
        }
        server.stop().await.unwrap();
        if round == 0 {
            // A crash in the middle of a write leaves half a line.
            let file = std::fs::read_dir(dir.join("audit"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
            std::io::Write::write_all(&mut f, b"{\"seq\":4,\"princ").unwrap();
        }
    }
    assert_eq!(verify(&dir.join("audit")).unwrap(), Ok(6));
}

fn record(n: usize) -> AuditRecord<'static> {
    AuditRecord {
        id: n.to_string().into(),
        kind: "decision",
        principal: format!("p{n}").into(),
        outcome: "deny",
        ..AuditRecord::default()
    }
}

/// An audit directory whose first file is a FIFO nobody reads: the sink blocks on it.
fn stalled_sink(name: &str) -> (std::path::PathBuf, SinkConfig) {
    let dir = temp_dir(name);
    let config = SinkConfig {
        dir: dir.clone(),
        max_file_bytes: 1 << 20,
        max_file_age: Duration::from_secs(3600),
        // No fsync (which fails on a FIFO) before `close`, so the writer never falls back
        // to recovering onto the FIFO's path and blocking there.
        sync_every: Duration::from_secs(3600),
        poll_every: POLL_EVERY,
    };
    (dir, config)
}

fn stall(dir: &Path) -> std::path::PathBuf {
    let fifo = dir.join(format!("audit-{:020}.jsonl", 1));
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    fifo
}

async fn fill(audit: &Audit, capacity: usize) {
    // The first record is taken by the (blocked) sink; then the queue fills.
    assert_eq!(audit.submit(record(0), AuditBackpressure::Deny).await, Admit::Queued);
    assert!(drained(audit).await);
    for i in 1..=capacity {
        assert_eq!(audit.submit(record(i), AuditBackpressure::Deny).await, Admit::Queued);
    }
    assert_eq!(audit.queue_depth(), capacity);
}

/// Waits (10 s at most) for the writer to take everything queued; true if it did.
async fn drained(audit: &Audit) -> bool {
    for _ in 0..2000 {
        if audit.queue_depth() == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_more_than_half_full_wakes_the_writer() {
    // The writer looks at the queue and fsyncs once an hour: only a sender's wake-up can
    // get records taken once it is waiting to fsync.
    let dir = temp_dir("audit-wake");
    let config = SinkConfig {
        dir: dir.clone(),
        max_file_bytes: 1 << 20,
        max_file_age: Duration::from_secs(3600),
        sync_every: Duration::from_secs(3600),
        poll_every: Duration::from_secs(3600),
    };
    let audit = Audit::start(config, 8, Coverage::All).unwrap();
    // The first record wakes the writer through the channel; written, it waits to fsync.
    assert_eq!(audit.submit(record(0), AuditBackpressure::Deny).await, Admit::Queued);
    assert!(drained(&audit).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The fifth of eight places taken passes half: that sender wakes the writer.
    for i in 1..=5 {
        assert_eq!(audit.submit(record(i), AuditBackpressure::Deny).await, Admit::Queued);
    }
    assert!(drained(&audit).await, "{} records still queued", audit.queue_depth());
    audit.close().await;
    let written = std::fs::read_to_string(dir.join(format!("audit-{:020}.jsonl", 1))).unwrap();
    assert_eq!(principals(&written), ["p0", "p1", "p2", "p3", "p4", "p5"]);
}

/// Gives the stalled sink a reader, checks that the `blocked` offer then goes in, closes
/// the trail and returns the principals of the records written, in order.
async fn unstall(audit: &Audit, fifo: std::path::PathBuf, blocked: tokio::task::JoinHandle<Admit>) -> Vec<String> {
    let reader = std::thread::spawn(move || std::fs::read(fifo).unwrap());
    assert_eq!(blocked.await.unwrap(), Admit::Queued);
    audit.close().await;
    principals(&String::from_utf8(reader.join().unwrap()).unwrap())
}

/// The principals of a trail file's records, in order.
fn principals(trail: &str) -> Vec<String> {
    trail
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["principal"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_refuses_or_blocks_as_the_policy_says() {
    let (dir, config) = stalled_sink("audit-overflow");
    let audit = Audit::start(config, 2, Coverage::All).unwrap();
    let fifo = stall(&dir);
    fill(&audit, 2).await;

    assert_eq!(audit.submit(record(10), AuditBackpressure::Drop).await, Admit::Dropped);
    assert_eq!(audit.submit(record(11), AuditBackpressure::Deny).await, Admit::Refused);
    let (_, dropped, refused, _) = audit.counters();
    assert_eq!((dropped, refused), (1, 1));

    let audit = std::sync::Arc::new(audit);
    let blocked = {
        let audit = audit.clone();
        tokio::spawn(async move { audit.submit(record(12), AuditBackpressure::Block).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!blocked.is_finished(), "block waits for room");

    // A reader appears: the sink drains, the blocked record goes in.
    assert_eq!(unstall(&audit, fifo, blocked).await, ["p0", "p1", "p2", "p12"]);
}

/// A `decisions` record of `n` decisions.
struct Group(usize);

impl Deferred for Group {
    fn render<'a>(&'a self, _: &'a mut String) -> AuditRecord<'a> {
        AuditRecord {
            kind: "decisions",
            principal: format!("g{}", self.0).into(),
            outcome: "deny",
            decisions: group(vec![AuditItem::default(); self.0]).1,
            ..AuditRecord::default()
        }
    }

    fn decisions(&self) -> usize {
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_decisions_takes_a_place_in_the_queue_per_decision() {
    let (dir, config) = stalled_sink("audit-group-places");
    let audit = Audit::start(config, 4, Coverage::All).unwrap();
    let fifo = stall(&dir);
    fill(&audit, 0).await;
    assert_eq!(
        audit.submit_deferred(Box::new(Group(3)), AuditBackpressure::Deny).await,
        Admit::Queued
    );
    assert_eq!(audit.queue_depth(), 3);
    // One place left: a group of two does not fit, a single record does.
    assert_eq!(
        audit.submit_deferred(Box::new(Group(2)), AuditBackpressure::Deny).await,
        Admit::Refused
    );
    assert_eq!(audit.submit(record(1), AuditBackpressure::Deny).await, Admit::Queued);
    let (_, _, refused, _) = audit.counters();
    assert_eq!(refused, 2, "refusals count decisions");
    // A group larger than the queue takes all of it (never more, or it would wait
    // forever): it waits until the queue is empty, then goes in.
    let audit = std::sync::Arc::new(audit);
    let big = {
        let audit = audit.clone();
        tokio::spawn(async move {
            audit
                .submit_deferred(Box::new(Group(9)), AuditBackpressure::Block)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!big.is_finished(), "block waits for room");
    assert_eq!(unstall(&audit, fifo, big).await, ["p0", "g3", "p1", "g9"]);
    assert_eq!(audit.counters().0, 1 + 3 + 1 + 9, "written counts decisions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_deny_policy_a_stalled_trail_turns_allows_into_denies() {
    let dir = temp_dir("audit-deny-policy");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| {
        let a = c.audit.as_mut().unwrap();
        a.queue = 1;
        // No fsync (which fails on a FIFO) until the stop, so the stalled writer never
        // falls back to recovering onto the FIFO's path.
        a.sync_every = Duration::from_secs(3600);
        c.metrics_listen = Some(([127, 0, 0, 1], port).into());
    })
    .await;
    let mut c = server.authz().await; // connected: the audit trail is open
    let fifo = stall(&dir.join("audit"));
    let mut reasons = vec![decide(&mut c, ann_reads()).await.reason];
    // The writer takes the first record (giving its place back) and blocks opening the
    // FIFO; wait for that, or a loaded machine's late writer refuses the next check too.
    for _ in 0..500 {
        if http_get(port, "/metrics")
            .await
            .contains("portcullis_audit_queue_depth 0\n")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..3 {
        reasons.push(decide(&mut c, ann_reads()).await.reason);
    }
    // clinic-portal sets `audit_on_backpressure: deny`: the second record fills the queue,
    // so the sensitive reads after it are denied rather than allowed without their record.
    assert_eq!(
        reasons,
        ["granted", "granted", "audit_unavailable", "audit_unavailable"]
    );
    // A CheckResources call's record does not fit either: every allow in it is denied.
    let ann = ann_reads();
    let resources = c
        .check_resources(pb::CheckResourcesRequest {
            principal: ann.principal.clone(),
            session: ann.session.clone(),
            at: ann.at,
            items: vec![pb::ResourceActions {
                resource: ann.resource.clone(),
                actions: vec!["read".into(), "read".into()],
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resources.decisions.len(), 2);
    for d in &resources.decisions {
        assert_eq!(d.reason(), pb::ReasonCode::AuditUnavailable, "{resources:?}");
        reasons.push("audit_unavailable".into());
    }
    // Each decision is counted once, as it was sent (A1): a forced deny is not also an allow.
    let body = http_get(port, "/metrics").await;
    let count = |reason: &str| reasons.iter().filter(|r| *r == reason).count();
    for (effect, reason, rule) in [("allow", "granted", "R2"), ("deny", "audit_unavailable", "A1")] {
        let want = format!(
            "portcullis_decisions_total{{effect=\"{effect}\",reason=\"{reason}\",requirement=\"{rule}\"}} {}",
            count(reason)
        );
        assert!(body.contains(&want), "missing `{want}` in\n{body}");
    }
    let reader = std::thread::spawn(move || std::fs::read(fifo).unwrap());
    server.stop().await.unwrap();
    reader.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_block_every_decision_is_recorded() {
    let dir = temp_dir("audit-block");
    let mut bundle = String::from_utf8(example("clinic-portal")).unwrap();
    bundle = bundle.replace("audit_on_backpressure: deny", "audit_on_backpressure: block");
    let seed = dir.join("seed.yaml");
    std::fs::write(&seed, bundle).unwrap();
    let server = TestServer::start_with(&dir.join("data"), None, |c| {
        c.seed_bundle = Some(seed.clone());
        let a = c.audit.as_mut().unwrap();
        a.all_decisions = true;
        a.queue = 16;
    })
    .await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut c = server.authz().await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                c.check(ann_reads()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    server.stop().await.unwrap();
    assert_eq!(
        verify(&dir.join("data").join("audit")).unwrap(),
        Ok(800),
        "800 decisions, 800 records"
    );
}

#[tokio::test]
async fn the_metrics_endpoint_exports_decisions_latency_version_and_audit() {
    let dir = temp_dir("metrics");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| {
        c.metrics_listen = Some(([127, 0, 0, 1], port).into())
    })
    .await;
    let mut c = server.authz().await;
    c.check(ann_reads()).await.unwrap();
    c.check(check("nobody", "read", "patient_record", "p", None))
        .await
        .unwrap();
    let body = http_get(port, "/metrics").await;
    for want in [
        "portcullis_decisions_total{effect=\"allow\",reason=\"granted\",requirement=\"R2\"} 1",
        "portcullis_decisions_total{effect=\"deny\",reason=\"unknown_principal\",requirement=\"R1\"} 1",
        "portcullis_rpc_duration_seconds_count{rpc=\"Check\"} 2",
        "portcullis_snapshot_version 1",
        "portcullis_audit_queue_depth",
        "portcullis_audit_records_total{result=\"dropped\"} 0",
    ] {
        assert!(body.contains(want), "missing `{want}` in\n{body}");
    }
    assert!(http_get(port, "/other").await.is_empty());
    server.stop().await.unwrap();
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    if head.starts_with("HTTP/1.1 200") {
        body.to_owned()
    } else {
        String::new()
    }
}
