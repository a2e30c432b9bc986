//! Command-line interface: `portcullis serve`, `policy ...`, `check`, `revoke`, ...

mod check;
mod policy;
mod remote;
mod review;
mod serve;

use crate::client::Remote;
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Portcullis: an authorization decision server for healthcare SaaS.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC decision server.
    Serve(Box<serve::ServeArgs>),
    /// Work with policy bundles: validate, test, compile, generate, push, versions, rollback.
    #[command(subcommand)]
    Policy(Box<policy::PolicyCommand>),
    /// Decide one request against a bundle file (--bundle) or a server.
    Check(Box<check::CheckArgs>),
    /// Deny a principal from the next check on, across pushes and restarts (R6).
    Revoke {
        /// Principal id.
        principal: String,
        /// Why (recorded).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Lift a revocation.
    Reinstate {
        /// Principal id.
        principal: String,
        /// Why (recorded).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Add a grant that expires (R11), effective from the next check.
    GrantTemporary(Box<remote::GrantArgs>),
    /// Access-review reports (A2, A3) from a server or a bundle file.
    Review(Box<review::ReviewArgs>),
    /// Audit trail tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print the SHA-256 digest of a token, for `admin_token_sha256` in the config file.
    TokenDigest {
        /// The token.
        token: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain of each directory (one per replica in a fleet); names the first
    /// broken record of each (exit 1 when any is broken).
    Verify {
        /// Audit directories (e.g. `data/audit`).
        #[arg(required = true)]
        dirs: Vec<std::path::PathBuf>,
    },
    /// Print a directory's records as JSON lines, one decision per line: a CheckResources
    /// call's `decisions` record becomes a `decision` record per decision (for a SIEM or
    /// `jq`). Does not check the chain: run `verify` for that.
    Export {
        /// Audit directory (e.g. `data/audit`).
        dir: std::path::PathBuf,
    },
}

/// Runs a parsed command line; the exit code says whether it succeeded.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run_serve(*args),
        Command::Policy(cmd) => policy::run(*cmd),
        Command::Check(args) => check::run(*args),
        Command::Revoke {
            principal,
            reason,
            remote,
        } => remote::revoke(principal, reason, false, remote),
        Command::Reinstate {
            principal,
            reason,
            remote,
        } => remote::revoke(principal, reason, true, remote),
        Command::GrantTemporary(args) => remote::grant(*args),
        Command::Review(args) => review::run(*args),
        Command::Audit(AuditCommand::Verify { dirs }) => {
            let mut intact = true;
            for dir in &dirs {
                match crate::audit::verify(dir)? {
                    Ok(records) => println!("{}: chain intact, {records} records", dir.display()),
                    Err(broken) => {
                        println!("{}: BROKEN at {broken}", dir.display());
                        intact = false;
                    }
                }
            }
            Ok(if intact { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Audit(AuditCommand::Export { dir }) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            crate::audit::export(&dir, &mut out)?;
            std::io::Write::flush(&mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::TokenDigest { token } => {
            println!("{}", crate::auth::digest_hex(&token));
            Ok(ExitCode::SUCCESS)
        }
    }
}
