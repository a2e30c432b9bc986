//! The run: workers (closed or open loop), an optional pusher, a progress line.

use crate::stats::{Kind, Recorder, Timeline};
use crate::workload::{Workload, resources_to_wire, to_wire};
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
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
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

/// A decision client that sends the check credential, if one was given.
type Authz = AuthorizationServiceClient<InterceptedService<Channel, CheckCredential>>;

/// Adds `authorization: Bearer <check token>` to decision calls.
#[derive(Debug, Clone)]
struct CheckCredential(Option<MetadataValue<Ascii>>);

impl Interceptor for CheckCredential {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

struct Ctx {
    workload: Workload,
    check_credential: CheckCredential,
    reference: Option<Snapshot>,
    mix: Mix,
    batch_size: usize,
    rate: Option<f64>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    max_requests: Option<u64>,
    ticket: AtomicU64,
    timeline: Arc<Timeline>,
    /// Open loop: one permit per call due (see [`pace`]).
    permits: tokio::sync::Semaphore,
    done: AtomicU64,
    stop: AtomicBool,
}

impl Ctx {
    fn authz(&self, channel: &Channel) -> Authz {
        AuthorizationServiceClient::with_interceptor(channel.clone(), self.check_credential.clone())
    }

    fn finished(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self
                .max_requests
                .is_some_and(|m| self.done.load(Ordering::Relaxed) >= m)
    }
}

/// `--write-bodies`: the bundle's workload, one request per decision RPC, for h2load.
pub async fn write_bodies(args: &Args, dir: &std::path::Path) -> Result<()> {
    let bytes = std::fs::read(&args.bundle).with_context(|| format!("cannot read `{}`", args.bundle.display()))?;
    let bundle = parse_bundle(&bytes, Format::from_path(&args.bundle.to_string_lossy()))
        .with_context(|| format!("`{}`", args.bundle.display()))?;
    let workload = Workload::from_bundle(&bundle, args.skew)?;
    let snapshot = compile(&bundle, 0).context("the bundle does not compile")?;
    let target = args.target.split(',').next().unwrap_or_default().trim();
    let channel = connect(target).await?;
    crate::bodies::write(&workload, &snapshot, channel, args.batch_size.max(1), args.seed, dir).await
}

/// Runs the load described by `args` against its target.
pub async fn run(args: &Args, mix: Mix) -> Result<Outcome> {
    let bytes = std::fs::read(&args.bundle).with_context(|| format!("cannot read `{}`", args.bundle.display()))?;
    let format = Format::from_path(&args.bundle.to_string_lossy());
    let bundle = parse_bundle(&bytes, format).with_context(|| format!("`{}`", args.bundle.display()))?;
    let mut workload = Workload::from_bundle(&bundle, args.skew)?;
    let compiled = if args.verify || args.revoke_every.is_some() {
        Some(compile(&bundle, 0).context("the bundle does not compile")?)
    } else {
        None
    };
    // The principal revoked and reinstated during the run; the rest of the load leaves them
    // out so `--verify` can compare with the bundle alone.
    let probe = match (args.revoke_every, &compiled) {
        (Some(_), Some(snapshot)) => {
            Some(workload.split_probe(|r| snapshot.check(r, Overlay::empty()).is_allowed(), Timestamp::now())?)
        }
        _ => None,
    };
    let reference = compiled.filter(|_| args.verify);
    let targets: Vec<&str> = args
        .target
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if targets.is_empty() {
        anyhow::bail!("no target given");
    }
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        for target in &targets {
            channels.push(connect(target).await?);
        }
    }
    let start = Instant::now();
    let measure_from = start + Duration::from(args.warmup);
    let check_credential = match &args.check_token {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse()
                .context("the check token is not a valid header value")?,
        ),
        None => None,
    };
    let ctx = Arc::new(Ctx {
        workload,
        check_credential: CheckCredential(check_credential),
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
        timeline: Arc::default(),
        permits: tokio::sync::Semaphore::new(0),
        done: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });

    let pacer = match args.rate {
        Some(rate) => {
            let ctx = ctx.clone();
            Some(
                std::thread::Builder::new()
                    .name("pacer".into())
                    .spawn(move || pace(ctx, rate))?,
            )
        }
        None => None,
    };
    let progress = tokio::spawn(progress(ctx.clone()));
    let token = args.token.clone().or_else(|| {
        std::fs::read_to_string("data/admin-token")
            .ok()
            .map(|t| t.trim().to_owned())
    });
    let changes = [
        args.push_every.map(|every| {
            (
                Change::Push {
                    bundle: bytes.clone(),
                    format,
                },
                every,
            )
        }),
        args.revoke_every
            .zip(probe)
            .map(|(every, probe)| (Change::Revoke { probe }, every)),
    ];
    let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    let changers = changes
        .into_iter()
        .flatten()
        .map(|(change, every)| {
            let (ctx, targets, token) = (ctx.clone(), targets.clone(), token.clone());
            std::thread::Builder::new()
                .name("changer".into())
                .spawn(move || change_apart(ctx, &targets, change, every.into(), token))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let workers: Vec<_> = channels
        .iter()
        .cycle()
        .take(args.concurrency.max(1))
        .enumerate()
        .map(|(i, channel)| tokio::spawn(worker(ctx.clone(), channel.clone(), args.seed.wrapping_add(i as u64))))
        .collect();
    let mut recorder = Recorder::new(ctx.timeline.clone(), []);
    for w in workers {
        recorder.merge(&w.await?);
    }
    ctx.stop.store(true, Ordering::Relaxed);
    if let Some(p) = pacer {
        let _ = tokio::task::spawn_blocking(move || p.join()).await;
    }
    for c in changers {
        let changed = tokio::task::spawn_blocking(move || c.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the changer thread panicked"))??;
        recorder.merge(&changed);
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
    let mut authz = ctx.authz(&channel);
    let mut health = HealthClient::new(channel);
    let mut rec = Recorder::new(ctx.timeline.clone(), ctx.mix.kinds());
    loop {
        if ctx.finished() {
            break;
        }
        let intended = match ctx.rate {
            Some(rate) => {
                let Ok(permit) = ctx.permits.acquire().await else { break };
                permit.forget();
                let i = ctx.ticket.fetch_add(1, Ordering::Relaxed);
                ctx.start + Duration::from_secs_f64(i as f64 / rate)
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

/// Open loop: releases one permit at each call's scheduled instant, from a thread of its
/// own that sleeps with the OS's microsecond timer (tokio's timer ticks in milliseconds
/// and would send calls in bursts). A worker takes a permit, then the next ticket; the
/// ticket's instant is when the call was due, and latency is measured from it, so a
/// backlog (no worker free, or a slow server) counts (no coordinated omission).
fn pace(ctx: Arc<Ctx>, rate: f64) {
    let permits = &ctx.permits;
    let start = ctx.start.into_std();
    let end = ctx.end.into_std();
    let mut released: u64 = 0;
    while !ctx.finished() {
        let now = std::time::Instant::now();
        if now >= end {
            break;
        }
        // Every call due by now (there can be several after a late wake-up).
        let due = (now.duration_since(start).as_secs_f64() * rate) as u64 + 1;
        if due > released {
            permits.add_permits(usize::try_from(due - released).unwrap_or(usize::MAX));
            released = due;
        }
        let next = start + Duration::from_secs_f64(released as f64 / rate);
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
    }
    permits.close();
}

/// Makes one call; `Ok(decisions)` or the status code.
async fn call(
    ctx: &Ctx,
    kind: Kind,
    rng: &mut SmallRng,
    authz: &mut Authz,
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
            verify(ctx, &req, spelled(d.as_ref()), rec);
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
                verify(ctx, req, spelled(Some(d)), rec);
            }
            Ok(resp.decisions.len() as u64)
        }
        Kind::Resources => {
            let (base, items) = ctx.workload.draw_resources(rng, now, ctx.batch_size);
            let msg = resources_to_wire(&base, &items);
            let resp = authz.check_resources(msg).await.map_err(|s| s.code())?.into_inner();
            if ctx.reference.is_some() && resp.decisions.len() != items.len() {
                rec.mismatches += 1;
            }
            let mut req = base;
            for ((resource, action), d) in items.into_iter().zip(&resp.decisions) {
                req.resource = resource;
                req.action = action;
                let reason = pb::ReasonCode::try_from(d.reason).map_or("", |c| c.as_str_name());
                verify(ctx, &req, (d.effect, reason), rec);
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
        Kind::Push | Kind::Visible | Kind::Fleet | Kind::Revoke | Kind::Denied | Kind::RevokeFleet => Ok(0),
    }
}

/// A Check decision as `verify` compares it: effect and reason code name.
fn spelled(d: Option<&pb::Decision>) -> (i32, &str) {
    d.map_or((0, ""), |d| (d.effect, d.reason.as_str()))
}

/// `--verify`: the server's decision (effect, and reason as `granted` or as its
/// `REASON_CODE_GRANTED` code name) must equal the bundle's own.
fn verify(ctx: &Ctx, req: &portcullis_policy::Request, got: (i32, &str), rec: &mut Recorder) {
    let Some(reference) = &ctx.reference else { return };
    let want = reference.check(req, Overlay::empty());
    let want_effect = if want.effect == Effect::Allow {
        pb::Effect::Allow
    } else {
        pb::Effect::Deny
    } as i32;
    let reason = got.1.strip_prefix("REASON_CODE_").map(str::to_lowercase);
    let same = got.0 == want_effect && reason.as_deref().unwrap_or(got.1) == want.reason.as_str();
    if !same {
        rec.mismatches += 1;
        if rec.mismatch_examples.len() < 5 {
            rec.mismatch_examples.push(format!(
                "{} {} {}/{}: server {:?}, bundle {:?} ({})",
                req.principal,
                req.action,
                req.resource.resource_type,
                req.resource.id,
                got,
                want.effect,
                want.reason.as_str()
            ));
        }
    }
}

/// What `--push-every` and `--revoke-every` change on the fleet while the load runs.
enum Change {
    /// Push the bundle; a replica has the change once it answers from the pushed version.
    Push { bundle: Vec<u8>, format: Format },
    /// Revoke the probe principal; a replica has the change once it denies them as
    /// revoked. Reinstated, and awaited on every replica, before the next round.
    Revoke { probe: Workload },
}

impl Change {
    /// The kinds this change is recorded under: the admin call, the per-replica time to
    /// see it, and the whole fleet's.
    fn kinds(&self) -> [Kind; 3] {
        match self {
            Change::Push { .. } => [Kind::Push, Kind::Visible, Kind::Fleet],
            Change::Revoke { .. } => [Kind::Revoke, Kind::Denied, Kind::RevokeFleet],
        }
    }

    /// Makes the change through one replica; the version pushed or the overlay sequence.
    async fn apply(&self, channel: &Channel, token: Option<&str>) -> Result<u64, tonic::Code> {
        let mut admin = PolicyAdminServiceClient::new(channel.clone());
        let result = match self {
            Change::Push { bundle, format } => admin
                .push_snapshot(authorized(
                    pb::PushSnapshotRequest {
                        bundle: bundle.clone(),
                        format: match format {
                            Format::Json => pb::BundleFormat::Json,
                            Format::Yaml => pb::BundleFormat::Yaml,
                        } as i32,
                        author: "portcullis-loadtest".into(),
                        expected_parent_version: None,
                        message: "load-test push".into(),
                    },
                    token,
                ))
                .await
                .map(|r| r.into_inner().version),
            Change::Revoke { probe } => admin
                .revoke_principal(authorized(
                    pb::RevokePrincipalRequest {
                        principal: probe.sole_principal().unwrap_or_default().to_owned(),
                        reason: "load-test revocation".into(),
                        author: "portcullis-loadtest".into(),
                    },
                    token,
                ))
                .await
                .map(|r| r.into_inner().overlay_seq),
        };
        result.map_err(|s| s.code())
    }

    /// Checks on one replica until it answers with the change applied.
    async fn first_seen(
        &self,
        ctx: &Ctx,
        authz: &mut Authz,
        rng: &mut SmallRng,
        applied: u64,
    ) -> Result<u64, tonic::Code> {
        match self {
            Change::Push { .. } => loop {
                // The replica waits (up to its consistency bound) for the version itself.
                let mut wire = to_wire(&ctx.workload.draw(rng, Timestamp::now()));
                wire.min_version = applied;
                match authz.check(wire).await {
                    Ok(_) => return Ok(1),
                    Err(s) if s.code() == tonic::Code::FailedPrecondition => continue,
                    Err(s) => return Err(s.code()),
                }
            },
            // No consistency token: an ordinary caller's next check must be denied.
            Change::Revoke { probe } => {
                let give_up = Instant::now() + CHANGE_DEADLINE;
                loop {
                    let d = authz
                        .check(to_wire(&probe.draw(rng, Timestamp::now())))
                        .await
                        .map_err(|s| s.code())?
                        .into_inner()
                        .decision;
                    if d.is_some_and(|d| d.reason == "principal_revoked") {
                        return Ok(1);
                    }
                    if Instant::now() >= give_up {
                        return Err(tonic::Code::DeadlineExceeded);
                    }
                }
            }
        }
    }

    /// Puts the fleet back as it was before the change, so the next round observes a
    /// change again: reinstates the probe and waits until every replica allows it.
    async fn undo(
        &self,
        ctx: &Ctx,
        via: &Channel,
        replicas: &[(String, Channel)],
        token: Option<&str>,
    ) -> Result<(), tonic::Code> {
        let Change::Revoke { probe } = self else { return Ok(()) };
        let seq = PolicyAdminServiceClient::new(via.clone())
            .reinstate_principal(authorized(
                pb::ReinstatePrincipalRequest {
                    principal: probe.sole_principal().unwrap_or_default().to_owned(),
                    reason: "load-test reinstatement".into(),
                    author: "portcullis-loadtest".into(),
                },
                token,
            ))
            .await
            .map_err(|s| s.code())?
            .into_inner()
            .overlay_seq;
        let mut rng = SmallRng::seed_from_u64(seq);
        for (_, channel) in replicas {
            let mut wire = to_wire(&probe.draw(&mut rng, Timestamp::now()));
            wire.min_overlay_seq = seq;
            let d = ctx
                .authz(channel)
                .check(wire)
                .await
                .map_err(|s| s.code())?
                .into_inner()
                .decision;
            if d.is_none_or(|d| d.effect != pb::Effect::Allow as i32) {
                return Err(tonic::Code::Aborted);
            }
        }
        Ok(())
    }
}

/// How long a replica may take to show a change before the sample counts as failed.
const CHANGE_DEADLINE: Duration = Duration::from_secs(5);

/// `msg` with the admin token, if there is one.
fn authorized<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(t) = token
        && let Ok(v) = format!("Bearer {t}").parse()
    {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

/// A connection to `target`.
async fn connect(target: &str) -> Result<Channel> {
    Channel::from_shared(target.to_owned())
        .with_context(|| format!("bad target `{target}`"))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {target}"))
}

/// [`changer`] on the calling thread, with connections of its own: encoding and sending a
/// large bundle would otherwise hold up the checks sharing its thread and connection, and
/// the client's own stall would count against the server.
fn change_apart(
    ctx: Arc<Ctx>,
    targets: &[String],
    change: Change,
    every: Duration,
    token: Option<String>,
) -> Result<Recorder> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut replicas = Vec::new();
        for target in targets {
            replicas.push((target.clone(), connect(target).await?));
        }
        Ok(changer(ctx, replicas, Arc::new(change), every, token).await)
    })
}

/// Makes `change` every `every`, rotating over the replicas, and measures for each round
/// how long each replica takes to show it and how long the whole fleet takes.
async fn changer(
    ctx: Arc<Ctx>,
    replicas: Vec<(String, Channel)>,
    change: Arc<Change>,
    every: Duration,
    token: Option<String>,
) -> Recorder {
    let [ack_kind, replica_kind, fleet_kind] = change.kinds();
    let mut rec = Recorder::new(ctx.timeline.clone(), []);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut round = 0usize;
    while !ctx.finished() && Instant::now() < ctx.end {
        tick.tick().await;
        let Some((_, via)) = replicas.get(round % replicas.len()) else {
            break;
        };
        round += 1;
        let sent = Instant::now();
        let applied = change.apply(via, token.as_deref()).await;
        let acked = Instant::now();
        let measured = sent >= ctx.measure_from;
        if measured {
            rec.record(ack_kind, acked - ctx.measure_from, acked - sent, applied.map(|_| 0));
        }
        let Ok(applied) = applied else { continue };
        let probes: Vec<_> = replicas
            .iter()
            .enumerate()
            .map(|(i, (_, channel))| {
                let (ctx, change) = (ctx.clone(), change.clone());
                let mut authz = ctx.authz(channel);
                let mut rng = SmallRng::seed_from_u64(0x9e37 ^ (round * 31 + i) as u64);
                tokio::spawn(async move {
                    let outcome = change.first_seen(&ctx, &mut authz, &mut rng, applied).await;
                    (Instant::now(), outcome)
                })
            })
            .collect();
        let mut seen = Vec::with_capacity(probes.len());
        for p in probes {
            seen.push(p.await.unwrap_or((Instant::now(), Err(tonic::Code::Internal))));
        }
        let undone = change.undo(&ctx, via, &replicas, token.as_deref()).await;
        if !measured {
            continue;
        }
        for ((target, _), (at, outcome)) in replicas.iter().zip(&seen) {
            rec.record_on(target, replica_kind, *at - ctx.measure_from, *at - acked, *outcome);
        }
        let last = seen.iter().map(|(at, _)| *at).max().unwrap_or(acked);
        let all = seen.iter().try_fold(0, |n, (_, o)| o.map(|k| n + k));
        rec.record(fleet_kind, last - ctx.measure_from, last - acked, all);
        if let Err(code) = undone {
            let now = Instant::now();
            rec.record(ack_kind, now - ctx.measure_from, now - acked, Err(code));
        }
    }
    rec
}
