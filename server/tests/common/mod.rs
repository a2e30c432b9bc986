//! A real server on an ephemeral loopback port, and real tonic clients, for integration tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers"
)]

pub mod pg;

use portcullis_proto::v1 as pb;
use portcullis_proto::v1::authorization_service_client::AuthorizationServiceClient;
use portcullis_proto::v1::policy_admin_service_client::PolicyAdminServiceClient;
use portcullis_server::clock::Clock;
use portcullis_server::serve::{ServeConfig, prepare, run};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Decision time the example tests use (2026-11-23T10:00:00Z): in-process test servers'
/// clocks read it.
pub const AT: i64 = 1_795_428_000;

pub struct TestServer {
    pub addr: SocketAddr,
    /// The AuthZEN HTTP binding's address (a free loopback port).
    pub http: SocketAddr,
    pub dir: PathBuf,
    /// The server's clock (reads `AT` until a test moves it).
    pub clock: Clock,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<anyhow::Result<()>>,
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("portcullis-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port nobody listens on (for servers started as child processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects to a server on a loopback port, waiting up to five seconds for it to come up.
pub async fn connect(port: u16) -> Channel {
    for _ in 0..200 {
        if let Ok(c) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("server on port {port} did not come up");
}

/// Path of an example bundle.
pub fn example_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(format!("{name}.yaml"))
}

/// Bytes of an example bundle.
pub fn example(name: &str) -> Vec<u8> {
    std::fs::read(example_path(name)).unwrap()
}

impl TestServer {
    /// Starts a server on `dir`, seeded with `seed` (an example name) when the directory is empty.
    pub async fn start(dir: &Path, seed: Option<&str>) -> TestServer {
        Self::start_with(dir, seed, |_| {}).await
    }

    /// Like `start`, with a chance to change the configuration.
    pub async fn start_with(dir: &Path, seed: Option<&str>, tweak: impl FnOnce(&mut ServeConfig)) -> TestServer {
        let mut cfg = ServeConfig::new(dir.to_path_buf());
        cfg.credentials
            .add_token("admin", ADMIN_TOKEN, &[portcullis_server::scopes::Scope::Admin]);
        let clock = Clock::manual(AT);
        cfg.time.clock = clock.clone();
        cfg.seed_bundle = seed.map(example_path);
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        cfg.http_listen = portcullis_server::serve::HttpListen::At(http);
        tweak(&mut cfg);
        let http_listen = cfg.http_listen;
        let engine = prepare(&mut cfg).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(run(cfg, engine, listener, async {
            let _ = rx.await;
        }));
        // The HTTP listener is bound inside `run`; wait until it answers.
        if matches!(http_listen, portcullis_server::serve::HttpListen::At(_)) {
            for _ in 0..500 {
                if tokio::net::TcpStream::connect(http).await.is_ok() || handle.is_finished() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        TestServer {
            addr,
            http,
            dir: dir.to_path_buf(),
            clock,
            shutdown: Some(tx),
            handle,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        connect(self.addr.port()).await
    }

    pub async fn authz(&self) -> AuthorizationServiceClient<Channel> {
        AuthorizationServiceClient::new(self.channel().await)
    }

    pub async fn admin(&self) -> PolicyAdminServiceClient<Channel> {
        PolicyAdminServiceClient::new(self.channel().await)
    }

    /// Graceful stop; returns what `run` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.await.unwrap()
    }
}

/// A request carrying the admin token.
pub fn admin<T>(message: T) -> tonic::Request<T> {
    with_token(message, ADMIN_TOKEN)
}

/// A request carrying a bearer token.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// A check as the clinic-portal tests phrase it: active session at `AT`.
pub fn check(principal: &str, action: &str, rtype: &str, id: &str, tenant: Option<&str>) -> pb::CheckRequest {
    pb::CheckRequest {
        principal: principal.into(),
        action: action.into(),
        resource: Some(pb::Resource {
            r#type: rtype.into(),
            id: id.into(),
            tenant: tenant.map(Into::into),
            ..Default::default()
        }),
        session: Some(pb::Session {
            authenticated_at: Some(AT - 600),
            last_activity: Some(AT - 60),
            factors: vec!["password".into()],
            ..Default::default()
        }),
        at: Some(AT),
        ..Default::default()
    }
}

/// Dr Ann reading a record of her clinic: allowed by the clinic-portal example.
pub fn ann_reads() -> pb::CheckRequest {
    check("dr-ann", "read", "patient_record", "p-1", Some("clinic-north"))
}

pub fn push_request(bundle: Vec<u8>) -> pb::PushSnapshotRequest {
    pb::PushSnapshotRequest {
        bundle,
        format: pb::BundleFormat::Yaml as i32,
        author: "test".into(),
        expected_parent_version: None,
        message: String::new(),
    }
}

/// The clinic-portal example without Dr Ann's clinician grant: Ann's reads deny.
pub fn clinic_without_ann() -> Vec<u8> {
    let text = String::from_utf8(example("clinic-portal")).unwrap();
    let out = text.replace("members: [dr-ann, nurse-cy]", "members: [nurse-cy]");
    assert_ne!(out, text);
    out.into_bytes()
}

/// Sends a check (a message or a request with metadata) and returns the decision.
pub async fn decide(
    client: &mut AuthorizationServiceClient<Channel>,
    request: impl tonic::IntoRequest<pb::CheckRequest>,
) -> pb::Decision {
    client.check(request).await.unwrap().into_inner().decision.unwrap()
}

/// Starts `portcullis serve` as a child process on `dir` and `port`, seeded with the clinic
/// example, with `extra` flags.
pub fn spawn_serve(dir: &Path, port: u16, extra: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-token",
            ADMIN_TOKEN,
        ])
        .args(extra)
        // Off unless a test asks for it: `beside` (gRPC port + 1000) may be taken here.
        .args(if extra.contains(&"--http-listen") {
            &[][..]
        } else {
            &["--http-listen", "off"][..]
        })
        .arg("--data-dir")
        .arg(dir)
        .arg("--bundle")
        .arg(example_path("clinic-portal"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

pub fn is_allow(d: &pb::Decision) -> bool {
    d.effect == pb::Effect::Allow as i32
}

/// Calls `path` with an empty message and, when given, a bearer token; the status code
/// (`Ok` when the call succeeded). Reaches every RPC without a client per service.
pub async fn call_empty(channel: Channel, path: &'static str, token: Option<&str>) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let request = match token {
        Some(t) => with_token((), t),
        None => tonic::Request::new(()),
    };
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc
        .unary(
            request,
            tonic::codegen::http::uri::PathAndQuery::from_static(path),
            codec,
        )
        .await
    {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

/// Whether a call was turned away for its credential, rather than reaching its handler.
pub fn refused(code: tonic::Code) -> bool {
    matches!(code, tonic::Code::Unauthenticated | tonic::Code::PermissionDenied)
}

/// Polls `f` until it returns true or `within` passes; returns how long it took.
pub async fn eventually<F, Fut>(within: std::time::Duration, mut f: F) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if f().await {
            return start.elapsed();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("not within {within:?}");
}

/// `principal` reading a north-clinic record at the server's time, in a session that
/// authenticated (and was last active) at `t`.
pub fn reads_at(principal: &str, t: i64) -> pb::CheckRequest {
    let mut r = check(principal, "read", "patient_record", "p-1", Some("clinic-north"));
    r.at = None;
    r.session = Some(pb::Session {
        authenticated_at: Some(t),
        last_activity: Some(t),
        factors: vec!["password".into()],
        ..Default::default()
    });
    r
}

/// An engine session on the wire, field for field.
pub fn wire_session(s: &portcullis_policy::Session) -> pb::Session {
    pb::Session {
        authenticated_at: s.authenticated_at.map(|t| t.0),
        last_activity: s.last_activity.map(|t| t.0),
        factors: s
            .factors
            .iter()
            .map(|f| serde_json::to_value(f).unwrap().as_str().unwrap().to_owned())
            .collect(),
        elevated_role: s.elevated_role.clone(),
        elevated_at: s.elevated_at.map(|t| t.0),
        network: s.network.clone(),
        co_signer: s.co_signer.clone(),
        break_glass_reason: s.break_glass_reason.clone(),
        acting_as: s.acting_as.clone(),
    }
}

/// An engine resource on the wire, field for field.
pub fn wire_resource(r: &portcullis_policy::Resource) -> pb::Resource {
    pb::Resource {
        r#type: r.resource_type.clone(),
        id: r.id.clone(),
        tenant: r.tenant.clone(),
        attributes: r.attributes.clone().into_iter().collect(),
    }
}

/// A random request's session made fresh at its time, with a second factor (and a fresh
/// elevation when it has one): most random sessions fail before any grant is looked at.
pub fn freshen(r: &mut portcullis_policy::Request) {
    use portcullis_policy::{Factor, Timestamp};
    let at = r.at.unwrap();
    r.session.authenticated_at = Some(Timestamp(at.0 - 60));
    r.session.last_activity = Some(at);
    r.session.factors = vec![Factor::Password, Factor::Totp];
    if r.session.elevated_at.is_some() {
        r.session.elevated_at = Some(Timestamp(at.0 - 30));
    }
}

/// Every record of an audit directory, in chain order, as JSON.
pub fn audit_records(dir: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<serde_json::Value>>()
        })
        .collect()
}

/// An engine request on the wire, field for field.
pub fn wire_request(r: &portcullis_policy::Request) -> pb::CheckRequest {
    pb::CheckRequest {
        principal: r.principal.clone(),
        action: r.action.clone(),
        resource: Some(wire_resource(&r.resource)),
        session: Some(wire_session(&r.session)),
        at: r.at.map(|t| t.0),
        ..Default::default()
    }
}
