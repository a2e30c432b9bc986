//! The AuthZEN 1.0 HTTP binding, driven with a real HTTP client against a real server:
//! for random requests an evaluation equals the gRPC Check, evaluations equal BatchCheck
//! under each semantic, the searches equal the gRPC listings, and the status discipline
//! (400 naming the field, 401, 403, 413, 429) holds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use portcullis_policy::synth::{random_request, rng};
use portcullis_policy::{Format, Request, parse_bundle};
use portcullis_proto::v1 as pb;
use serde_json::{Value, json};

/// An HTTP/1.1 keep-alive client for one server.
struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    fn new(server: &TestServer) -> Http {
        Http {
            client: Client::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
            base: format!("http://{}", server.http),
        }
    }

    async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let response = self
            .client
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
        (status, value)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.send("POST", path, token, serde_json::to_vec(body).unwrap()).await
    }
}

fn clinic() -> portcullis_policy::Bundle {
    parse_bundle(&example("clinic-portal"), Format::Yaml).unwrap()
}

fn rfc3339(t: portcullis_policy::Timestamp) -> String {
    t.to_string()
}

/// The AuthZEN spelling of an engine request: times as RFC 3339 or Unix seconds (both
/// are accepted), everything the session says under the proto's field names.
fn authzen(r: &Request, unix_times: bool) -> Value {
    let time = |t: portcullis_policy::Timestamp| if unix_times { json!(t.0) } else { json!(rfc3339(t)) };
    let mut context = serde_json::Map::new();
    let s = &r.session;
    if let Some(t) = s.authenticated_at {
        context.insert("authenticated_at".into(), time(t));
    }
    if let Some(t) = s.last_activity {
        context.insert("last_activity".into(), time(t));
    }
    if let Some(t) = s.elevated_at {
        context.insert("elevated_at".into(), time(t));
    }
    if !s.factors.is_empty() {
        context.insert("factors".into(), serde_json::to_value(&s.factors).unwrap());
    }
    for (k, v) in [
        ("elevated_role", &s.elevated_role),
        ("network", &s.network),
        ("co_signer", &s.co_signer),
        ("break_glass_reason", &s.break_glass_reason),
        ("acting_as", &s.acting_as),
    ] {
        if let Some(v) = v {
            context.insert(k.into(), json!(v));
        }
    }
    if let Some(t) = r.at {
        context.insert("at".into(), time(t));
    }
    let mut properties = serde_json::Map::new();
    if let Some(t) = &r.resource.tenant {
        properties.insert("tenant".into(), json!(t));
    }
    for (k, v) in &r.resource.attributes {
        properties.insert(k.clone(), json!(v));
    }
    json!({
        "subject": {"type": "user", "id": r.principal},
        "action": {"name": r.action},
        "resource": {"type": r.resource.resource_type, "id": r.resource.id, "properties": properties},
        "context": context,
    })
}

/// What must agree between the two transports.
fn summary(d: &pb::Decision) -> Value {
    json!({
        "decision": d.effect == pb::Effect::Allow as i32,
        "reason": d.reason, "requirement": d.requirement, "rule": d.rule, "version": d.version,
    })
}

fn summary_of(v: &Value) -> Value {
    let c = &v["context"];
    json!({
        "decision": v["decision"], "reason": c["reason"], "requirement": c["requirement"],
        "rule": c.get("rule").cloned().unwrap_or(json!("")), "version": c["version"],
    })
}

