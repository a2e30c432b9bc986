//! The run: workers (closed or open loop), an optional pusher, a progress line.

use crate::stats::{Kind, Recorder};
use crate::workload::{Workload, to_wire};
use crate::{Args, Mix};
use anyhow::{Context, Result};
use portcullis_policy::{Effect, Format, Overlay, Snapshot, Timestamp, compile, parse_bundle};
use portcullis_proto::v1 as pb;
use portcullis_proto::v1::authorization_service_client::AuthorizationServiceClient;
use portcullis_proto::v1::policy_admin_service_client::PolicyAdminServiceClient;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Merged results of every worker and the pusher.
    pub recorder: Recorder,
    /// Length of the measured period.
    pub measured: Duration,
}

struct Ctx {
    workload: Workload,
    reference: Option<Snapshot>,
    mix: Mix,
    batch_size: usize,
    rate: Option<f64>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    max_requests: Option<u64>,
    ticket: AtomicU64,
    done: AtomicU64,
    stop: AtomicBool,
}

impl Ctx {
    fn finished(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self
                .max_requests
                .is_some_and(|m| self.done.load(Ordering::Relaxed) >= m)
    }
}

/// Runs the load described by `args` against its target.
pub async fn run(args: &Args, mix: Mix) -> Result<Outcome> {
    let bytes = std::fs::read(&args.bundle).with_context(|| format!("cannot read `{}`", args.bundle.display()))?;
    let format = Format::from_path(&args.bundle.to_string_lossy());
    let bundle = parse_bundle(&bytes, format).with_context(|| format!("`{}`", args.bundle.display()))?;
    let workload = Workload::from_bundle(&bundle, args.skew)?;
    let reference = if args.verify {
        Some(compile(&bundle, 0).context("the bundle does not compile")?)
    } else {
        None
    };
    let targets: Vec<&str> = args
        .target
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        for target in &targets {
            let endpoint =
                Channel::from_shared(target.to_string()).with_context(|| format!("bad target `{target}`"))?;
            channels.push(
                endpoint
                    .connect()
                    .await
                    .with_context(|| format!("cannot connect to {target}"))?,
            );
        }
    }
    // The first connection to each target.
    let replicas: Vec<Channel> = channels.iter().take(targets.len()).cloned().collect();
    if replicas.is_empty() {
        anyhow::bail!("no target given");
    }
    let start = Instant::now();
    let measure_from = start + Duration::from(args.warmup);
    let ctx = Arc::new(Ctx {
        workload,
        reference,
        mix,
        batch_size: args.batch_size.max(1),
        rate: args.rate,
        start,
        measure_from,
        end: if args.requests.is_some() {
            start + Duration::from_secs(86_400)
        } else {
            measure_from + Duration::from(args.duration)
        },
        max_requests: args.requests,
        ticket: AtomicU64::new(0),
        done: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });

    let progress = tokio::spawn(progress(ctx.clone()));
    let pusher = args.push_every.map(|every| {
        let token = args.token.clone().or_else(|| {
            std::fs::read_to_string("data/admin-token")
                .ok()
                .map(|t| t.trim().to_owned())
        });
        tokio::spawn(pusher(
            ctx.clone(),
            replicas.clone(),
            bytes.clone(),
            format,
            every.into(),
            token,
        ))
    });
    let workers: Vec<_> = channels
        .iter()
        .cycle()
        .take(args.concurrency.max(1))
        .enumerate()
        .map(|(i, channel)| tokio::spawn(worker(ctx.clone(), channel.clone(), args.seed.wrapping_add(i as u64))))
        .collect();
    let mut recorder = Recorder::default();
    for w in workers {
        recorder.merge(&w.await?);
    }
    ctx.stop.store(true, Ordering::Relaxed);
    if let Some(p) = pusher {
        recorder.merge(&p.await?);
    }
    progress.abort();
    eprintln!();
    Ok(Outcome {
        recorder,
        measured: Instant::now().saturating_duration_since(measure_from),
    })
}

