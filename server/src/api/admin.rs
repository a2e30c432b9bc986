//! `PolicyAdminService`: pushes, dry runs, versions, rollbacks and overlay changes.

use super::{Caller, Limits, Telemetry};
use crate::convert;
use crate::engine::{Engine, EngineError, Push, TemporaryRequest};
use crate::store::VersionMeta;
use portcullis_policy::CompileError;
use portcullis_proto::v1 as pb;
use portcullis_proto::v1::policy_admin_service_server::PolicyAdminService;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// The admin API. Authentication is enforced by the interceptor in front of it.
#[derive(Debug, Clone)]
pub struct AdminApi {
    engine: Arc<Engine>,
    limits: Limits,
    telemetry: Telemetry,
}

impl AdminApi {
    /// Administers `engine`.
    pub fn new(engine: Arc<Engine>, limits: Limits, telemetry: Telemetry) -> Self {
        AdminApi {
            engine,
            limits,
            telemetry,
        }
    }

    /// Records a change in the audit trail with its outcome (A1), then returns it.
    async fn audited<T>(
        &self,
        caller: &Caller,
        operation: &str,
        author: &str,
        result: Result<T, EngineError>,
        describe: impl FnOnce(&T) -> String,
    ) -> Result<T, Status> {
        let text = result.as_ref().map(describe).map_err(ToString::to_string);
        self.telemetry
            .admin(caller, operation, author, self.engine.version(), text)
            .await;
        result.map_err(Status::from)
    }

    fn check_size(&self, bundle: &[u8]) -> Result<(), Status> {
        if bundle.len() > self.limits.max_bundle_bytes {
            return Err(Status::resource_exhausted(format!(
                "bundle of {} bytes exceeds the limit of {} bytes",
                bundle.len(),
                self.limits.max_bundle_bytes
            )));
        }
        if bundle.is_empty() {
            return Err(Status::invalid_argument("`bundle` is empty"));
        }
        Ok(())
    }
}

fn version_info(m: &VersionMeta) -> pb::VersionInfo {
    pb::VersionInfo {
        version: m.version,
        parent: m.parent,
        author: m.author.clone(),
        pushed_at: m.pushed_at,
        content_hash: m.content_hash.clone(),
        message: m.message.clone(),
        rollback_of: m.rollback_of,
    }
}

fn pushed(m: VersionMeta) -> Response<pb::PushSnapshotResponse> {
    Response::new(pb::PushSnapshotResponse {
        version: m.version,
        content_hash: m.content_hash,
    })
}

fn author(a: String) -> String {
    if a.is_empty() { "unknown".to_owned() } else { a }
}

#[tonic::async_trait]
impl PolicyAdminService for AdminApi {
    async fn push_snapshot(
        &self,
        request: Request<pb::PushSnapshotRequest>,
    ) -> Result<Response<pb::PushSnapshotResponse>, Status> {
        let span = self.telemetry.span("PushSnapshot", &request);
        async move {
            let _timer = self.telemetry.metrics.time("PushSnapshot");
            let caller = Caller::of(&request);
            let r = request.into_inner();
            self.check_size(&r.bundle)?;
            let by = author(r.author);
            let started = std::time::Instant::now();
            let push = Push {
                format: convert::format(r.format)?,
                bundle: r.bundle,
                author: by.clone(),
                expected_parent: r.expected_parent_version,
                message: r.message,
                rollback_of: None,
            };
            let result = self.engine.push(push).await;
            if result.is_ok() {
                self.telemetry.metrics.compiled(started.elapsed().as_secs_f64());
            }
            let meta = self
                .audited(&caller, "push_snapshot", &by, result, |m| {
                    format!("version {} sha256 {}", m.version, m.content_hash)
                })
                .await?;
            tracing::info!(version = meta.version, author = %meta.author, hash = %meta.content_hash, "snapshot pushed");
            Ok(pushed(meta))
        }
        .instrument(span)
        .await
    }

