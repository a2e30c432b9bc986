//! What the services record about each call: metrics, and audit records (A1) built from
//! the caller's identity, the request and the decision.

use crate::audit::{Admit, Audit, AuditRecord};
use crate::clock::DecisionTime;
use crate::metrics::Metrics;
use crate::scopes::{Identity, Scope};
use portcullis_policy::bundle::AuditBackpressure;
use portcullis_policy::{Effect, Reason, Request, Snapshot};
use portcullis_proto::v1 as pb;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Metrics and the audit trail, shared by the services.
#[derive(Debug, Clone)]
pub struct Telemetry {
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The audit trail, when enabled.
    pub audit: Option<Arc<Audit>>,
    /// Whether RPCs get trace spans (only when traces are exported).
    pub spans: bool,
    /// This replica's id, in every audit record.
    pub replica: Arc<str>,
}

/// Who is calling, for the audit trail. Captured cheaply on every call; rendered only
/// when a record is written.
#[derive(Debug, Clone)]
pub struct Caller {
    remote: Option<std::net::SocketAddr>,
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    traceparent: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    mtls: bool,
    identity: Option<Identity>,
    /// The call came over the AuthZEN HTTP binding.
    authzen: bool,
}

impl Caller {
    /// Captures the caller's transport identity and metadata.
    pub fn of<T>(request: &tonic::Request<T>) -> Caller {
        Caller {
            remote: request.remote_addr(),
            authorization: request.metadata().get("authorization").cloned(),
            traceparent: request.metadata().get("traceparent").cloned(),
            mtls: request.peer_certs().is_some_and(|c| !c.is_empty()),
            identity: request.extensions().get::<Identity>().cloned(),
            authzen: request.extensions().get::<crate::authzen::ViaAuthzen>().is_some(),
        }
    }

    /// The same, from the HTTP request before tonic has decoded it (refused calls).
    pub fn of_http<B>(request: &tonic::codegen::http::Request<B>) -> Caller {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| tonic::metadata::MetadataValue::try_from(v.as_bytes()).ok())
        };
        Caller {
            remote: crate::scopes::peer_address(request),
            authorization: header("authorization"),
            traceparent: header("traceparent"),
            mtls: request
                .extensions()
                .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
                .and_then(|i| i.peer_certs())
                .is_some_and(|c| !c.is_empty()),
            identity: None,
            authzen: false,
        }
    }

    /// Whether the caller holds the admin scope, and so may choose the decision time.
    pub fn what_if(&self) -> bool {
        self.identity.as_ref().is_some_and(|i| i.scopes.has(Scope::Admin))
    }

    /// Peer address, token fingerprint (first 12 hex digits of its SHA-256), `mtls`.
    pub fn client(&self) -> String {
        let mut client = self.remote.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        if self.authzen {
            client.insert_str(0, "authzen ");
        }
        if let Some(token) = self
            .authorization
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::bearer_token)
        {
            let digest = hex::encode(Sha256::digest(token.as_bytes()));
            client.push_str(&format!(" token:{}", digest.get(..12).unwrap_or_default()));
        }
        if self.mtls {
            client.push_str(" mtls");
        }
        if let Some(identity) = &self.identity {
            client.push_str(&format!(" credential:{}", identity.name));
        }
        client
    }

    /// The W3C trace id of the caller's `traceparent`, or a fresh one.
    pub fn trace_id(&self) -> String {
        self.traceparent
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split('-').nth(1))
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .map_or_else(|| hex::encode(rand::random::<[u8; 16]>()), str::to_owned)
    }
}

fn now_text() -> String {
    let now = std::time::SystemTime::now();
    humantime::format_rfc3339_millis(now).to_string()
}

impl Telemetry {
    /// A span for an RPC when traces are exported; a disabled span otherwise (no cost).
    pub fn span<T>(&self, rpc: &'static str, request: &tonic::Request<T>) -> tracing::Span {
        if self.spans {
            crate::otel::rpc_span(rpc, request.metadata())
        } else {
            tracing::Span::none()
        }
    }

