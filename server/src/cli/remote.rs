//! Commands that talk to a running server: push, versions, rollback, revoke, reinstate,
//! temporary grants.

use crate::client::Remote;
use anyhow::{Context, Result};
use clap::Args;
use portcullis_policy::Timestamp;
use portcullis_proto::v1 as pb;
use portcullis_proto::v1::policy_admin_service_client::PolicyAdminServiceClient;
use std::path::PathBuf;
use std::process::ExitCode;

async fn admin(remote: &Remote) -> Result<PolicyAdminServiceClient<tonic::transport::Channel>> {
    Ok(PolicyAdminServiceClient::new(remote.channel().await?))
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "cli".to_owned())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

#[derive(Debug, Args)]
pub(super) struct PushArgs {
    /// Bundle file (YAML, or JSON when it ends in `.json`).
    file: PathBuf,
    /// Refuse unless this version is live (compare-and-swap).
    #[arg(long)]
    expect_version: Option<u64>,
    /// Change description.
    #[arg(long, short, default_value = "")]
    message: String,
    #[command(flatten)]
    remote: Remote,
}

/// Prints the new version, or every validation problem (exit 1).
pub(super) fn push(args: PushArgs) -> Result<ExitCode> {
    let bundle = std::fs::read(&args.file).with_context(|| format!("cannot read `{}`", args.file.display()))?;
    let format = match portcullis_policy::Format::from_path(&args.file.to_string_lossy()) {
        portcullis_policy::Format::Json => pb::BundleFormat::Json,
        portcullis_policy::Format::Yaml => pb::BundleFormat::Yaml,
    };
    runtime()?.block_on(async {
        let mut client = admin(&args.remote).await?;
        let msg = pb::PushSnapshotRequest {
            bundle,
            format: format as i32,
            author: whoami(),
            expected_parent_version: args.expect_version,
            message: args.message,
        };
        match client.push_snapshot(args.remote.request(msg)?).await {
            Ok(r) => {
                let r = r.into_inner();
                println!(
                    "pushed {}: version {} (sha256 {})",
                    args.file.display(),
                    r.version,
                    r.content_hash
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(status) => {
                eprintln!("push rejected ({:?}): {}", status.code(), status.message());
                Ok(ExitCode::FAILURE)
            }
        }
    })
}

/// Lists stored versions, newest first.
pub(super) fn versions(remote: Remote) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let mut client = admin(&remote).await?;
        let versions = client
            .list_versions(remote.request(pb::ListVersionsRequest {})?)
            .await?
            .into_inner()
            .versions;
        println!(
            "{:>8}  {:>8}  {:<20}  {:<12}  {:<16}  message",
            "version", "parent", "pushed at", "author", "sha256"
        );
        for v in versions {
            let hash = v.content_hash.get(..16).unwrap_or(&v.content_hash);
            println!(
                "{:>8}  {:>8}  {:<20}  {:<12}  {hash:<16}  {}",
                v.version,
                v.parent,
                Timestamp(v.pushed_at),
                v.author,
                v.message
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Restores an earlier version as a new one.
pub(super) fn rollback(version: u64, remote: Remote) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let mut client = admin(&remote).await?;
        let msg = pb::RollbackRequest {
            version,
            author: whoami(),
            expected_parent_version: None,
        };
        let r = client.rollback(remote.request(msg)?).await?.into_inner();
        println!("version {version} restored as version {}", r.version);
        Ok(ExitCode::SUCCESS)
    })
}

/// Revokes (or, with `reinstate`, lifts the revocation of) a principal.
pub(super) fn revoke(principal: String, reason: String, reinstate: bool, remote: Remote) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let mut client = admin(&remote).await?;
        let version = if reinstate {
            let msg = pb::ReinstatePrincipalRequest {
                principal: principal.clone(),
                reason,
                author: whoami(),
            };
            client
                .reinstate_principal(remote.request(msg)?)
                .await?
                .into_inner()
                .version
        } else {
            let msg = pb::RevokePrincipalRequest {
                principal: principal.clone(),
                reason,
                author: whoami(),
            };
            client
                .revoke_principal(remote.request(msg)?)
                .await?
                .into_inner()
                .version
        };
        let what = if reinstate { "reinstated" } else { "revoked" };
        println!("{principal} {what} (live snapshot version {version})");
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Debug, Args)]
pub(super) struct GrantArgs {
    /// Grantee.
    principal: String,
    /// Role.
    role: String,
    /// Scope: one tenant.
    #[arg(long, conflicts_with_all = ["all", "resource_type"])]
    tenant: Option<String>,
    /// Scope: everything the role allows.
    #[arg(long)]
    all: bool,
    /// Scope: resources of this type (with --ids).
    #[arg(long = "type", requires = "ids")]
    resource_type: Option<String>,
    /// Resource ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    ids: Vec<String>,
    /// Lifetime, e.g. `1h` [default: the snapshot's temporary_default_ttl].
    #[arg(long)]
    ttl: Option<humantime::Duration>,
    /// Justification or ticket.
    #[arg(long, default_value = "")]
    reason: String,
    #[command(flatten)]
    remote: Remote,
}

/// Adds a temporary grant (R11).
pub(super) fn grant(args: GrantArgs) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let mut client = admin(&args.remote).await?;
        let msg = pb::GrantTemporaryRequest {
            principal: args.principal,
            role: args.role,
            all: args.all,
            tenant: args.tenant,
            resource_type: args.resource_type,
            resource_ids: args.ids,
            ttl_seconds: args.ttl.map_or(0, |d| d.as_secs()),
            reason: args.reason,
            author: whoami(),
        };
        let r = client.grant_temporary(args.remote.request(msg)?).await?.into_inner();
        println!("temporary grant {} until {}", r.id, Timestamp(r.expires_at));
        Ok(ExitCode::SUCCESS)
    })
}
