//! `--write-bodies DIR`: one request of each decision RPC drawn from the workload, sent once
//! to the target (each must succeed, and the Check must allow, so a neutral client replaying
//! it measures real decisions), then written gRPC-framed for h2load (`-d FILE`). The Check
//! is on a sensitive type when there is one, so the default audit trail records each call.

use crate::workload::{Workload, resources_to_wire, to_wire};
use anyhow::{Context, Result, bail};
use portcullis_policy::{Overlay, Snapshot, Timestamp};
use portcullis_proto::v1 as pb;
use portcullis_proto::v1::authorization_service_client::AuthorizationServiceClient;
use prost::Message;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::path::Path;
use tonic::transport::Channel;

/// A message as one gRPC frame: no compression flag, big-endian length, the bytes.
fn framed(message: &impl Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut out = Vec::with_capacity(bytes.len() + 5);
    out.push(0);
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&bytes);
    out
}

/// Draws, checks against `target` and writes `health.bin`, `check.bin`, `batch.bin`
/// (`batch_size` requests), `resources.bin` (`batch_size` items) and `filter.bin` in `dir`.
/// Times are left to the server; session times are now, so replay them within minutes.
pub async fn write(
    workload: &Workload,
    snapshot: &Snapshot,
    channel: Channel,
    batch_size: usize,
    seed: u64,
    dir: &Path,
) -> Result<()> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let now = Timestamp::now();
    let mut authz = AuthorizationServiceClient::new(channel);
    let unset_time = |mut w: pb::CheckRequest| {
        w.at = None;
        w
    };
    // An allowed Check, on a sensitive type when the bundle has one: A1 records every such
    // decision, so a server with the default audit trail records every replayed call.
    let drawn: Vec<_> = (0..10_000)
        .map(|_| workload.draw(&mut rng, now))
        .filter(|r| snapshot.check(r, Overlay::empty()).is_allowed())
        .collect();
    let check = drawn
        .iter()
        .find(|r| snapshot.is_sensitive(&r.resource.resource_type))
        .or(drawn.first())
        .context("no drawn request is allowed by the bundle")?;
    let check = unset_time(to_wire(check));
    let d = authz.check(check.clone()).await.context("Check")?.into_inner().decision;
    if d.as_ref().is_none_or(|d| d.effect != pb::Effect::Allow as i32) {
        bail!("the server does not allow the drawn Check: {d:?}");
    }
    let batch = pb::BatchCheckRequest {
        requests: (0..batch_size)
            .map(|_| unset_time(to_wire(&workload.draw(&mut rng, now))))
            .collect(),
        ..Default::default()
    };
    authz.batch_check(batch.clone()).await.context("BatchCheck")?;
    // A call of a principal the bundle mostly allows (as the Check allows).
    let mostly_allowed = |(base, items): &(portcullis_policy::Request, Vec<(portcullis_policy::Resource, String)>)| {
        let mut allowed = 0;
        let checks = items.iter().map(|(r, a)| (r.clone(), [a.clone()]));
        snapshot.check_each(&mut base.clone(), checks, Overlay::empty(), |_, d| {
            allowed += usize::from(d.is_allowed());
        });
        allowed * 5 >= items.len() * 4
    };
    let (base, items) = (0..1_000)
        .map(|_| workload.draw_resources(&mut rng, now, batch_size))
        .find(mostly_allowed)
        .context("no drawn CheckResources call is mostly allowed by the bundle")?;
    let resources = pb::CheckResourcesRequest {
        at: None,
        ..resources_to_wire(&base, &items)
    };
    let answer = authz
        .check_resources(resources.clone())
        .await
        .context("CheckResources")?
        .into_inner();
    let allowed = answer
        .decisions
        .iter()
        .filter(|d| d.effect == pb::Effect::Allow as i32)
        .count();
    let filter = pb::FilterRowsRequest {
        principal: check.principal.clone(),
        action: check.action.clone(),
        resource_type: check.resource.as_ref().map(|r| r.r#type.clone()).unwrap_or_default(),
        session: check.session.clone(),
        ..Default::default()
    };
    authz.filter_rows(filter.clone()).await.context("FilterRows")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let files = [
        ("health.bin", framed(&tonic_health::pb::HealthCheckRequest::default())),
        ("check.bin", framed(&check)),
        ("batch.bin", framed(&batch)),
        ("resources.bin", framed(&resources)),
        ("filter.bin", framed(&filter)),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    eprintln!(
        "bodies in {}: Check allows; CheckResources of {} ({allowed} allowed)",
        dir.display(),
        answer.decisions.len()
    );
    Ok(())
}