    /// Records a decision when A1 asks for it and counts it once, as sent: the engine's
    /// `effect` and `reason`, or a deny (`audit_unavailable`, A1) when the trail could not
    /// take a required record. Returns the decision to send.
    pub async fn decided(
        &self,
        caller: &Caller,
        req: Request,
        time: DecisionTime,
        (effect, reason): (Effect, Reason),
        d: pb::Decision,
        snapshot: &Snapshot,
    ) -> pb::Decision {
        let (d, forced) = self.audited(caller, req, time, d, snapshot).await;
        if forced {
            self.metrics.decision(Effect::Deny, Reason::AuditUnavailable);
        } else {
            self.metrics.decision(effect, reason);
        }
        d
    }

    /// The decision to send, and whether the audit trail forced it to a deny.
    async fn audited(
        &self,
        caller: &Caller,
        req: Request,
        time: DecisionTime,
        mut d: pb::Decision,
        snapshot: &Snapshot,
    ) -> (pb::Decision, bool) {
        let allowed = d.effect == pb::Effect::Allow as i32;
        let Some(audit) = &self.audit else { return (d, false) };
        let sensitive = snapshot.is_sensitive(&req.resource.resource_type);
        if !audit.wants(allowed, sensitive, d.break_glass, d.impersonated) {
            return (d, false);
        }
        let record = AuditRecord {
            id: audit.next_id(),
            time: now_text(),
            kind: "decision",
            severity: if d.break_glass || d.impersonated {
                "high"
            } else {
                "info"
            },
            principal: req.principal,
            acting_as: req.session.acting_as,
            action: req.action,
            resource_type: req.resource.resource_type,
            resource_id: req.resource.id,
            tenant: req.resource.tenant,
            outcome: if allowed { "allow" } else { "deny" },
            reason: d.reason.clone(),
            requirement: d.requirement.clone(),
            rule: d.rule.clone(),
            version: d.version,
            break_glass: d.break_glass,
            caller_time: time.caller_set,
            decision_time: time.at.to_string(),
            break_glass_reason: if d.break_glass {
                req.session.break_glass_reason
            } else {
                None
            },
            client: caller.client(),
            trace_id: caller.trace_id(),
            replica: self.replica.clone(),
            ..AuditRecord::default()
        };
        let mode = snapshot.settings().audit_on_backpressure;
        let forced = audit.submit(record, mode).await == Admit::Refused && allowed;
        if forced {
            d.effect = pb::Effect::Deny as i32;
            d.reason = Reason::AuditUnavailable.as_str().to_owned();
            d.requirement = Reason::AuditUnavailable.rule_id().to_owned();
            d.rule.clear();
        }
        (d, forced)
    }

    /// Records a call refused for want of a credential or scope (who, what, from where).
    pub async fn refused(&self, caller: &Caller, method: &str, code: &'static str, message: &str) {
        let Some(audit) = &self.audit else { return };
        let record = AuditRecord {
            id: audit.next_id(),
            time: now_text(),
            kind: "refused",
            severity: "high",
            action: method.to_owned(),
            outcome: "refused",
            reason: code.to_owned(),
            client: caller.client(),
            trace_id: caller.trace_id(),
            details: Some(message.to_owned()),
            replica: self.replica.clone(),
            ..AuditRecord::default()
        };
        if audit.submit(record, AuditBackpressure::Block).await != Admit::Queued {
            tracing::error!(method, "refused call could not be audited");
        }
    }

    /// Records an admin call (always waits for room in the queue).
    pub async fn admin(
        &self,
        caller: &Caller,
        operation: &str,
        author: &str,
        version: u64,
        result: Result<String, String>,
    ) {
        let Some(audit) = &self.audit else { return };
        let (outcome, details) = match result {
            Ok(d) => ("ok", d),
            Err(e) => ("failed", e),
        };
        let record = AuditRecord {
            id: audit.next_id(),
            time: now_text(),
            kind: "admin",
            severity: "high",
            principal: author.to_owned(),
            action: operation.to_owned(),
            outcome,
            reason: outcome.to_owned(),
            version,
            client: caller.client(),
            trace_id: caller.trace_id(),
            details: Some(details),
            replica: self.replica.clone(),
            ..AuditRecord::default()
        };
        if audit.submit(record, AuditBackpressure::Block).await != Admit::Queued {
            tracing::error!(operation, "admin call could not be audited");
        }
    }
}
