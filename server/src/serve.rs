//! `portcullis serve`: configuration, startup, the gRPC server and graceful shutdown.

use crate::api::{AdminApi, AuthorizationApi, Limits, Telemetry};
use crate::audit::{Audit, Coverage, SinkConfig};
use crate::auth::generate_token;
use crate::clock::TimePolicy;
use crate::coalesce::Coalesced;
use crate::edge::EdgeLayer;
use crate::engine::{Engine, EngineError, Push};
use crate::metrics::{Metrics, MetricsExport};
use crate::scopes::{AccessLayer, AccessPolicy, Credentials, Scope};
use crate::store::{StoreError, write_private};
use anyhow::{Context, Result, bail};
use portcullis_policy::Format;
use portcullis_proto::v1::authorization_service_server::AuthorizationServiceServer;
use portcullis_proto::v1::policy_admin_service_server::PolicyAdminServiceServer;
use serde::Deserialize;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

/// Service names reported by `grpc.health.v1`.
pub const SERVICE_NAMES: [&str; 2] = ["portcullis.v1.AuthorizationService", "portcullis.v1.PolicyAdminService"];

/// The config file (TOML). Every field is optional; flags and environment variables win.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Store of record: a `postgres://` URL for a fleet; unset for the data directory.
    pub store: Option<String>,
    /// How often a replica polls its shared store besides listening, e.g. `5s`.
    pub store_poll_interval: Option<String>,
    /// How long a replica cut off from its shared store keeps deciding, e.g. `30s` (`0s`: no bound).
    pub store_max_staleness: Option<String>,
    /// Longest wait for `min_version` / `min_overlay_seq` to arrive, e.g. `1s`.
    pub consistency_wait: Option<String>,
    /// How often observed logins (R7) are written to the store and read back, e.g. `3s`.
    pub activity_sync_interval: Option<String>,
    /// Decision calls in flight past which more are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_decisions: Option<usize>,
    /// Accepted admin tokens (scope `admin`), as hex SHA-256 digests (`portcullis token-digest`).
    #[serde(default)]
    pub admin_token_sha256: Vec<String>,
    /// Accepted check tokens (scope `check`); when any is set, check calls need a credential.
    #[serde(default)]
    pub check_token_sha256: Vec<String>,
    /// Named credentials with their scopes: `[[credentials]]` tables.
    #[serde(default)]
    pub credentials: Vec<CredentialConfig>,
    /// Admit check calls without a credential on a non-loopback listener when no check
    /// credential is configured (refused by default).
    pub allow_open_checks: Option<bool>,
    /// TLS certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) client certificates must chain to (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
    /// Allow plaintext on a non-loopback address.
    pub insecure: Option<bool>,
    /// Most requests per BatchCheck.
    pub max_batch: Option<usize>,
    /// Largest bundle accepted, bytes.
    pub max_bundle_bytes: Option<usize>,
    /// Largest check-service message, bytes.
    pub max_message_bytes: Option<usize>,
    /// Deadline for any request, e.g. `10s`.
    pub request_timeout: Option<String>,
    /// Largest accepted distance between a caller's times and the server clock, e.g. `5s`.
    pub max_clock_skew: Option<String>,
    /// This replica's id in audit records (default: the host name).
    pub replica_id: Option<String>,
    /// Log as JSON lines.
    pub log_json: Option<bool>,
    /// Prometheus endpoint address.
    pub metrics_listen: Option<SocketAddr>,
    /// AuthZEN HTTP binding: an address, `off`, or `beside` (the default: loopback, the
    /// gRPC port + 1000).
    pub http_listen: Option<String>,
    /// OTLP/gRPC collector for traces, e.g. `http://127.0.0.1:4317`.
    pub otlp_endpoint: Option<String>,
    /// Audit trail directory.
    pub audit_dir: Option<PathBuf>,
    /// Audit every decision.
    pub audit_all_decisions: Option<bool>,
    /// Audit queue capacity.
    pub audit_queue: Option<usize>,
    /// Longest wait for the audit fsync, e.g. `100ms`.
    pub audit_sync_every: Option<String>,
}

/// Where the AuthZEN HTTP binding listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpListen {
    /// Loopback, on the gRPC port + 1000 (an ephemeral port when gRPC's is).
    Beside,
    /// Not at all.
    Off,
    /// This address.
    At(SocketAddr),
}

