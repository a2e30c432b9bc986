//! `portcullis-loadtest`: drives a running Portcullis server over gRPC, closed-loop (fixed
//! concurrency, maximum throughput) or open-loop (fixed rate, latency measured from the
//! intended send time so stalls are not hidden), and reports throughput and latency.

mod bodies;
mod report;
mod run;
mod stats;
mod workload;

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Load generator for a Portcullis server.
#[derive(Debug, Clone, Parser)]
#[command(name = "portcullis-loadtest", version, about)]
pub struct Args {
    /// Server URL, or several separated by commas (replicas of a fleet): load is spread
    /// over them, pushes rotate between them, and visibility is measured on each.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// Bundle the workload is drawn from (and pushed with --push-every, checked with --verify).
    #[arg(long)]
    bundle: PathBuf,
    /// Measured duration.
    #[arg(long, default_value = "10s")]
    duration: humantime::Duration,
    /// Stop after this many calls instead (warm-up excluded).
    #[arg(long)]
    requests: Option<u64>,
    /// Warm-up, excluded from the results.
    #[arg(long, default_value = "1s")]
    warmup: humantime::Duration,
    /// Calls in flight (closed loop), or workers (open loop).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Open loop: calls per second, scheduled regardless of responses.
    #[arg(long)]
    rate: Option<f64>,
    /// Call mix by weight, e.g. `check=8,batch=1,filter=1` (also `resources`, `health`).
    #[arg(long, default_value = "check=1")]
    mix: String,
    /// Requests per BatchCheck, resources per CheckResources.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Push the bundle this often during the run.
    #[arg(long)]
    push_every: Option<humantime::Duration>,
    /// Revoke one principal this often (through the replicas in turn), time until every
    /// replica denies them, then reinstate them; that principal is left out of the load.
    #[arg(long)]
    revoke_every: Option<humantime::Duration>,
    /// Admin token for pushes and revocations (default: $PORTCULLIS_TOKEN, then data/admin-token).
    #[arg(long, env = "PORTCULLIS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Token for decision calls, when the server requires a `check` credential.
    #[arg(long, env = "PORTCULLIS_CHECK_TOKEN", hide_env_values = true)]
    check_token: Option<String>,
    /// Zipf exponent of principal popularity.
    #[arg(long, default_value_t = 1.1)]
    skew: f64,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw latency percentiles over time as SVG here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Compare every decision with the bundle's own answer; any difference fails the run.
    #[arg(long)]
    verify: bool,
    /// Fail when more than this share of calls errs.
    #[arg(long, default_value_t = 0.001)]
    max_error_rate: f64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Instead of a run: draw one request of each decision RPC, send it once to the
    /// (first) target, and write it gRPC-framed into this directory for h2load.
    #[arg(long)]
    write_bodies: Option<PathBuf>,
}

/// Weights of each kind of call.
#[derive(Debug, Clone, Default)]
pub struct Mix {
    weights: Vec<(stats::Kind, u32)>,
    total: u32,
}

impl Mix {
    fn parse(spec: &str) -> Result<Mix> {
        let mut mix = Mix::default();
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .with_context(|| format!("`{part}` is not kind=weight"))?;
            let kind = match name.trim() {
                "check" => stats::Kind::Check,
                "batch" => stats::Kind::Batch,
                "resources" => stats::Kind::Resources,
                "filter" => stats::Kind::Filter,
                "health" => stats::Kind::Health,
                other => bail!("unknown call kind `{other}` (check, batch, resources, filter, health)"),
            };
            let w: u32 = weight.trim().parse().with_context(|| format!("weight `{weight}`"))?;
            mix.total += w;
            mix.weights.push((kind, w));
        }
        if mix.total == 0 {
            bail!("the mix `{spec}` has no weight");
        }
        Ok(mix)
    }

    /// The kinds the mix draws (weight above zero).
    fn kinds(&self) -> impl Iterator<Item = stats::Kind> + '_ {
        self.weights.iter().filter(|(_, w)| *w > 0).map(|(k, _)| *k)
    }

    fn pick(&self, roll: u32) -> stats::Kind {
        let mut r = roll % self.total;
        for (k, w) in &self.weights {
            if r < *w {
                return *k;
            }
            r -= w;
        }
        stats::Kind::Check
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match main_with(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn main_with(args: Args) -> Result<ExitCode> {
    let mix = Mix::parse(&args.mix)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(dir) = &args.write_bodies {
        runtime.block_on(run::write_bodies(&args, dir))?;
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = runtime.block_on(run::run(&args, mix))?;
    let measured = outcome.measured;
    print!("{}", report::table(&outcome.recorder, measured));
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&report::json(&args, &outcome.recorder, measured))?,
        )
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, report::svg(&outcome.recorder))
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    let calls: u64 = outcome.recorder.total.values().map(stats::Series::calls).sum();
    let errors: u64 = outcome
        .recorder
        .total
        .values()
        .map(|s| s.errors.values().sum::<u64>())
        .sum();
    let mut failed = false;
    if calls == 0 {
        eprintln!("FAIL: no call completed");
        failed = true;
    } else if errors as f64 / calls as f64 > args.max_error_rate {
        eprintln!(
            "FAIL: {errors} of {calls} calls failed (limit {:.3}%)",
            args.max_error_rate * 100.0
        );
        failed = true;
    }
    if outcome.recorder.mismatches > 0 {
        eprintln!(
            "FAIL: {} decisions differ from the bundle's answer, e.g.:",
            outcome.recorder.mismatches
        );
        for m in &outcome.recorder.mismatch_examples {
            eprintln!("  {m}");
        }
        failed = true;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// How long the measured part lasted.
pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_weights_pick_in_proportion() {
        let mix = Mix::parse("check=8,batch=1,filter=1").unwrap();
        let picks: Vec<_> = (0..10).map(|r| mix.pick(r)).collect();
        assert_eq!(picks.iter().filter(|k| **k == stats::Kind::Check).count(), 8);
        assert_eq!(picks[8], stats::Kind::Batch);
        assert_eq!(picks[9], stats::Kind::Filter);
        assert!(Mix::parse("check=0").is_err());
        assert!(Mix::parse("teleport=1").is_err());
        assert!(Mix::parse("check").is_err());
    }
}
