//! Command-line interface: `portcullis policy ...`, `portcullis check ...`.

mod check;
mod policy;

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
    /// Work with policy bundles: validate, test, compile, generate.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Decide one request against a bundle file.
    Check(Box<check::CheckArgs>),
}

/// Runs a parsed command line; the exit code says whether it succeeded.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Policy(cmd) => policy::run(cmd),
        Command::Check(args) => check::run(*args),
    }
}