    async fn validate_snapshot(
        &self,
        request: Request<pb::ValidateSnapshotRequest>,
    ) -> Result<Response<pb::ValidateSnapshotResponse>, Status> {
        let span = self.telemetry.span("ValidateSnapshot", &request);
        async move {
            let _timer = self.telemetry.metrics.time("ValidateSnapshot");
            let r = request.into_inner();
            self.check_size(&r.bundle)?;
            let format = convert::format(r.format)?;
            // The same work as a push, so whatever validates here also pushes.
            let problems = match self.engine.check_bundle(r.bundle, format).await {
                Ok(_) => Vec::new(),
                Err(EngineError::Compile(CompileError::Invalid(errors))) => {
                    errors.0.into_iter().map(convert::validation_problem).collect()
                }
                Err(EngineError::Compile(CompileError::Parse(e))) => vec![pb::ValidationProblem {
                    path: String::new(),
                    line: e.line.map_or(0, |l| u32::try_from(l).unwrap_or(u32::MAX)),
                    message: e.message,
                }],
                Err(e @ EngineError::Compile(CompileError::SelfCheck(_))) => vec![pb::ValidationProblem {
                    path: "tests".to_owned(),
                    line: 0,
                    message: e.to_string(),
                }],
                Err(other) => return Err(other.into()),
            };
            Ok(Response::new(pb::ValidateSnapshotResponse {
                valid: problems.is_empty(),
                problems,
            }))
        }
        .instrument(span)
        .await
    }

    async fn get_snapshot_info(
        &self,
        request: Request<pb::GetSnapshotInfoRequest>,
    ) -> Result<Response<pb::GetSnapshotInfoResponse>, Status> {
        let span = self.telemetry.span("GetSnapshotInfo", &request);
        async move {
            let _timer = self.telemetry.metrics.time("GetSnapshotInfo");
            let include_activity = request.get_ref().include_activity;
            let live = self.engine.live();
            let state = self.engine.overlay_state().await;
            let stats = live.as_ref().map(|l| l.snapshot.stats()).unwrap_or_default();
            Ok(Response::new(pb::GetSnapshotInfoResponse {
                live: live.as_ref().map(|l| version_info(&l.meta)),
                principals: stats.principals as u64,
                grants: stats.grants as u64,
                revoked: state
                    .revoked
                    .into_iter()
                    .map(|(principal, r)| pb::RevocationInfo {
                        principal,
                        reason: r.reason,
                        author: r.author,
                        at: r.at,
                    })
                    .collect(),
                temporary_grants: state
                    .temporary
                    .into_iter()
                    .map(|g| pb::TemporaryGrantInfo {
                        scope: convert::scope_text(&g.scope),
                        id: g.id,
                        principal: g.principal,
                        role: g.role,
                        expires_at: g.expires.0,
                    })
                    .collect(),
                observed_activity: if include_activity {
                    self.engine
                        .observed_activity()
                        .entries()
                        .into_iter()
                        .map(|(p, t)| (p, t.0))
                        .collect()
                } else {
                    Default::default()
                },
            }))
        }
        .instrument(span)
        .await
    }