impl HttpListen {
    /// `off`, `beside` or an address.
    pub fn parse(text: &str) -> Result<HttpListen> {
        match text.trim() {
            "off" => Ok(HttpListen::Off),
            "beside" => Ok(HttpListen::Beside),
            addr => addr
                .parse()
                .map(HttpListen::At)
                .map_err(|e| anyhow::anyhow!("`{addr}` is not `off`, `beside` or an address: {e}")),
        }
    }

    /// The address for a gRPC server on `grpc`, if any.
    pub fn resolve(self, grpc: SocketAddr) -> Option<SocketAddr> {
        match self {
            HttpListen::Off => None,
            HttpListen::At(a) => Some(a),
            HttpListen::Beside => {
                let port = if grpc.port() == 0 {
                    0
                } else {
                    grpc.port().checked_add(1000)?
                };
                Some(SocketAddr::from(([127, 0, 0, 1], port)))
            }
        }
    }
}

/// Everything `serve` needs, after flags, environment and file are merged.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory: the store (unless `store` is set), the audit trail, the admin token.
    pub data_dir: PathBuf,
    /// PostgreSQL URL of a shared store; `None` for the data directory.
    pub store: Option<String>,
    /// Poll interval of a shared store.
    pub store_poll_interval: Duration,
    /// Bound on deciding without hearing from a shared store (zero: none).
    pub store_max_staleness: Duration,
    /// Longest wait for a request's `min_version` or `min_overlay_seq`.
    pub consistency_wait: Duration,
    /// How often observed logins (R7) are shared through the store.
    pub activity_sync_interval: Duration,
    /// Decision calls in flight past which more are shed.
    pub max_concurrent_decisions: usize,
    /// Bundle that seeds an empty store.
    pub seed_bundle: Option<PathBuf>,
    /// Who may call what (tokens and client certificates with their scopes).
    pub credentials: Credentials,
    /// Admit check calls without a credential on a non-loopback listener when no check
    /// credential is configured.
    pub allow_open_checks: bool,
    /// TLS identity and optional client CA.
    pub tls: Option<TlsFiles>,
    /// Allow plaintext on a non-loopback address.
    pub insecure: bool,
    /// Input limits.
    pub limits: Limits,
    /// Request deadline.
    pub request_timeout: Duration,
    /// The server's clock and how far callers' times may stray from it.
    pub time: TimePolicy,
    /// This replica's id in audit records.
    pub replica_id: String,
    /// Audit trail settings; `None` turns it off.
    pub audit: Option<AuditSettings>,
    /// Address of the Prometheus endpoint, when wanted.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the AuthZEN HTTP binding listens.
    pub http_listen: HttpListen,
    /// OTLP/gRPC collector that RPC spans are exported to, when wanted.
    pub otlp_endpoint: Option<String>,
}

/// Where and how the audit trail is written (A1).
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Directory of the chained JSON-lines files (default `DATA/audit`).
    pub dir: Option<PathBuf>,
    /// Record every decision, not only those A1 requires.
    pub all_decisions: bool,
    /// Queue capacity between the check path and the sink.
    pub queue: usize,
    /// Longest wait for fsync.
    pub sync_every: Duration,
    /// Rotate past this size.
    pub max_file_bytes: u64,
    /// Rotate past this age.
    pub max_file_age: Duration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            dir: None,
            all_decisions: false,
            queue: 65_536,
            sync_every: Duration::from_millis(100),
            max_file_bytes: 64 << 20,
            max_file_age: Duration::from_secs(86_400),
        }
    }
}

/// TLS material on disk.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// Client CA for mutual TLS (PEM).
    pub client_ca: Option<PathBuf>,
}

/// Concurrent HTTP/2 streams one connection may open.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 1024;

/// Largest header list a request may carry (tokens, trace context and metadata fit easily).
pub const MAX_HEADER_LIST_BYTES: u32 = 16 << 10;

/// One `[[credentials]]` entry: a token digest or a client certificate name, and scopes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// Shown in audit records and refusals.
    pub name: String,
    /// Hex SHA-256 of the bearer token.
    pub token_sha256: Option<String>,
    /// A client certificate's subject common name, or a DNS or URI alternative name.
    pub certificate: Option<String>,
    /// `check`, `review`, `admin`.
    pub scopes: Vec<String>,
}

