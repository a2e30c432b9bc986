//! `AuthorizationService`: decisions, row filters and access reviews, lock-free on the live snapshot.

use super::{CallAudit, Caller, Limits, Telemetry};
use crate::clock::{DecisionTime, TimePolicy};
use crate::convert;
use crate::engine::{Engine, Live};
use crate::status::{behind, not_serving, stale};
use portcullis_policy::{Decision, Listing, Overlay, Target};
use portcullis_proto::v1 as pb;
use portcullis_proto::v1::authorization_service_server::AuthorizationService;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// The decision API.
#[derive(Debug, Clone)]
pub struct AuthorizationApi {
    engine: Arc<Engine>,
    limits: Limits,
    telemetry: Telemetry,
    time: TimePolicy,
    consistency_wait: Duration,
}

impl AuthorizationApi {
    /// Serves decisions from `engine`'s live snapshot, at the times `time` allows; a
    /// request that needs a newer version or overlay waits up to `consistency_wait`.
    pub fn new(
        engine: Arc<Engine>,
        limits: Limits,
        telemetry: Telemetry,
        time: TimePolicy,
        consistency_wait: Duration,
    ) -> Self {
        AuthorizationApi {
            engine,
            limits,
            telemetry,
            time,
            consistency_wait,
        }
    }

    /// The live snapshot and overlay, once they are at least `min_version` and
    /// `min_overlay_seq` (waiting up to `consistency_wait` for them to arrive). Refuses when
    /// there is no snapshot, or when this replica has lost its store for too long.
    async fn live(&self, min_version: u64, min_overlay_seq: u64) -> Result<(Arc<Live>, Arc<Overlay>), Status> {
        if self.engine.is_stale() {
            return Err(stale(self.engine.since_sync_ms()));
        }
        let current =
            |engine: &Engine| Ok::<_, Status>((engine.live().ok_or_else(not_serving)?, engine.overlay_full()));
        let (mut live, mut overlay) = current(&self.engine)?;
        // Only a caller that is ahead of this replica pays for waiting.
        if live.meta.version < min_version || overlay.seq < min_overlay_seq {
            let (mut versions, mut seqs) = (self.engine.watch_version(), self.engine.watch_overlay_seq());
            let _ = tokio::time::timeout(self.consistency_wait, async {
                let _ = versions.wait_for(|v| *v >= min_version).await;
                let _ = seqs.wait_for(|s| *s >= min_overlay_seq).await;
            })
            .await;
            (live, overlay) = current(&self.engine)?;
            if live.meta.version < min_version {
                return Err(behind("snapshot version", live.meta.version, min_version));
            }
            if overlay.seq < min_overlay_seq {
                return Err(behind("overlay change", overlay.seq, min_overlay_seq));
            }
        }
        Ok((live, overlay))
    }

    /// Decides one request, counts it, and audits it as A1 requires.
    async fn decide(
        &self,
        live: &Live,
        overlay: &Overlay,
        call: &mut CallAudit<'_>,
        r: pb::CheckRequest,
        explain: bool,
    ) -> Result<pb::Decision, Status> {
        let hide = r.hide_forbidden;
        let mut request = convert::request(r)?;
        let time = self
            .time
            .resolve(request.at.map(|t| t.0), &request.session, call.caller().what_if())?;
        request.at = Some(time.at);
        let d = if explain {
            live.snapshot.explain(&request, overlay)
        } else {
            live.snapshot.check(&request, overlay)
        };
        if d.is_allowed() {
            self.observe_login(&request, time);
        }
        let d = self.telemetry.decided(call, &request, time, d).await;
        Ok(convert::decision(&live.snapshot, d, hide, overlay.seq))
    }

    /// R7: an allowed request's login counts as the principal's activity.
    fn observe_login(&self, request: &portcullis_policy::Request, time: DecisionTime) {
        if let Some(login) = self.time.observed_login(time, &request.session) {
            self.engine.observe_activity(&request.principal, login);
        }
    }

