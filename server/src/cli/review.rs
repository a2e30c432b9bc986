//! `portcullis review` (A2, A3) and `portcullis policy diff` (A4): reports from a bundle
//! file or from a server's live snapshot, as a table, CSV, JSON or Markdown.

use crate::bundle_file::read_bundle;
use crate::client::Remote;
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use portcullis_policy::review::{self, Report};
use portcullis_policy::{Bundle, Format, Listing, Overlay, Timestamp, compile, parse_bundle};
use portcullis_proto::v1 as pb;
use portcullis_proto::v1::policy_admin_service_client::PolicyAdminServiceClient;
use std::path::PathBuf;
use std::process::ExitCode;

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum OutputFormat {
    Table,
    Csv,
    Json,
    Markdown,
}

#[derive(Debug, Args)]
pub(super) struct ReviewArgs {
    #[command(subcommand)]
    report: ReportKind,
    /// Review this bundle file instead of a server's live snapshot.
    #[arg(long, global = true)]
    bundle: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table", global = true)]
    format: OutputFormat,
    /// Time the review is made at (RFC 3339); default now.
    #[arg(long, value_parser = Timestamp::parse, global = true)]
    at: Option<Timestamp>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Clone, Subcommand)]
enum ReportKind {
    /// Who can reach a tenant's data, and through which grant.
    Tenant {
        /// Tenant id.
        tenant: String,
    },
    /// What a principal can reach.
    Principal {
        /// Principal id.
        principal: String,
    },
    /// Holders of privileged, emergency, impersonation and dual-control roles.
    Privileged,
    /// Temporary grants still open and when they expire.
    Temporary,
    /// Dormant accounts and accounts with no recorded activity.
    Dormant,
    /// Grants and the approvals they carry.
    Approvals,
    /// Service accounts and their owners.
    ServiceAccounts,
    /// Every report above that needs no argument.
    All,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A stored version's bundle from the server (`None`: the live one).
fn fetch(remote: &Remote, version: Option<u64>) -> Result<Bundle> {
    runtime()?.block_on(async {
        let mut client = PolicyAdminServiceClient::new(remote.channel().await?);
        let r = client
            .export_snapshot(remote.request(pb::ExportSnapshotRequest { version })?)
            .await?
            .into_inner();
        let format = if r.format == pb::BundleFormat::Json as i32 {
            Format::Json
        } else {
            Format::Yaml
        };
        Ok(parse_bundle(&r.bundle, format)?)
    })
}

/// The server's live state: its overlay and what it observed.
fn live_state(remote: &Remote) -> Result<pb::GetSnapshotInfoResponse> {
    runtime()?.block_on(async {
        let mut client = PolicyAdminServiceClient::new(remote.channel().await?);
        Ok(client
            .get_snapshot_info(remote.request(pb::GetSnapshotInfoRequest { include_activity: true })?)
            .await?
            .into_inner())
    })
}

/// Temporary grants of the server's overlay, as rows of the temporary report.
fn overlay_grants(info: &pb::GetSnapshotInfoResponse) -> Vec<Vec<String>> {
    info.temporary_grants
        .iter()
        .map(|g| {
            vec![
                Timestamp(g.expires_at).to_string(),
                g.principal.clone(),
                g.role.clone(),
                g.scope.clone(),
                g.id.clone(),
                "overlay".to_owned(),
            ]
        })
        .collect()
}

pub(super) fn run(args: ReviewArgs) -> Result<ExitCode> {
    let (bundle, live) = match &args.bundle {
        Some(path) => (read_bundle(path)?, None),
        None => (fetch(&args.remote, None)?, Some(live_state(&args.remote)?)),
    };
    // The server's overlay as far as listings need it: revocations (R6) and the logins the
    // fleet observed (R7), which count in listings as they do in checks.
    let mut overlay = Overlay::default();
    for (p, t) in live.iter().flat_map(|l| &l.observed_activity) {
        overlay.activity.observe(p, Timestamp(*t));
    }
    overlay
        .revoked
        .extend(live.iter().flat_map(|l| &l.revoked).map(|r| r.principal.clone()));
    let observed = &overlay.activity;
    let snapshot = compile(&bundle, 0).context("the bundle does not compile")?;
    let now = args.at.unwrap_or_else(Timestamp::now);
    let listing = Listing {
        at: now,
        overlay: &overlay,
        usable_only: false,
    };
    let mut reports = match &args.report {
        ReportKind::Tenant { tenant } => vec![review::tenant_access(&snapshot, &bundle, tenant, &listing)],
        ReportKind::Principal { principal } => vec![review::principal_access(&snapshot, principal, &listing)],
        ReportKind::Privileged => vec![review::privileged(&bundle)],
        ReportKind::Temporary => vec![review::temporary(&bundle, now)],
        ReportKind::Dormant => vec![review::dormant(&bundle, observed, now)],
        ReportKind::Approvals => vec![review::approvals(&bundle)],
        ReportKind::ServiceAccounts => vec![review::service_accounts(&bundle)],
        ReportKind::All => vec![
            review::privileged(&bundle),
            review::temporary(&bundle, now),
            review::dormant(&bundle, observed, now),
            review::approvals(&bundle),
            review::service_accounts(&bundle),
        ],
    };
    if let Some(live) = &live {
        for r in reports.iter_mut().filter(|r| r.title.starts_with("Temporary grants")) {
            r.rows.extend(overlay_grants(live));
        }
    }
    print!("{}", render(&reports, args.format));
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(super) struct DiffArgs {
    /// Older side: a bundle file, or a version number on the server.
    old: String,
    /// Newer side: a bundle file, or a version number on the server.
    new: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    #[command(flatten)]
    remote: Remote,
}

pub(super) fn diff(args: DiffArgs) -> Result<ExitCode> {
    let load = |side: &str| -> Result<Bundle> {
        match side.parse::<u64>() {
            Ok(v) if !std::path::Path::new(side).exists() => fetch(&args.remote, Some(v)),
            _ => read_bundle(std::path::Path::new(side)),
        }
    };
    let report = review::diff(&load(&args.old)?, &load(&args.new)?);
    print!("{}", render(&[report], args.format));
    Ok(ExitCode::SUCCESS)
}

/// Renders reports in a format.
pub(super) fn render(reports: &[Report], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => {
            serde_json::to_string_pretty(
                &reports
                    .iter()
                    .map(|r| {
                        let rows: Vec<serde_json::Map<String, serde_json::Value>> = r
                            .rows
                            .iter()
                            .map(|row| {
                                r.columns
                                    .iter()
                                    .cloned()
                                    .zip(row.iter().map(|c| serde_json::Value::from(c.clone())))
                                    .collect()
                            })
                            .collect();
                        serde_json::json!({"title": r.title, "rows": rows})
                    })
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default()
                + "\n"
        }
        OutputFormat::Csv => reports.iter().map(csv).collect::<Vec<_>>().join("\n"),
        OutputFormat::Markdown => reports.iter().map(markdown).collect::<Vec<_>>().join("\n"),
        OutputFormat::Table => reports.iter().map(table).collect::<Vec<_>>().join("\n"),
    }
}

fn csv(r: &Report) -> String {
    let field = |s: &String| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.clone()
        }
    };
    let mut out = format!("# {}\n", r.title);
    for row in std::iter::once(&r.columns).chain(&r.rows) {
        out.push_str(&row.iter().map(field).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

fn markdown(r: &Report) -> String {
    let cell = |s: &String| s.replace('|', "\\|").replace('\n', " ");
    let mut out = format!(
        "### {}\n\n| {} |\n|{}\n",
        r.title,
        r.columns.iter().map(cell).collect::<Vec<_>>().join(" | "),
        "---|".repeat(r.columns.len())
    );
    for row in &r.rows {
        out.push_str(&format!(
            "| {} |\n",
            row.iter().map(cell).collect::<Vec<_>>().join(" | ")
        ));
    }
    if r.rows.is_empty() {
        out.push_str("\n_none_\n");
    }
    out
}

fn table(r: &Report) -> String {
    let widths: Vec<usize> = r
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            r.rows
                .iter()
                .filter_map(|row| row.get(i))
                .map(|s| s.chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |row: &[String]| {
        row.iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
            + "\n"
    };
    let mut out = format!("{}\n{}", r.title, line(&r.columns));
    for row in &r.rows {
        out.push_str(&line(row));
    }
    if r.rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}
