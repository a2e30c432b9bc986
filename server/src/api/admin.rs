//! `PolicyAdminService`: pushes, dry runs, versions, rollbacks and overlay changes.

use super::Limits;
use crate::convert;
use crate::engine::{Engine, Push};
use crate::store::VersionMeta;
use portcullis_policy::{CompileError, parse_bundle, validate};
use portcullis_proto::v1 as pb;
use portcullis_proto::v1::policy_admin_service_server::PolicyAdminService;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The admin API. Authentication is enforced by the interceptor in front of it.
#[derive(Debug, Clone)]
pub struct AdminApi {
    engine: Arc<Engine>,
    limits: Limits,
}

impl AdminApi {
    /// Administers `engine`.
    pub fn new(engine: Arc<Engine>, limits: Limits) -> Self {
        AdminApi { engine, limits }
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
        let r = request.into_inner();
        self.check_size(&r.bundle)?;
        let meta = self
            .engine
            .push(Push {
                format: convert::format(r.format)?,
                bundle: r.bundle,
                author: author(r.author),
                expected_parent: r.expected_parent_version,
                message: r.message,
                rollback_of: None,
            })
            .await?;
        tracing::info!(version = meta.version, author = %meta.author, hash = %meta.content_hash, "snapshot pushed");
        Ok(pushed(meta))
    }

    async fn validate_snapshot(
        &self,
        request: Request<pb::ValidateSnapshotRequest>,
    ) -> Result<Response<pb::ValidateSnapshotResponse>, Status> {
        let r = request.into_inner();
        self.check_size(&r.bundle)?;
        let format = convert::format(r.format)?;
        let problems = tokio::task::spawn_blocking(move || match parse_bundle(&r.bundle, format) {
            Err(e) => vec![pb::ValidationProblem {
                path: e.line.map(|l| format!("line {l}")).unwrap_or_default(),
                message: e.message,
            }],
            Ok(bundle) => match validate(&bundle).map_err(CompileError::from) {
                Ok(()) => Vec::new(),
                Err(CompileError::Invalid(errors)) => errors
                    .0
                    .into_iter()
                    .map(|e| pb::ValidationProblem {
                        path: e.path,
                        message: e.problem.to_string(),
                    })
                    .collect(),
                Err(other) => vec![pb::ValidationProblem {
                    path: String::new(),
                    message: other.to_string(),
                }],
            },
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ValidateSnapshotResponse {
            valid: problems.is_empty(),
            problems,
        }))
    }

    async fn get_snapshot_info(
        &self,
        _request: Request<pb::GetSnapshotInfoRequest>,
    ) -> Result<Response<pb::GetSnapshotInfoResponse>, Status> {
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
        }))
    }

    async fn list_versions(
        &self,
        _request: Request<pb::ListVersionsRequest>,
    ) -> Result<Response<pb::ListVersionsResponse>, Status> {
        let store = self.engine.store().clone();
        let (metas, corrupt) = tokio::task::spawn_blocking(move || store.list())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(format!("cannot list versions: {e}")))?;
        for c in corrupt {
            tracing::warn!("{c}");
        }
        Ok(Response::new(pb::ListVersionsResponse {
            versions: metas.iter().map(version_info).collect(),
        }))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::PushSnapshotResponse>, Status> {
        let r = request.into_inner();
        let meta = self
            .engine
            .rollback(r.version, author(r.author), r.expected_parent_version)
            .await?;
        tracing::info!(version = meta.version, restores = r.version, author = %meta.author, "rolled back");
        Ok(pushed(meta))
    }

    async fn revoke_principal(
        &self,
        request: Request<pb::RevokePrincipalRequest>,
    ) -> Result<Response<pb::RevokePrincipalResponse>, Status> {
        let r = request.into_inner();
        let by = author(r.author);
        tracing::warn!(principal = %r.principal, author = %by, reason = %r.reason, "principal revoked");
        let version = self.engine.revoke(r.principal, r.reason, by).await?;
        Ok(Response::new(pb::RevokePrincipalResponse { version }))
    }

    async fn reinstate_principal(
        &self,
        request: Request<pb::ReinstatePrincipalRequest>,
    ) -> Result<Response<pb::RevokePrincipalResponse>, Status> {
        let r = request.into_inner();
        tracing::warn!(principal = %r.principal, author = %author(r.author), reason = %r.reason, "principal reinstated");
        let version = self.engine.reinstate(r.principal).await?;
        Ok(Response::new(pb::RevokePrincipalResponse { version }))
    }

    async fn grant_temporary(
        &self,
        request: Request<pb::GrantTemporaryRequest>,
    ) -> Result<Response<pb::GrantTemporaryResponse>, Status> {
        let r = request.into_inner();
        let scope = convert::scope(r.all, r.tenant, r.resource_type, r.resource_ids)?;
        let ttl = (r.ttl_seconds > 0).then_some(r.ttl_seconds);
        let g = self.engine.grant_temporary(r.principal, r.role, scope, ttl).await?;
        tracing::info!(id = %g.id, principal = %g.principal, role = %g.role, expires = g.expires.0, author = %author(r.author), reason = %r.reason, "temporary grant");
        Ok(Response::new(pb::GrantTemporaryResponse {
            id: g.id,
            expires_at: g.expires.0,
        }))
    }
}