    /// Refuses a call that asks for more than `max_batch` decisions.
    fn within_batch_limit(&self, decisions: usize, what: &str) -> Result<(), Status> {
        if decisions > self.limits.max_batch {
            return Err(Status::invalid_argument(format!(
                "batch of {decisions} {what} exceeds the limit of {}",
                self.limits.max_batch
            )));
        }
        Ok(())
    }

    async fn single(
        &self,
        request: Request<pb::CheckRequest>,
        explain: bool,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let caller = Caller::of(&request);
        let r = request.into_inner();
        let (live, overlay) = self.live(r.min_version, r.min_overlay_seq).await?;
        let mut call = CallAudit::new(&caller, &live);
        let decision = self.decide(&live, &overlay, &mut call, r, explain).await?;
        Ok(Response::new(pb::CheckResponse {
            decision: Some(decision),
        }))
    }
}

#[tonic::async_trait]
impl AuthorizationService for AuthorizationApi {
    async fn check(&self, request: Request<pb::CheckRequest>) -> Result<Response<pb::CheckResponse>, Status> {
        let span = self.telemetry.span("Check", &request);
        async move {
            let _timer = self.telemetry.metrics.time("Check");
            self.single(request, false).await
        }
        .instrument(span)
        .await
    }

    async fn explain(&self, request: Request<pb::CheckRequest>) -> Result<Response<pb::CheckResponse>, Status> {
        let span = self.telemetry.span("Explain", &request);
        async move {
            let _timer = self.telemetry.metrics.time("Explain");
            self.single(request, true).await
        }
        .instrument(span)
        .await
    }

    async fn batch_check(
        &self,
        request: Request<pb::BatchCheckRequest>,
    ) -> Result<Response<pb::BatchCheckResponse>, Status> {
        let span = self.telemetry.span("BatchCheck", &request);
        async move {
            let _timer = self.telemetry.metrics.time("BatchCheck");
            let caller = Caller::of(&request);
            let r = request.into_inner();
            self.within_batch_limit(r.requests.len(), "requests")?;
            let (live, overlay) = self.live(r.min_version, r.min_overlay_seq).await?;
            let mut call = CallAudit::new(&caller, &live);
            let mut decisions = Vec::with_capacity(r.requests.len());
            for (i, req) in r.requests.into_iter().enumerate() {
                let d = self
                    .decide(&live, &overlay, &mut call, req, false)
                    .await
                    .map_err(|s| Status::new(s.code(), format!("requests[{i}]: {}", s.message())))?;
                decisions.push(d);
            }
            Ok(Response::new(pb::BatchCheckResponse {
                decisions,
                version: live.meta.version,
            }))
        }
        .instrument(span)
        .await
    }

    async fn check_resources(
        &self,
        request: Request<pb::CheckResourcesRequest>,
    ) -> Result<Response<pb::CheckResourcesResponse>, Status> {
        let span = self.telemetry.span("CheckResources", &request);
        async move {
            let _timer = self.telemetry.metrics.time("CheckResources");
            let caller = Caller::of(&request);
            let r = request.into_inner();
            let asked: usize = r.items.iter().map(|i| i.actions.len()).sum();
            self.within_batch_limit(asked, "decisions")?;
            for (i, item) in r.items.iter().enumerate() {
                if item.resource.is_none() {
                    return Err(Status::invalid_argument(format!("items[{i}]: `resource` is required")));
                }
                if item.actions.is_empty() {
                    return Err(Status::invalid_argument(format!(
                        "items[{i}]: give at least one action"
                    )));
                }
            }
            let (live, overlay) = self.live(r.min_version, r.min_overlay_seq).await?;
            let session = convert::session(r.session.unwrap_or_default())?;
            let time = self.time.resolve(r.at, &session, caller.what_if())?;
            let mut request = portcullis_policy::Request {
                principal: r.principal,
                session,
                at: Some(time.at),
                ..Default::default()
            };
            let mut call = CallAudit::new(&caller, &live);
            let mut notes = self.telemetry.notes(&mut call, &request, time);
            let mut decided = Vec::with_capacity(asked);
            let items = r
                .items
                .into_iter()
                .map(|i| (convert::resource(i.resource.unwrap_or_default()), i.actions));
            live.snapshot.check_each(&mut request, items, &overlay, |req, d| {
                if let Some(notes) = &mut notes {
                    notes.add(decided.len(), req, &d);
                }
                decided.push(d);
            });
            if decided.iter().any(Decision::is_allowed) {
                self.observe_login(&request, time);
            }
            self.telemetry.settle_all(&call, notes, &mut decided).await;
            let mut rules = convert::RuleTable::default();
            let decisions = decided
                .into_iter()
                .map(|d| convert::compact(&live.snapshot, d, r.hide_forbidden, &mut rules))
                .collect();
            Ok(Response::new(pb::CheckResourcesResponse {
                decisions,
                rules: rules.into_names(),
                version: live.meta.version,
                overlay_seq: overlay.seq,
            }))
        }
        .instrument(span)
        .await
    }