impl ServeConfig {
    /// Defaults: loopback port 50051, `./data`, no tokens (one is generated), no TLS.
    pub fn new(data_dir: PathBuf) -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir,
            store: None,
            store_poll_interval: Duration::from_secs(5),
            store_max_staleness: Duration::from_secs(30),
            consistency_wait: Duration::from_secs(1),
            activity_sync_interval: Duration::from_secs(3),
            max_concurrent_decisions: crate::edge::default_max_decisions(),
            seed_bundle: None,
            credentials: Credentials::default(),
            allow_open_checks: false,
            tls: None,
            insecure: false,
            limits: Limits::default(),
            request_timeout: Duration::from_secs(10),
            time: TimePolicy::default(),
            replica_id: hostname(),
            audit: Some(AuditSettings::default()),
            metrics_listen: None,
            http_listen: HttpListen::Beside,
            otlp_endpoint: None,
        }
    }

    /// Adds one `[[credentials]]` entry.
    fn add_credential(&mut self, c: &CredentialConfig) -> Result<()> {
        let scopes = c
            .scopes
            .iter()
            .map(|s| Scope::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("credential `{}`: {e}", c.name))?;
        if scopes.is_empty() {
            bail!("credential `{}` has no scopes", c.name);
        }
        match (&c.token_sha256, &c.certificate) {
            (Some(d), None) => self
                .credentials
                .add_token_digest(&c.name, d, &scopes)
                .map_err(|e| anyhow::anyhow!("credential `{}`: {e}", c.name))?,
            (None, Some(subject)) => self.credentials.add_certificate(&c.name, subject, &scopes),
            _ => bail!(
                "credential `{}` needs exactly one of `token_sha256` and `certificate`",
                c.name
            ),
        }
        Ok(())
    }

    /// Applies a config file's settings.
    pub fn apply_file(&mut self, file: FileConfig) -> Result<()> {
        if let Some(l) = file.listen {
            self.listen = l;
        }
        if let Some(d) = file.data_dir {
            self.data_dir = d;
        }
        if file.store.is_some() {
            self.store = file.store;
        }
        let duration = |key: &str, text: &str| {
            humantime::parse_duration(text).with_context(|| format!("{key} `{text}` is not a duration"))
        };
        if let Some(t) = &file.store_poll_interval {
            self.store_poll_interval = duration("store_poll_interval", t)?;
        }
        if let Some(t) = &file.store_max_staleness {
            self.store_max_staleness = duration("store_max_staleness", t)?;
        }
        if let Some(t) = &file.consistency_wait {
            self.consistency_wait = duration("consistency_wait", t)?;
        }
        if let Some(t) = &file.activity_sync_interval {
            self.activity_sync_interval = duration("activity_sync_interval", t)?;
            if self.activity_sync_interval.is_zero() {
                bail!("activity_sync_interval must be longer than zero");
            }
        }
        for d in &file.admin_token_sha256 {
            self.credentials
                .add_token_digest("admin", d, &[Scope::Admin])
                .map_err(anyhow::Error::msg)?;
        }
        for d in &file.check_token_sha256 {
            self.credentials
                .add_token_digest("check", d, &[Scope::Check])
                .map_err(anyhow::Error::msg)?;
        }
        for c in &file.credentials {
            self.add_credential(c)?;
        }
        self.allow_open_checks |= file.allow_open_checks.unwrap_or(false);
        if let Some(n) = file.max_concurrent_decisions {
            if n == 0 {
                bail!("max_concurrent_decisions must be at least 1");
            }
            self.max_concurrent_decisions = n;
        }
        match (file.tls_cert, file.tls_key) {
            (Some(cert), Some(key)) => {
                self.tls = Some(TlsFiles {
                    cert,
                    key,
                    client_ca: file.tls_client_ca,
                })
            }
            (None, None) => {}
            _ => bail!("`tls_cert` and `tls_key` go together"),
        }
        self.insecure |= file.insecure.unwrap_or(false);
        if let Some(n) = file.max_batch {
            self.limits.max_batch = n;
        }
        if let Some(n) = file.max_bundle_bytes {
            self.limits.max_bundle_bytes = n;
        }
        if let Some(n) = file.max_message_bytes {
            self.limits.max_message_bytes = n;
        }
        if file.metrics_listen.is_some() {
            self.metrics_listen = file.metrics_listen;
        }
        if let Some(h) = &file.http_listen {
            self.http_listen = HttpListen::parse(h).context("config `http_listen`")?;
        }
        if file.otlp_endpoint.is_some() {
            self.otlp_endpoint = file.otlp_endpoint;
        }
        if let Some(a) = &mut self.audit {
            a.dir = file.audit_dir.or(a.dir.take());
            a.all_decisions |= file.audit_all_decisions.unwrap_or(false);
            a.queue = file.audit_queue.unwrap_or(a.queue);
            if let Some(t) = file.audit_sync_every {
                a.sync_every = humantime::parse_duration(&t).with_context(|| format!("audit_sync_every `{t}`"))?;
            }
        }
        if let Some(r) = file.replica_id {
            self.replica_id = r;
        }
        if let Some(t) = file.max_clock_skew {
            self.set_max_clock_skew(&t)?;
        }
        if let Some(t) = file.request_timeout {
            self.request_timeout = humantime::parse_duration(&t).with_context(|| format!("request_timeout `{t}`"))?;
        }
        Ok(())
    }

    /// Sets `max_clock_skew` from text such as `5s`.
    pub fn set_max_clock_skew(&mut self, text: &str) -> Result<()> {
        let d = humantime::parse_duration(text).with_context(|| format!("max_clock_skew `{text}`"))?;
        if d > Duration::from_secs(3_600) {
            bail!("max_clock_skew `{text}` is over one hour: callers could move time past idle logoff (R9)");
        }
        self.time.max_skew = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Ok(())
    }

    /// Reads a TOML config file.
    pub fn read_file(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        toml::from_str(&text).with_context(|| format!("`{}`", path.display()))
    }
}