async fn progress(ctx: Arc<Ctx>) {
    let mut last = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let done = ctx.done.load(Ordering::Relaxed);
        let phase = if Instant::now() < ctx.measure_from {
            "warm-up"
        } else {
            "measuring"
        };
        eprint!(
            "\r[{:>4}s] {phase:<9} {done:>10} calls  {:>8}/s   ",
            ctx.start.elapsed().as_secs(),
            done - last
        );
        last = done;
    }
}

async fn worker(ctx: Arc<Ctx>, channel: Channel, seed: u64) -> Recorder {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut authz = AuthorizationServiceClient::new(channel.clone());
    let mut health = HealthClient::new(channel);
    let mut rec = Recorder::default();
    loop {
        if ctx.finished() {
            break;
        }
        let intended = match ctx.rate {
            Some(rate) => {
                let i = ctx.ticket.fetch_add(1, Ordering::Relaxed);
                let at = ctx.start + Duration::from_secs_f64(i as f64 / rate);
                if at >= ctx.end {
                    break;
                }
                tokio::time::sleep_until(at).await;
                at
            }
            None => {
                let now = Instant::now();
                if now >= ctx.end {
                    break;
                }
                now
            }
        };
        let kind = ctx.mix.pick(rng.random());
        let outcome = call(&ctx, kind, &mut rng, &mut authz, &mut health, &mut rec).await;
        let finished = Instant::now();
        if intended >= ctx.measure_from {
            rec.record(kind, finished - ctx.measure_from, finished - intended, outcome);
            ctx.done.fetch_add(1, Ordering::Relaxed);
        }
    }
    rec
}

/// Makes one call; `Ok(decisions)` or the status code.
async fn call(
    ctx: &Ctx,
    kind: Kind,
    rng: &mut SmallRng,
    authz: &mut AuthorizationServiceClient<Channel>,
    health: &mut HealthClient<Channel>,
    rec: &mut Recorder,
) -> Result<u64, tonic::Code> {
    let now = Timestamp::now();
    match kind {
        Kind::Check => {
            let req = ctx.workload.draw(rng, now);
            let d = authz
                .check(to_wire(&req))
                .await
                .map_err(|s| s.code())?
                .into_inner()
                .decision;
            verify(ctx, &req, d.as_ref(), rec);
            Ok(1)
        }
        Kind::Batch => {
            let reqs: Vec<_> = (0..ctx.batch_size).map(|_| ctx.workload.draw(rng, now)).collect();
            let msg = pb::BatchCheckRequest {
                requests: reqs.iter().map(to_wire).collect(),
                min_version: 0,
                min_overlay_seq: 0,
            };
            let resp = authz.batch_check(msg).await.map_err(|s| s.code())?.into_inner();
            for (req, d) in reqs.iter().zip(&resp.decisions) {
                verify(ctx, req, Some(d), rec);
            }
            Ok(resp.decisions.len() as u64)
        }
        Kind::Filter => {
            let req = ctx.workload.draw(rng, now);
            let wire = to_wire(&req);
            let msg = pb::FilterRowsRequest {
                principal: wire.principal,
                action: wire.action,
                resource_type: req.resource.resource_type.clone(),
                session: wire.session,
                at: wire.at,
                min_version: 0,
                min_overlay_seq: 0,
            };
            authz.filter_rows(msg).await.map_err(|s| s.code())?;
            Ok(1)
        }
        Kind::Health => {
            health
                .check(HealthCheckRequest { service: String::new() })
                .await
                .map_err(|s| s.code())?;
            Ok(0)
        }
        Kind::Push | Kind::Visible | Kind::Fleet => Ok(0),
    }
}