    async fn list_versions(
        &self,
        request: Request<pb::ListVersionsRequest>,
    ) -> Result<Response<pb::ListVersionsResponse>, Status> {
        let span = self.telemetry.span("ListVersions", &request);
        async move {
            let _timer = self.telemetry.metrics.time("ListVersions");
            let (metas, corrupt) = self.engine.store().list().await.map_err(EngineError::from)?;
            for c in corrupt {
                tracing::warn!("{c}");
            }
            Ok(Response::new(pb::ListVersionsResponse {
                versions: metas.iter().map(version_info).collect(),
            }))
        }
        .instrument(span)
        .await
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::PushSnapshotResponse>, Status> {
        let span = self.telemetry.span("Rollback", &request);
        async move {
            let _timer = self.telemetry.metrics.time("Rollback");
            let caller = Caller::of(&request);
            let r = request.into_inner();
            let by = author(r.author);
            let result = self
                .engine
                .rollback(r.version, by.clone(), r.expected_parent_version)
                .await;
            let meta = self
                .audited(&caller, "rollback", &by, result, |m| {
                    format!("version {} restored as version {}", r.version, m.version)
                })
                .await?;
            tracing::info!(version = meta.version, restores = r.version, author = %meta.author, "rolled back");
            Ok(pushed(meta))
        }
        .instrument(span)
        .await
    }

    async fn revoke_principal(
        &self,
        request: Request<pb::RevokePrincipalRequest>,
    ) -> Result<Response<pb::RevokePrincipalResponse>, Status> {
        let span = self.telemetry.span("RevokePrincipal", &request);
        async move {
            let _timer = self.telemetry.metrics.time("RevokePrincipal");
            let caller = Caller::of(&request);
            let r = request.into_inner();
            let by = author(r.author);
            let what = format!("revoked `{}`: {}", r.principal, r.reason);
            let result = self.engine.revoke(r.principal, r.reason, by.clone()).await;
            let (version, overlay_seq) = self.audited(&caller, "revoke_principal", &by, result, |_| what).await?;
            Ok(Response::new(pb::RevokePrincipalResponse { version, overlay_seq }))
        }
        .instrument(span)
        .await
    }

    async fn reinstate_principal(
        &self,
        request: Request<pb::ReinstatePrincipalRequest>,
    ) -> Result<Response<pb::RevokePrincipalResponse>, Status> {
        let span = self.telemetry.span("ReinstatePrincipal", &request);
        async move {
            let _timer = self.telemetry.metrics.time("ReinstatePrincipal");
            let caller = Caller::of(&request);
            let r = request.into_inner();
            let by = author(r.author);
            let what = format!("reinstated `{}`: {}", r.principal, r.reason);
            let result = self.engine.reinstate(r.principal, r.reason, by.clone()).await;
            let (version, overlay_seq) = self
                .audited(&caller, "reinstate_principal", &by, result, |_| what)
                .await?;
            Ok(Response::new(pb::RevokePrincipalResponse { version, overlay_seq }))
        }
        .instrument(span)
        .await
    }

    async fn grant_temporary(
        &self,
        request: Request<pb::GrantTemporaryRequest>,
    ) -> Result<Response<pb::GrantTemporaryResponse>, Status> {
        let span = self.telemetry.span("GrantTemporary", &request);
        async move {
            let _timer = self.telemetry.metrics.time("GrantTemporary");
            let caller = Caller::of(&request);
            let r = request.into_inner();
            let by = author(r.author);
            let scope = convert::scope(r.all, r.tenant, r.resource_type, r.resource_ids)?;
            let result = self
                .engine
                .grant_temporary(TemporaryRequest {
                    principal: r.principal,
                    role: r.role,
                    scope,
                    ttl_seconds: (r.ttl_seconds > 0).then_some(r.ttl_seconds),
                    reason: r.reason.clone(),
                    author: by.clone(),
                })
                .await;
            let (g, overlay_seq) = self
                .audited(&caller, "grant_temporary", &by, result, |(g, _)| {
                    format!(
                        "{} gives `{}` role `{}` on {} until {}: {}",
                        g.id,
                        g.principal,
                        g.role,
                        convert::scope_text(&g.scope),
                        g.expires,
                        r.reason
                    )
                })
                .await?;
            Ok(Response::new(pb::GrantTemporaryResponse {
                id: g.id,
                expires_at: g.expires.0,
                overlay_seq,
            }))
        }
        .instrument(span)
        .await
    }

    async fn export_snapshot(
        &self,
        request: Request<pb::ExportSnapshotRequest>,
    ) -> Result<Response<pb::ExportSnapshotResponse>, Status> {
        let _timer = self.telemetry.metrics.time("ExportSnapshot");
        let version = match request.into_inner().version {
            Some(v) => v,
            None => self
                .engine
                .live()
                .map(|l| l.meta.version)
                .ok_or_else(crate::status::not_serving)?,
        };
        let (meta, bundle) = self
            .engine
            .store()
            .read_version(version)
            .await
            .map_err(EngineError::from)?;
        let format = if meta.format == "json" {
            pb::BundleFormat::Json
        } else {
            pb::BundleFormat::Yaml
        };
        Ok(Response::new(pb::ExportSnapshotResponse {
            info: Some(version_info(&meta)),
            bundle,
            format: format as i32,
        }))
    }
}
