//! `portcullis policy validate | test | compile | generate`.

use crate::bundle_file::{format_of, read_bundle, read_tests};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use portcullis_policy::selfcheck::run_file;
use portcullis_policy::synth::{LargeShape, large_bundle};
use portcullis_policy::{CompileError, CompileOptions, compile, compile_owned, compile_source};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Subcommand)]
pub(super) enum PolicyCommand {
    /// Check a bundle exactly as a push would (validation, compile, self-check and the
    /// bundle's own tests); lists every problem with its path and line.
    Validate {
        /// Bundle file (YAML, or JSON when it ends in `.json`).
        file: PathBuf,
    },
    /// Run a policy test file against a bundle; prints a line per case and a summary.
    Test {
        /// Bundle file.
        file: PathBuf,
        /// Test file (`now`, `tests`, `filter_rows`, `list_subjects`).
        tests: PathBuf,
        /// One JSON document on stdout (for CI): every case and the counts.
        #[arg(long)]
        json: bool,
    },
    /// Compile a bundle (with the self-check) and report sizes, timings and memory.
    Compile {
        /// Bundle file.
        file: PathBuf,
        /// Print statistics.
        #[arg(long)]
        stats: bool,
        /// Generated requests to compare against the reference evaluator (default: scaled to the bundle).
        #[arg(long)]
        self_check: Option<usize>,
    },
    /// Write a large synthetic bundle (JSON) for benchmarks and load tests.
    Generate(GenerateArgs),
    /// Push a bundle to a server; prints the new version or every validation problem.
    Push(super::remote::PushArgs),
    /// What changed between two versions (server version numbers) or two bundle files (A4).
    Diff(super::review::DiffArgs),
    /// List a server's stored versions, newest first.
    Versions {
        #[command(flatten)]
        remote: crate::client::Remote,
    },
    /// Make an earlier version live again (as a new version).
    Rollback {
        /// Version to restore.
        version: u64,
        #[command(flatten)]
        remote: crate::client::Remote,
    },
}

#[derive(Debug, Args)]
pub(super) struct GenerateArgs {
    /// Principals.
    #[arg(long, default_value_t = 1_000)]
    principals: usize,
    /// Grants.
    #[arg(long, default_value_t = 10_000)]
    grants: usize,
    /// Tenants.
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    /// Resource ids granted to principal `u0` in one grant (for row-filter benchmarks).
    #[arg(long, default_value_t = 0)]
    wide_resources: u32,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file (`.json` or `.yaml`).
    #[arg(long, short)]
    out: PathBuf,
}

pub(super) fn run(cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Validate { file } => {
            // Exactly what a push runs: parse, validation (every problem, with its line),
            // compile and the self-check with the bundle's own tests.
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read `{}`", file.display()))?;
            match compile_source(&bytes, format_of(&file), 1, CompileOptions::default()) {
                Ok(snapshot) => {
                    let s = snapshot.stats();
                    println!(
                        "{}: valid ({} principals, {} grants, {} deny rules)",
                        file.display(),
                        s.principals,
                        s.grants,
                        s.denies
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        PolicyCommand::Test { file, tests, json } => {
            let bundle = read_bundle(&file)?;
            let snapshot = compiled(compile(&bundle, 1), &file)?;
            let cases = read_tests(&tests)?;
            let outcomes = run_file(&bundle, &snapshot, &cases).with_context(|| format!("`{}`", tests.display()))?;
            let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
            let passed = outcomes.len() - failed;
            if json {
                let cases: Vec<serde_json::Value> = outcomes
                    .iter()
                    .map(|o| {
                        serde_json::json!({
                            "name": o.name,
                            "kind": o.kind,
                            "passed": o.failure.is_none(),
                            "failure": o.failure,
                        })
                    })
                    .collect();
                let report = serde_json::json!({"passed": passed, "failed": failed, "cases": cases});
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for o in &outcomes {
                    match &o.failure {
                        None => println!("pass  {:<13} {}", o.kind.as_str(), o.name),
                        Some(why) => println!("FAIL  {:<13} {}: {why}", o.kind.as_str(), o.name),
                    }
                }
                println!("{passed} passed, {failed} failed, {} cases", outcomes.len());
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PolicyCommand::Compile {
            file,
            stats,
            self_check,
        } => {
            let start = Instant::now();
            let bundle = read_bundle(&file)?;
            let parsed = start.elapsed();
            let parse_peak = peak_rss_kib();
            let options = CompileOptions {
                self_check_samples: self_check,
                ..CompileOptions::default()
            };
            let start = Instant::now();
            let snapshot = compiled(compile_owned(bundle, 1, options), &file)?;
            let built = start.elapsed();
            println!("{}: compiled", file.display());
            if stats {
                let s = snapshot.stats();
                println!("  principals      {}", s.principals);
                println!("  grants          {}", s.grants);
                println!("  entries         {}", s.entries);
                println!("  tenants         {}", s.tenants);
                println!("  resource sets   {}", s.resource_sets);
                println!("  deny rules      {}", s.denies);
                println!(
                    "  index memory    {:.1} MiB (estimate)",
                    s.approx_bytes as f64 / 1_048_576.0
                );
                println!("  parse           {:.3} s", parsed.as_secs_f64());
                println!("  compile + check {:.3} s", built.as_secs_f64());
                if let Some(peak) = parse_peak {
                    println!("  peak after parse {:.1} MiB", peak as f64 / 1024.0);
                }
                if let Some(peak) = peak_rss_kib() {
                    println!(
                        "  peak memory     {:.1} MiB (process high-water mark)",
                        peak as f64 / 1024.0
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Push(args) => super::remote::push(args),
        PolicyCommand::Diff(args) => super::review::diff(args),
        PolicyCommand::Versions { remote } => super::remote::versions(remote),
        PolicyCommand::Rollback { version, remote } => super::remote::rollback(version, remote),
        PolicyCommand::Generate(args) => {
            let bundle = large_bundle(LargeShape {
                principals: args.principals,
                grants: args.grants,
                tenants: args.tenants,
                wide_resources: args.wide_resources,
                seed: args.seed,
            });
            let file =
                std::fs::File::create(&args.out).with_context(|| format!("cannot create `{}`", args.out.display()))?;
            let mut out = std::io::BufWriter::new(file);
            match crate::bundle_file::format_of(&args.out) {
                portcullis_policy::Format::Json => serde_json::to_writer(&mut out, &bundle)?,
                portcullis_policy::Format::Yaml => serde_yaml::to_writer(&mut out, &bundle)?,
            }
            out.flush()?;
            println!(
                "{}: {} principals, {} grants",
                args.out.display(),
                bundle.principals.len(),
                bundle.grants.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Turns a compile error into a message naming the file.
fn compiled<T>(result: Result<T, CompileError>, file: &std::path::Path) -> Result<T> {
    result.with_context(|| format!("`{}` does not compile", file.display()))
}

/// The process's peak resident memory (VmHWM), in KiB, on Linux.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