/// `--verify`: the server's decision must equal the bundle's own.
fn verify(ctx: &Ctx, req: &portcullis_policy::Request, got: Option<&pb::Decision>, rec: &mut Recorder) {
    let Some(reference) = &ctx.reference else { return };
    let want = reference.check(req, Overlay::empty());
    let want_effect = if want.effect == Effect::Allow {
        pb::Effect::Allow
    } else {
        pb::Effect::Deny
    } as i32;
    let same = got.is_some_and(|d| d.effect == want_effect && d.reason == want.reason.as_str());
    if !same {
        rec.mismatches += 1;
        if rec.mismatch_examples.len() < 5 {
            rec.mismatch_examples.push(format!(
                "{} {} {}/{}: server {:?}, bundle {:?} ({})",
                req.principal,
                req.action,
                req.resource.resource_type,
                req.resource.id,
                got.map(|d| (d.effect, d.reason.clone())),
                want.effect,
                want.reason.as_str()
            ));
        }
    }
}

/// Pushes every `every`, rotating over the replicas, and measures for each push how long
/// each replica takes to answer from it and how long the whole fleet takes.
async fn pusher(
    ctx: Arc<Ctx>,
    replicas: Vec<Channel>,
    bundle: Vec<u8>,
    format: Format,
    every: Duration,
    token: Option<String>,
) -> Recorder {
    let mut rec = Recorder::default();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut round = 0usize;
    while !ctx.finished() && Instant::now() < ctx.end {
        tick.tick().await;
        let Some(channel) = replicas.get(round % replicas.len()) else {
            break;
        };
        round += 1;
        let mut client = PolicyAdminServiceClient::new(channel.clone());
        let mut req = tonic::Request::new(pb::PushSnapshotRequest {
            bundle: bundle.clone(),
            format: match format {
                Format::Json => pb::BundleFormat::Json,
                Format::Yaml => pb::BundleFormat::Yaml,
            } as i32,
            author: "portcullis-loadtest".into(),
            expected_parent_version: None,
            message: "load-test push".into(),
        });
        if let Some(t) = &token
            && let Ok(v) = format!("Bearer {t}").parse()
        {
            req.metadata_mut().insert("authorization", v);
        }
        let sent = Instant::now();
        let pushed = client
            .push_snapshot(req)
            .await
            .map(|r| r.into_inner().version)
            .map_err(|s| s.code());
        let acked = Instant::now();
        if sent >= ctx.measure_from {
            rec.record(Kind::Push, acked - ctx.measure_from, acked - sent, pushed.map(|_| 0));
        }
        let Ok(version) = pushed else { continue };
        let probes: Vec<_> = replicas
            .iter()
            .enumerate()
            .map(|(i, channel)| {
                let ctx = ctx.clone();
                let mut authz = AuthorizationServiceClient::new(channel.clone());
                let mut rng = SmallRng::seed_from_u64(0x9e37 ^ (round * 31 + i) as u64);
                tokio::spawn(async move {
                    let outcome = first_check_at(&ctx, &mut authz, &mut rng, version).await;
                    (Instant::now(), outcome)
                })
            })
            .collect();
        let mut seen = Vec::with_capacity(probes.len());
        for p in probes {
            seen.push(p.await.unwrap_or((Instant::now(), Err(tonic::Code::Internal))));
        }
        if sent < ctx.measure_from {
            continue;
        }
        for (at, outcome) in &seen {
            rec.record(Kind::Visible, *at - ctx.measure_from, *at - acked, *outcome);
        }
        let last = seen.iter().map(|(at, _)| *at).max().unwrap_or(acked);
        let all = seen.iter().try_fold(0, |n, (_, o)| o.map(|k| n + k));
        rec.record(Kind::Fleet, last - ctx.measure_from, last - acked, all);
    }
    rec
}

/// Checks with `min_version = version` until the server answers from it (or fails otherwise).
async fn first_check_at(
    ctx: &Ctx,
    authz: &mut AuthorizationServiceClient<Channel>,
    rng: &mut SmallRng,
    version: u64,
) -> Result<u64, tonic::Code> {
    loop {
        let mut wire = to_wire(&ctx.workload.draw(rng, Timestamp::now()));
        wire.min_version = version;
        match authz.check(wire).await {
            Ok(_) => return Ok(1),
            Err(s) if s.code() == tonic::Code::FailedPrecondition => continue,
            Err(s) => return Err(s.code()),
        }
    }
}
