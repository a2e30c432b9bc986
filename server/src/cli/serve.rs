//! `portcullis serve`.

use crate::scopes::Scope;
use crate::serve::{FileConfig, ServeConfig, TlsFiles, prepare, run, shutdown_signal};
use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, env = "PORTCULLIS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory holding snapshot versions and the overlay [default: ./data].
    #[arg(long, env = "PORTCULLIS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Store of record for a fleet: `postgres://USER@HOST:PORT/DB` [default: the data directory].
    #[arg(long, env = "PORTCULLIS_STORE")]
    store: Option<String>,
    /// This replica's id in audit records [default: the host name].
    #[arg(long, env = "PORTCULLIS_REPLICA_ID")]
    replica_id: Option<String>,
    /// Bundle that seeds an empty store (ignored once the store holds a version).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// TOML config file.
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    config: Option<PathBuf>,
    /// Admin bearer token (plain text; hashed at once).
    #[arg(long, env = "PORTCULLIS_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Require this bearer token on check calls.
    #[arg(long, env = "PORTCULLIS_CHECK_TOKEN", hide_env_values = true)]
    check_token: Option<String>,
    /// TLS certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Allow plaintext on a non-loopback address.
    #[arg(long)]
    insecure: bool,
    /// Admit check calls without a credential on a non-loopback address when no check
    /// token is configured (refused otherwise).
    #[arg(long)]
    allow_open_checks: bool,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, env = "PORTCULLIS_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// AuthZEN 1.0 over HTTP: an address, `off`, or `beside` [default: beside, i.e.
    /// 127.0.0.1 on the gRPC port + 1000].
    #[arg(long, env = "PORTCULLIS_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// Directory of the audit trail [default: DATA/audit].
    #[arg(long)]
    audit_dir: Option<PathBuf>,
    /// Audit every decision, not only those A1 requires (denies, sensitive data, break glass, impersonation).
    #[arg(long)]
    audit_all: bool,
    /// Export RPC traces to this OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`.
    #[arg(long, env = "PORTCULLIS_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Largest accepted distance between a caller's `at` or session times and the server
    /// clock [default: 5s]. Callers with the admin token may set any `at` (what-if).
    #[arg(long, env = "PORTCULLIS_MAX_CLOCK_SKEW")]
    max_clock_skew: Option<String>,
    /// Turn the audit trail off (not for production: A1 requires it).
    #[arg(long, conflicts_with_all = ["audit_dir", "audit_all"])]
    no_audit: bool,
}

pub(super) fn run_serve(args: ServeArgs) -> Result<ExitCode> {
    let file = match &args.config {
        Some(path) => ServeConfig::read_file(path)?,
        None => FileConfig::default(),
    };
    let json_logs = args.log_json || file.log_json.unwrap_or(false);
    let mut cfg = ServeConfig::new(PathBuf::from("data"));
    cfg.apply_file(file)?;
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if let Some(s) = args.store {
        cfg.store = Some(s);
    }
    if let Some(r) = args.replica_id {
        cfg.replica_id = r;
    }
    cfg.seed_bundle = args.bundle;
    if let Some(t) = &args.admin_token {
        cfg.credentials.add_token("admin", t, &[Scope::Admin]);
    }
    if let Some(t) = &args.check_token {
        cfg.credentials.add_token("check", t, &[Scope::Check]);
    }
    cfg.allow_open_checks |= args.allow_open_checks;
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        cfg.tls = Some(TlsFiles {
            cert,
            key,
            client_ca: args.tls_client_ca,
        });
    }
    cfg.insecure |= args.insecure;
    if let Some(t) = &args.max_clock_skew {
        cfg.set_max_clock_skew(t)?;
    }
    if let Some(m) = args.metrics_listen {
        cfg.metrics_listen = Some(m);
    }
    if let Some(h) = &args.http_listen {
        cfg.http_listen = crate::serve::HttpListen::parse(h).context("--http-listen")?;
    }
    if let Some(e) = args.otlp_endpoint {
        cfg.otlp_endpoint = Some(e);
    }
    if args.no_audit {
        cfg.audit = None;
    } else if let Some(a) = &mut cfg.audit {
        a.dir = args.audit_dir.or(a.dir.take());
        a.all_decisions |= args.audit_all;
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let provider = cfg.otlp_endpoint.as_deref().map(crate::otel::provider).transpose()?;
        init_logging(json_logs, provider.as_ref());
        let engine = prepare(&mut cfg).await?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let served = run(cfg, engine, listener, shutdown_signal()).await;
        if let Some(p) = provider
            && let Err(e) = p.shutdown()
        {
            tracing::warn!("flushing traces: {e}");
        }
        served
    })?;
    // Work still running on the blocking pool (a compile whose caller has gone stops at
    // its next check point) may not hold the process up for long.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr (text or JSON lines, level from `RUST_LOG`, default info), and RPC spans
/// to OpenTelemetry when a provider is given.
fn init_logging(json: bool, provider: Option<&opentelemetry_sdk::trace::SdkTracerProvider>) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json { fmt.json().boxed() } else { fmt.boxed() };
    let otel = provider.map(|p| crate::otel::layer(p).with_filter(tracing_subscriber::filter::LevelFilter::INFO));
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
}