/// Opens the store (waiting for PostgreSQL while it is unreachable), seeds it if it is
/// empty, and makes sure an admin token exists.
pub async fn prepare(cfg: &mut ServeConfig) -> Result<Arc<Engine>> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data directory `{}`", cfg.data_dir.display()))?;
    let engine = Arc::new(open_engine(cfg).await?);
    if engine.live().is_none()
        && engine.store().head().await? == 0
        && let Some(seed) = &cfg.seed_bundle
    {
        seed_store(&engine, seed).await?;
    }
    if !cfg.credentials.any_with(Scope::Admin) {
        let path = cfg.data_dir.join("admin-token");
        let token = match std::fs::read_to_string(&path) {
            Ok(t) => t.trim().to_owned(),
            Err(_) => {
                let t = generate_token();
                write_private(&path, t.as_bytes())?;
                t
            }
        };
        cfg.credentials.add_token("admin", &token, &[Scope::Admin]);
        tracing::warn!(
            "no admin token configured; using the one in {} (readable by its owner only)",
            path.display()
        );
    }
    Ok(engine)
}

/// Opens the store and loads the engine from it, retrying while the store is unreachable.
async fn open_engine(cfg: &ServeConfig) -> Result<Engine> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let opened = async {
            let store = crate::store::open(cfg.store.as_deref(), &cfg.data_dir).await?;
            Engine::open(store, cfg.time.clock.clone(), cfg.store_max_staleness).await
        }
        .await;
        match opened {
            Ok(engine) => {
                tracing::info!(store = %engine.store().describe(), version = engine.version(), "store opened");
                return Ok(engine);
            }
            Err(EngineError::Store(StoreError::Unavailable(why))) => {
                tracing::warn!("waiting for the store: {why}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(anyhow::Error::from(e).context("cannot open the store")),
        }
    }
}

/// Pushes the seed bundle as version 1, once: a compare-and-swap on "nothing live", so of
/// replicas starting together on an empty store exactly one seeds it.
async fn seed_store(engine: &Engine, seed: &Path) -> Result<()> {
    let bytes = std::fs::read(seed).with_context(|| format!("cannot read `{}`", seed.display()))?;
    let pushed = engine
        .push(Push {
            bundle: bytes,
            format: Format::from_path(&seed.to_string_lossy()),
            author: "seed".to_owned(),
            expected_parent: Some(0),
            message: format!("seeded from {}", seed.display()),
            rollback_of: None,
        })
        .await;
    match pushed {
        Ok(meta) => tracing::info!(version = meta.version, "seeded the store from {}", seed.display()),
        Err(EngineError::Conflict { live, .. }) => {
            tracing::info!(version = live, "another replica seeded the store first")
        }
        Err(e) => return Err(anyhow::Error::from(e).context(format!("seed bundle `{}` was rejected", seed.display()))),
    }
    Ok(())
}