    async fn filter_rows(
        &self,
        request: Request<pb::FilterRowsRequest>,
    ) -> Result<Response<pb::FilterRowsResponse>, Status> {
        let span = self.telemetry.span("FilterRows", &request);
        async move {
            let _timer = self.telemetry.metrics.time("FilterRows");
            let caller = Caller::of(&request);
            let r = request.into_inner();
            let (live, overlay) = self.live(r.min_version, r.min_overlay_seq).await?;
            let session = convert::session(r.session.unwrap_or_default())?;
            let now = self.time.resolve(r.at, &session, caller.what_if())?.at;
            let filter = live
                .snapshot
                .filter_rows(&r.principal, &r.action, &r.resource_type, &session, now, &overlay);
            Ok(Response::new(convert::filter(&live.snapshot, &filter)))
        }
        .instrument(span)
        .await
    }

    async fn list_subjects(
        &self,
        request: Request<pb::ListSubjectsRequest>,
    ) -> Result<Response<pb::ListSubjectsResponse>, Status> {
        let span = self.telemetry.span("ListSubjects", &request);
        async move {
            let _timer = self.telemetry.metrics.time("ListSubjects");
            let r = request.into_inner();
            let (live, overlay) = self.live(r.min_version, 0).await?;
            let listing = Listing {
                at: self.time.decision_time(r.at, true)?.at,
                overlay: &overlay,
                usable_only: r.usable_only,
            };
            let target = match (&r.resource_id, &r.tenant) {
                (Some(id), tenant) => Target::Resource {
                    id,
                    tenant: tenant.as_deref(),
                    owner: r.owner.as_deref(),
                },
                (None, Some(t)) => Target::Tenant(t),
                (None, None) => return Err(Status::invalid_argument("give `tenant`, `resource_id`, or both")),
            };
            let paths = live
                .snapshot
                .list_subjects(&r.action, &r.resource_type, target, &listing);
            Ok(Response::new(pb::ListSubjectsResponse {
                paths: paths.into_iter().map(convert::access_path).collect(),
                version: live.meta.version,
            }))
        }
        .instrument(span)
        .await
    }

    async fn list_principal_access(
        &self,
        request: Request<pb::ListPrincipalAccessRequest>,
    ) -> Result<Response<pb::ListPrincipalAccessResponse>, Status> {
        let span = self.telemetry.span("ListPrincipalAccess", &request);
        async move {
            let _timer = self.telemetry.metrics.time("ListPrincipalAccess");
            let r = request.into_inner();
            let (live, overlay) = self.live(r.min_version, 0).await?;
            let listing = Listing {
                at: self.time.decision_time(r.at, true)?.at,
                overlay: &overlay,
                usable_only: r.usable_only,
            };
            let paths = live.snapshot.list_principal_access(&r.principal, &listing);
            Ok(Response::new(pb::ListPrincipalAccessResponse {
                paths: paths.into_iter().map(convert::access_path).collect(),
                version: live.meta.version,
            }))
        }
        .instrument(span)
        .await
    }
}
