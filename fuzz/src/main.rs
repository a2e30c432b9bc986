//! `portcullis-fuzz`: feeds random and adversarial inputs to every parser that untrusted
//! bytes reach (bundles in YAML and JSON, policy-test files, times and durations, wire
//! requests and their conversion), checking for each input that nothing panics (and that a
//! bundle streamed from a reader is the one parsed from its bytes), that it
//! finishes within a time budget, and that the process's peak memory stays within a
//! budget. Structure-aware and random rather than coverage-guided: coverage-guided
//! fuzzers need a nightly compiler or a C toolchain this project does not assume.
//!
//! A failing input is written to `--findings` and the run exits non-zero.

mod inputs;

use anyhow::{Context, Result};
use clap::Parser;
use portcullis_policy::{
    CompileOptions, Format, Seconds, Timestamp, compile_with, parse_bundle, parse_tests, read_bundle,
};
use prost::Message;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Fuzz the parsers for a while.
#[derive(Debug, Parser)]
#[command(name = "portcullis-fuzz", version, about)]
struct Args {
    /// How long to run.
    #[arg(long, default_value = "60s")]
    duration: humantime::Duration,
    /// Random seed (the run is reproducible from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Longest one input may take.
    #[arg(long, default_value = "5s")]
    time_budget: humantime::Duration,
    /// Highest peak resident memory the process may reach, MiB.
    #[arg(long, default_value_t = 1024)]
    memory_budget_mib: u64,
    /// Where failing inputs are written.
    #[arg(long, default_value = "target/fuzz-findings")]
    findings: PathBuf,
    /// Run one saved finding (its file name starts with the target) and report.
    #[arg(long)]
    replay: Option<PathBuf>,
}

/// Which parser an input is for.
#[derive(Debug, Clone, Copy)]
enum Target {
    BundleYaml,
    BundleJson,
    TestsYaml,
    Time,
    Duration,
    WireRequest,
}

impl Target {
    const ALL: [Target; 6] = [
        Target::BundleYaml,
        Target::BundleJson,
        Target::TestsYaml,
        Target::Time,
        Target::Duration,
        Target::WireRequest,
    ];
}

/// Runs one input through its parser (and, for a bundle that parses, the compiler).
fn exercise(target: Target, bytes: &[u8]) {
    let text = || String::from_utf8_lossy(bytes);
    match target {
        Target::BundleYaml | Target::BundleJson => {
            let format = if matches!(target, Target::BundleJson) {
                Format::Json
            } else {
                Format::Yaml
            };
            let parsed = parse_bundle(bytes, format);
            // The streaming reader must give the same bundle or the same error.
            let streamed = read_bundle(std::io::Cursor::new(bytes), format);
            assert_eq!(streamed, parsed, "read_bundle and parse_bundle disagree");
            if let Ok(bundle) = parsed {
                let options = CompileOptions {
                    self_check_samples: Some(16),
                    ..CompileOptions::default()
                };
                let _ = compile_with(&bundle, 1, options);
            }
        }
        Target::TestsYaml => {
            let _ = parse_tests(bytes, Format::Yaml);
        }
        Target::Time => {
            if let Ok(t) = Timestamp::parse(&text()) {
                // What it prints must read back.
                assert_eq!(Timestamp::parse(&t.to_string()), Ok(t), "round trip of {t}");
            }
        }
        Target::Duration => {
            let _ = Seconds::parse(&text());
        }
        Target::WireRequest => {
            if let Ok(r) = portcullis_proto::v1::CheckRequest::decode(bytes) {
                let _ = portcullis_server::convert::request(r);
            }
        }
    }
}

/// Peak resident memory of this process so far, MiB (Linux; 0 elsewhere).
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb / 1024)
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs a saved finding once: its target from the file name, and how long it took.
fn replay(path: &std::path::Path) -> Result<bool> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = *Target::ALL
        .iter()
        .find(|t| name.starts_with(&format!("{t:?}-")))
        .with_context(|| format!("`{name}` does not start with a target name"))?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(|| exercise(target, &bytes));
    println!(
        "{target:?}: {} in {:?}; peak memory {} MiB",
        if outcome.is_ok() { "returned" } else { "panicked" },
        started.elapsed(),
        peak_rss_mib()
    );
    Ok(outcome.is_ok())
}

/// Fuzzes until the duration is up; false when an input failed.
fn run(args: &Args) -> Result<bool> {
    if let Some(path) = &args.replay {
        return replay(path);
    }
    let corpus = inputs::Corpus::load().context("cannot read the seed corpus in examples/")?;
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let started = Instant::now();
    let until = started + Duration::from(args.duration);
    let budget = Duration::from(args.time_budget);
    let mut counts = [0u64; Target::ALL.len()];
    let mut slowest = (Duration::ZERO, "");
    std::panic::set_hook(Box::new(|_| {}));
    let mut n = 0u64;
    while Instant::now() < until {
        let (target, bytes, kind) = corpus.draw(&mut rng);
        let t0 = Instant::now();
        let outcome = std::panic::catch_unwind(|| exercise(target, &bytes));
        let took = t0.elapsed();
        n += 1;
        if let Some(i) = Target::ALL
            .iter()
            .position(|t| std::mem::discriminant(t) == std::mem::discriminant(&target))
        {
            if let Some(c) = counts.get_mut(i) {
                *c += 1;
            }
        }
        if took > slowest.0 {
            slowest = (took, kind);
        }
        let problem = if outcome.is_err() {
            Some("panicked".to_owned())
        } else if took > budget {
            Some(format!("took {took:?}, over the {budget:?} budget"))
        } else if peak_rss_mib() > args.memory_budget_mib {
            Some(format!(
                "peak memory {} MiB, over {} MiB",
                peak_rss_mib(),
                args.memory_budget_mib
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            std::fs::create_dir_all(&args.findings)?;
            let path = args.findings.join(format!("{target:?}-{}-{n}.bin", args.seed));
            std::fs::write(&path, &bytes)?;
            eprintln!("FAIL: {target:?} input ({kind}) {problem}; saved to {}", path.display());
            return Ok(false);
        }
    }
    println!(
        "{n} inputs in {:.0?} (seed {}), none failed; per target {:?}; slowest {:?} ({}); peak memory {} MiB",
        started.elapsed(),
        args.seed,
        Target::ALL.iter().zip(counts).collect::<Vec<_>>(),
        slowest.0,
        slowest.1,
        peak_rss_mib()
    );
    Ok(true)
}