/// Runs the server on `listener` until `shutdown` completes, then finishes in-flight calls.
pub async fn run(
    cfg: ServeConfig,
    engine: Arc<Engine>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let addr = listener.local_addr()?;
    if cfg.tls.is_none() && !addr.ip().is_loopback() && !cfg.insecure {
        bail!("refusing to serve plaintext on non-loopback address {addr}: configure TLS or pass --insecure");
    }
    let open_checks = !cfg.credentials.any_for_checks();
    if open_checks && !addr.ip().is_loopback() && !cfg.allow_open_checks {
        bail!(
            "refusing to serve checks without a credential on non-loopback address {addr}: configure a check token or credential, or pass --allow-open-checks"
        );
    }
    let export = Arc::new(MetricsExport::new(
        cfg.metrics_listen.is_some(),
        cfg.otlp_endpoint.as_deref(),
    )?);
    let telemetry = Telemetry {
        spans: cfg.otlp_endpoint.is_some(),
        metrics: Arc::new(Metrics::new(&export.meter())),
        audit: start_audit(&cfg)?,
        replica: cfg.replica_id.as_str().into(),
    };
    export.observe(&telemetry.metrics, &engine, telemetry.audit.as_ref());
    if let Some(addr) = cfg.metrics_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for metrics on {addr}"))?;
        tracing::info!(%addr, "metrics at /metrics");
        tokio::spawn(crate::metrics::serve(listener, export.clone()));
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    spawn_health(engine.clone(), health.clone());
    if engine.store().shared() {
        health
            .set_service_status(crate::follow::STORE_SERVICE, ServingStatus::Serving)
            .await;
        crate::follow::spawn(
            engine.clone(),
            cfg.store_poll_interval,
            health,
            telemetry.metrics.clone(),
        );
    }

    let activity = crate::activity::spawn(engine.clone(), cfg.activity_sync_interval);

    // Reflection in both versions: v1, and v1alpha that many clients still speak.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(portcullis_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let admin = PolicyAdminServiceServer::new(AdminApi::new(engine.clone(), cfg.limits, telemetry.clone()))
        .max_decoding_message_size(cfg.limits.max_bundle_bytes.saturating_add(64 << 10))
        .accept_compressed(CompressionEncoding::Gzip);
    let authz = AuthorizationServiceServer::new(AuthorizationApi::new(
        engine.clone(),
        cfg.limits,
        telemetry.clone(),
        cfg.time.clone(),
        cfg.consistency_wait,
    ))
    .max_decoding_message_size(cfg.limits.max_message_bytes)
    .accept_compressed(CompressionEncoding::Gzip);
    let access_policy = AccessPolicy {
        credentials: cfg.credentials.clone(),
        open_checks,
    };
    let access = AccessLayer::new(access_policy.clone(), telemetry.clone());
    let edge = EdgeLayer::new(
        cfg.request_timeout,
        cfg.max_concurrent_decisions,
        cfg.limits.max_message_bytes,
        telemetry.metrics.clone(),
    );
    let (stop_http, http) = match cfg.http_listen.resolve(addr) {
        None => (None, None),
        Some(http_addr) => {
            if cfg.tls.is_none() && !http_addr.ip().is_loopback() && !cfg.insecure {
                bail!(
                    "refusing to serve AuthZEN in plaintext on non-loopback address {http_addr}: configure TLS, set `--http-listen off`, or pass --insecure"
                );
            }
            let http_tls = cfg.tls.as_ref().map(http_tls_config).transpose()?;
            if open_checks && !http_addr.ip().is_loopback() && !cfg.allow_open_checks {
                bail!(
                    "refusing to serve checks without a credential on non-loopback address {http_addr}: configure a check credential or pass --allow-open-checks"
                );
            }
            let listener = TcpListener::bind(http_addr).await.with_context(|| {
                format!("cannot listen for AuthZEN on {http_addr} (`--http-listen off` disables it)")
            })?;
            let http_addr = listener.local_addr()?;
            let binding = crate::authzen::Binding::new(
                AuthorizationApi::new(
                    engine.clone(),
                    cfg.limits,
                    telemetry.clone(),
                    cfg.time.clone(),
                    cfg.consistency_wait,
                ),
                engine.clone(),
                access_policy,
                telemetry.clone(),
                edge.decision_permits(),
                cfg.request_timeout,
                cfg.limits.max_batch,
                http_addr,
                http_tls.is_some(),
            );
            tracing::info!(%http_addr, "AuthZEN at /access/v1/evaluation");
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let max_body = cfg.limits.max_message_bytes;
            let task = tokio::spawn(async move {
                let stopped = async {
                    let _ = rx.await;
                };
                if let Err(e) = crate::authzen::serve(listener, binding, max_body, http_tls, stopped).await {
                    tracing::error!("the AuthZEN listener failed: {e}");
                }
            });
            (Some(tx), Some(task))
        }
    };

    // HTTP/2 limits set on purpose: a bounded number of streams per connection, keepalive
    // pings so dead peers free their connections, a reset-flood guard, and a header list
    // limit (oversized headers fail their own stream, not the connection).
    let mut builder = Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .http2_max_pending_accept_reset_streams(Some(64))
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES);
    if let Some(tls) = &cfg.tls {
        builder = builder.tls_config(tls_config(tls)?)?;
    }
    // The builder's TCP settings apply only to listeners it binds itself: these are set on
    // the listener given. Each connection's writes go out once per flush (`coalesce`).
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)))
        .map(|conn| conn.map(Coalesced::new));
    tracing::info!(%addr, version = engine.version(), tls = cfg.tls.is_some(), "serving");
    builder
        .layer(edge)
        .layer(access)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(authz)
        .add_service(admin)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    if let (Some(tx), Some(task)) = (stop_http, http) {
        let _ = tx.send(());
        let _ = task.await;
    }
    activity.abort();
    crate::activity::flush(&engine).await;
    if let Some(audit) = &telemetry.audit {
        audit.close().await;
        let (written, dropped, refused, errors) = audit.counters();
        tracing::info!(written, dropped, refused, errors, "audit trail flushed");
    }
    export.shutdown();
    tracing::info!("stopped");
    Ok(())
}