/// Random requests on the clinic example, asked as an admin so their times are honoured.
/// Two in three get a fresh session with MFA: most random sessions are refused as
/// impossible or fail before any grant is looked at.
fn requests(seed: u64, n: usize) -> Vec<Request> {
    let bundle = clinic();
    let mut rng = rng(seed);
    (0..n)
        .map(|i| {
            let mut r = random_request(&bundle, &mut rng);
            if i % 3 != 0 {
                freshen(&mut r);
            }
            r
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluation_equals_the_grpc_check_for_random_requests() {
    let dir = temp_dir("authzen-eval");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| c.audit = None).await;
    let http = Http::new(&server);
    let mut authz = server.authz().await;
    let (mut allowed, mut refused) = (0, 0);
    for (i, r) in requests(11, 400).iter().enumerate() {
        let grpc_answer = authz.check(admin(wire_request(r))).await;
        let (status, body) = http
            .post("/access/v1/evaluation", Some(ADMIN_TOKEN), &authzen(r, i % 2 == 0))
            .await;
        match grpc_answer {
            Ok(resp) => {
                let d = resp.into_inner().decision.unwrap();
                assert_eq!(status, 200, "{body}");
                assert_eq!(
                    summary_of(&body),
                    summary(&d),
                    "request {}",
                    serde_json::to_string(r).unwrap()
                );
                allowed += usize::from(is_allow(&d));
            }
            Err(s) => {
                // The same refusal, as its HTTP status, with the same message.
                assert_eq!(status, portcullis_server::status::http_status(s.code()), "{body}");
                assert_eq!(body["error"]["message"], s.message(), "{body}");
                refused += 1;
            }
        }
    }
    // Enough of each kind for the comparison to mean something.
    assert!(
        allowed >= 20 && refused <= 200,
        "{allowed} allowed, {refused} refused of 400"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluations_equal_batch_check_under_each_semantic() {
    let dir = temp_dir("authzen-evals");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| c.audit = None).await;
    let http = Http::new(&server);
    let mut authz = server.authz().await;
    for round in 0..12u64 {
        // Requests the server accepts (a random session may be refused as impossible).
        let mut batch = Vec::new();
        for r in requests(100 + round, 40) {
            if authz.check(admin(wire_request(&r))).await.is_ok() {
                batch.push(r);
            }
            if batch.len() == 10 {
                break;
            }
        }
        let expected: Vec<Value> = authz
            .batch_check(admin(pb::BatchCheckRequest {
                requests: batch.iter().map(wire_request).collect(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .decisions
            .iter()
            .map(summary)
            .collect();
        // Items give only what differs from the defaults: the first request's subject
        // and context are the top-level defaults, every item names its resource.
        let first = authzen(&batch[0], false);
        let items: Vec<Value> = batch
            .iter()
            .map(|r| {
                let mut item = authzen(r, false);
                let map = item.as_object_mut().unwrap();
                if map["subject"] == first["subject"] {
                    map.remove("subject");
                }
                if map["context"] == first["context"] {
                    map.remove("context");
                }
                item
            })
            .collect();
        for (semantic, stop_on) in [
            ("execute_all", None),
            ("deny_on_first_deny", Some(false)),
            ("permit_on_first_permit", Some(true)),
        ] {
            let body = json!({
                "subject": first["subject"], "context": first["context"],
                "evaluations": items, "options": {"evaluations_semantic": semantic},
            });
            let (status, got) = http.post("/access/v1/evaluations", Some(ADMIN_TOKEN), &body).await;
            assert_eq!(status, 200, "{got}");
            let got: Vec<Value> = got["evaluations"].as_array().unwrap().iter().map(summary_of).collect();
            let want: Vec<Value> = match stop_on {
                None => expected.clone(),
                Some(stop) => {
                    let end = expected
                        .iter()
                        .position(|d| d["decision"] == json!(stop))
                        .map_or(expected.len(), |i| i + 1);
                    expected[..end].to_vec()
                }
            };
            assert_eq!(got, want, "round {round}, {semantic}");
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn searches_equal_the_grpc_listings_and_checks() {
    let dir = temp_dir("authzen-search");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let http = Http::new(&server);
    let mut authz = server.authz().await;
    // Subject search: the usable paths ListSubjects lists, paged one at a time.
    let listed = authz
        .list_subjects(admin(pb::ListSubjectsRequest {
            action: "read".into(),
            resource_type: "patient_record".into(),
            tenant: Some("clinic-north".into()),
            usable_only: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mut want: Vec<String> = listed.paths.into_iter().map(|p| p.principal).collect();
    want.sort();
    want.dedup();
    assert!(want.len() >= 2, "{want:?}");
    let (mut got, mut token) = (Vec::new(), String::new());
    loop {
        let body = json!({
            "subject": {"type": "user"}, "action": {"name": "read"},
            "resource": {"type": "patient_record", "properties": {"tenant": "clinic-north"}},
            "page": {"next_token": token, "limit": 1},
        });
        let (status, page) = http.post("/access/v1/search/subject", Some(ADMIN_TOKEN), &body).await;
        assert_eq!(status, 200, "{page}");
        for r in page["results"].as_array().unwrap() {
            assert_eq!(r["type"], "user");
            got.push(r["id"].as_str().unwrap().to_owned());
        }
        token = page["page"]["next_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(got, want);

    // Action search: exactly the actions whose check allows.
    let ann = ann_reads();
    let ctx = json!({"authenticated_at": AT - 600, "last_activity": AT - 60, "factors": ["password", "totp"]});
    let resource = json!({"type": "patient_record", "id": "p-1", "properties": {"tenant": "clinic-north"}});
    let (status, actions) = http
        .post(
            "/access/v1/search/action",
            None,
            &json!({"subject": {"type": "user", "id": ann.principal}, "resource": resource, "context": ctx}),
        )
        .await;
    assert_eq!(status, 200, "{actions}");
    let found: Vec<&str> = actions["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    let mut allowed = Vec::new();
    for action in ["read", "write", "export", "delete"] {
        let mut r = ann.clone();
        r.action = action.into();
        let d = authz.check(r).await;
        if d.is_ok_and(|d| is_allow(&d.into_inner().decision.unwrap())) {
            allowed.push(action);
        }
    }
    assert!(!allowed.is_empty());
    assert!(allowed.iter().all(|a| found.contains(a)), "{found:?} vs {allowed:?}");
    assert_eq!(found.len(), allowed.len(), "{found:?} vs {allowed:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_precise_statuses_and_errors_name_the_field() {
    let dir = temp_dir("authzen-status");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| {
        c.credentials
            .add_token("svc", "check-token", &[portcullis_server::scopes::Scope::Check]);
        c.limits.max_message_bytes = 64 << 10;
    })
    .await;
    let http = Http::new(&server);
    let good = json!({
        "subject": {"type": "user", "id": "dr-ann"}, "action": {"name": "read"},
        "resource": {"type": "patient_record", "id": "p-1", "properties": {"tenant": "clinic-north"}},
        "context": {"authenticated_at": AT - 600, "last_activity": AT - 60},
    });
    let (status, body) = http.post("/access/v1/evaluation", Some("check-token"), &good).await;
    assert_eq!((status, &body["decision"]), (200, &json!(true)), "{body}");
    assert_eq!(body["context"]["reason"], "granted");

    // 401: a check credential exists, so checks need one.
    let (status, body) = http.post("/access/v1/evaluation", None, &good).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated")),
        "{body}"
    );
    let (status, _) = http.post("/access/v1/evaluation", Some("wrong"), &good).await;
    assert_eq!(status, 401);
    // 403: a check credential may not search subjects (review data).
    let search = json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "patient_record", "id": "p-1"}});
    let (status, body) = http
        .post("/access/v1/search/subject", Some("check-token"), &search)
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("`review` scope"),
        "{body}"
    );
    // 400 naming the field: an unknown session fact, a bad time, a missing part, bad JSON.
    let mut unknown = good.clone();
    unknown["context"]["mfa"] = json!(true);
    let (status, body) = http.post("/access/v1/evaluation", Some("check-token"), &unknown).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("context.mfa")),
        "{body}"
    );
    let mut bad_time = good.clone();
    bad_time["context"]["last_activity"] = json!("soon");
    let (status, body) = http.post("/access/v1/evaluation", Some("check-token"), &bad_time).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("context.last_activity")),
        "{body}"
    );
    let (status, body) = http
        .post(
            "/access/v1/evaluations",
            Some("check-token"),
            &json!({"evaluations": [{"resource": good["resource"]}]}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("evaluations[0].subject")),
        "{body}"
    );
    let (status, body) = http
        .send(
            "POST",
            "/access/v1/evaluation",
            Some("check-token"),
            b"{\"subject\":".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // The server owns the clock (R9): a caller's time outside the skew is refused.
    let mut moved = good.clone();
    moved["context"]["at"] = json!(AT - 3_600);
    let (status, body) = http.post("/access/v1/evaluation", Some("check-token"), &moved).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("`at`"), "{body}");
    // 413: a body over the message limit.
    let (status, _) = http
        .send(
            "POST",
            "/access/v1/evaluation",
            Some("check-token"),
            vec![b' '; 100 << 10],
        )
        .await;
    assert_eq!(status, 413);
    // Metadata, without a credential.
    let (status, meta) = http
        .send("GET", "/.well-known/authzen-configuration", None, Vec::new())
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        meta["access_evaluation_endpoint"],
        format!("http://{}/access/v1/evaluation", server.http)
    );
    // The decision over HTTP is in the audit trail, naming the transport and credential.
    server.stop().await.unwrap();
    let trail = audit_lines(&dir);
    assert!(
        trail.iter().any(|r| r["kind"] == "decision"
            && r["client"].as_str().unwrap().starts_with("authzen ")
            && r["client"].as_str().unwrap().contains("credential:svc")),
        "{trail:#?}"
    );
    assert!(
        trail
            .iter()
            .any(|r| r["kind"] == "refused" && r["action"] == "/access/v1/search/subject")
    );
}

#[tokio::test]
async fn overload_is_refused_with_429() {
    let dir = temp_dir("authzen-shed");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |c| c.max_concurrent_decisions = 0).await;
    let http = Http::new(&server);
    let (status, body) = http
        .post(
            "/access/v1/evaluation",
            None,
            &json!({"subject": {"id": "dr-ann"}, "action": {"name": "read"}, "resource": {"type": "patient_record", "id": "p"}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("resource_exhausted")),
        "{body}"
    );
    server.stop().await.unwrap();
}

/// Every record of the audit trail in `dir/audit`.
fn audit_lines(dir: &std::path::Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        for line in std::fs::read_to_string(f).unwrap_or_default().lines() {
            if let Ok(v) = serde_json::from_str(line) {
                out.push(v);
            }
        }
    }
    out
}

#[tokio::test]
async fn resource_search_lists_the_granted_ids_whose_check_allows() {
    let dir = temp_dir("authzen-resources");
    let server = TestServer::start(&dir, Some("research-study")).await;
    let http = Http::new(&server);
    let mut authz = server.authz().await;
    let ctx = json!({"authenticated_at": AT - 600, "last_activity": AT - 60});
    let body = json!({
        "subject": {"type": "user", "id": "site-yan"}, "action": {"name": "read"},
        "resource": {"type": "case_report"}, "context": ctx, "page": {"limit": 2},
    });
    let (mut found, mut token) = (Vec::new(), String::new());
    loop {
        let mut page_body = body.clone();
        page_body["page"]["next_token"] = json!(token);
        let (status, page) = http.post("/access/v1/search/resource", None, &page_body).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["context"]["filter"]["kind"], "some", "{page}");
        for r in page["results"].as_array().unwrap() {
            assert_eq!(r["type"], "case_report");
            found.push(r["id"].as_str().unwrap().to_owned());
        }
        token = page["page"]["next_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    // Exactly the ids whose check allows: her site's reports, not the lapsed extra one (R7).
    let mut allowed = Vec::new();
    for id in ["1201", "1202", "1203", "1401"] {
        let d = authz
            .check(check("site-yan", "read", "case_report", id, None))
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap();
        if is_allow(&d) {
            allowed.push(id.to_owned());
        }
    }
    assert_eq!(found, allowed);
    assert_eq!(found, ["1201", "1202", "1203"]);
    server.stop().await.unwrap();
}