fn start_audit(cfg: &ServeConfig) -> Result<Option<Arc<Audit>>> {
    let Some(a) = &cfg.audit else { return Ok(None) };
    let dir = a.dir.clone().unwrap_or_else(|| cfg.data_dir.join("audit"));
    let sink = SinkConfig {
        dir: dir.clone(),
        max_file_bytes: a.max_file_bytes,
        max_file_age: a.max_file_age,
        sync_every: a.sync_every,
        poll_every: crate::audit::POLL_EVERY,
    };
    let coverage = if a.all_decisions {
        Coverage::All
    } else {
        Coverage::Required
    };
    let audit = Audit::start(sink, a.queue, coverage)
        .with_context(|| format!("cannot open the audit trail in `{}`", dir.display()))?;
    Ok(Some(Arc::new(audit)))
}

/// The AuthZEN listener's TLS: the same certificate, key and client CA as gRPC (client
/// certificates required when a client CA is set, as over gRPC), HTTP/1.1 only.
fn http_tls_config(tls: &TlsFiles) -> Result<Arc<tokio_rustls::rustls::ServerConfig>> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read `{}`", p.display()));
    let certs = |p: &Path| -> Result<Vec<CertificateDer<'static>>> {
        CertificateDer::pem_slice_iter(&read(p)?)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("`{}` is not a PEM certificate chain", p.display()))
    };
    let key = PrivateKeyDer::from_pem_slice(&read(&tls.key)?)
        .with_context(|| format!("`{}` is not a PEM private key", tls.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs(&tls.cert)?, key)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn tls_config(tls: &TlsFiles) -> Result<ServerTlsConfig> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read `{}`", p.display()));
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
    if let Some(ca) = &tls.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}

/// NOT_SERVING until a snapshot is live, SERVING from then on.
fn spawn_health(engine: Arc<Engine>, health: tonic_health::server::HealthReporter) {
    let mut versions = engine.watch_version();
    tokio::spawn(async move {
        loop {
            let status = if *versions.borrow_and_update() > 0 {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            health.set_service_status("", status).await;
            for name in SERVICE_NAMES {
                health.set_service_status(name, status).await;
            }
            if versions.changed().await.is_err() {
                break;
            }
        }
    });
}

/// The host name, the default replica id.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight calls");
}
