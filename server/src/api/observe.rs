//! What the services record about each call: metrics, and audit records (A1) built from
//! the caller's identity, the request and the decision.

use crate::audit::{Admit, Audit, AuditRecord, Deferred};
use crate::clock::DecisionTime;
use crate::engine::Live;
use crate::metrics::Metrics;
use crate::scopes::{Identity, Scope};
use portcullis_policy::bundle::AuditBackpressure;
use portcullis_policy::{Decision, Effect, Reason, Request};
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
            let digest = crate::auth::hex(&Sha256::digest(token.as_bytes()));
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
            .map_or_else(|| crate::auth::hex(&rand::random::<[u8; 16]>()), str::to_owned)
    }
}

/// The audit context of one call: who called and the snapshot that decided. Every audited
/// decision of the call shares one [`CallNote`], made when the first one needs it.
#[derive(Debug)]
pub struct CallAudit<'a> {
    caller: &'a Caller,
    live: &'a Arc<Live>,
    note: Option<Arc<CallNote>>,
}

impl<'a> CallAudit<'a> {
    /// The context of a call from `caller`, decided on `live`.
    pub fn new(caller: &'a Caller, live: &'a Arc<Live>) -> Self {
        CallAudit {
            caller,
            live,
            note: None,
        }
    }

    /// Who is calling.
    pub fn caller(&self) -> &Caller {
        self.caller
    }

    fn shared(&mut self, replica: &Arc<str>) -> Arc<CallNote> {
        self.note
            .get_or_insert_with(|| {
                Arc::new(CallNote {
                    caller: self.caller.clone(),
                    live: self.live.clone(),
                    replica: replica.clone(),
                    rendered: std::sync::OnceLock::new(),
                })
            })
            .clone()
    }
}

/// What the audited decisions of one call share; rendered on the writer thread.
#[derive(Debug)]
struct CallNote {
    caller: Caller,
    /// Names the rules (the snapshot stays alive until the records are written).
    live: Arc<Live>,
    replica: Arc<str>,
    /// `client` and `trace_id`, rendered once per call.
    rendered: std::sync::OnceLock<(String, String)>,
}

/// A decision's audit record, waiting to be offered to the trail.
#[derive(Debug)]
pub struct Note(Box<DecisionNote>);

/// A decision's audit record as the request thread hands it over: the request's names,
/// the engine's decision and the call it belongs to; no formatting or hashing yet.
#[derive(Debug)]
struct DecisionNote {
    call: Arc<CallNote>,
    at: std::time::SystemTime,
    principal: String,
    acting_as: Option<String>,
    action: String,
    resource_type: String,
    resource_id: String,
    tenant: Option<String>,
    break_glass_reason: Option<String>,
    time: DecisionTime,
    decision: Decision,
}

impl Deferred for DecisionNote {
    fn render(&self) -> AuditRecord<'_> {
        let (client, trace_id) = self
            .call
            .rendered
            .get_or_init(|| (self.call.caller.client(), self.call.caller.trace_id()));
        let d = &self.decision;
        let flagged = d.flags.break_glass || d.flags.impersonated;
        AuditRecord {
            time: humantime::format_rfc3339_millis(self.at).to_string().into(),
            kind: "decision",
            severity: if flagged { "high" } else { "info" },
            principal: self.principal.as_str().into(),
            acting_as: self.acting_as.as_deref().map(Into::into),
            action: self.action.as_str().into(),
            resource_type: self.resource_type.as_str().into(),
            resource_id: self.resource_id.as_str().into(),
            tenant: self.tenant.as_deref().map(Into::into),
            outcome: if d.is_allowed() { "allow" } else { "deny" },
            reason: d.reason.as_str().into(),
            requirement: d.reason.rule_id().into(),
            rule: d
                .rule
                .as_ref()
                .map(|r| self.call.live.snapshot.rule_name(r))
                .unwrap_or_default(),
            version: d.version,
            break_glass: d.flags.break_glass,
            caller_time: self.time.caller_set,
            decision_time: self.time.at.to_string().into(),
            break_glass_reason: self.break_glass_reason.as_deref().map(Into::into),
            client: client.as_str().into(),
            trace_id: trace_id.as_str().into(),
            replica: (*self.call.replica).into(),
            ..AuditRecord::default()
        }
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
    /// decision, or a deny (`audit_unavailable`, A1) when the trail could not take a
    /// required record. Returns the decision to send.
    pub async fn decided(&self, call: &mut CallAudit<'_>, req: &Request, time: DecisionTime, d: Decision) -> Decision {
        let note = self.note(call, req, time, &d);
        self.settle(call, note, d).await
    }

    /// The record A1 wants of `d`, if it wants one: compact, for the writer to render.
    pub fn note(&self, call: &mut CallAudit<'_>, req: &Request, time: DecisionTime, d: &Decision) -> Option<Note> {
        let audit = self.audit.as_ref()?;
        let sensitive = call.live.snapshot.is_sensitive(&req.resource.resource_type);
        if !audit.wants(d.is_allowed(), sensitive, d.flags.break_glass, d.flags.impersonated) {
            return None;
        }
        Some(Note(Box::new(DecisionNote {
            call: call.shared(&self.replica),
            at: std::time::SystemTime::now(),
            principal: req.principal.clone(),
            acting_as: req.session.acting_as.clone(),
            action: req.action.clone(),
            resource_type: req.resource.resource_type.clone(),
            resource_id: req.resource.id.clone(),
            tenant: req.resource.tenant.clone(),
            break_glass_reason: req.session.break_glass_reason.clone().filter(|_| d.flags.break_glass),
            time,
            decision: Decision {
                trace: None,
                rule: d.rule.clone(),
                ..*d
            },
        })))
    }

    /// Offers `note` (the record of `d`) to the trail and counts the decision as sent:
    /// `d`, or a deny (`audit_unavailable`, A1) when the trail refused a record an allow needed.
    pub async fn settle(&self, call: &CallAudit<'_>, note: Option<Note>, d: Decision) -> Decision {
        let refused = match (&self.audit, note) {
            (Some(audit), Some(Note(note))) => {
                let mode = call.live.snapshot.settings().audit_on_backpressure;
                audit.submit_deferred(note, mode).await == Admit::Refused
            }
            _ => false,
        };
        let d = if refused && d.is_allowed() {
            Decision {
                effect: Effect::Deny,
                reason: Reason::AuditUnavailable,
                rule: None,
                ..d
            }
        } else {
            d
        };
        self.metrics.decision(d.effect, d.reason);
        d
    }

    /// Records a call refused for want of a credential or scope (who, what, from where).
    pub async fn refused(&self, caller: &Caller, method: &str, code: &'static str, message: &str) {
        let Some(audit) = &self.audit else { return };
        let record = AuditRecord {
            id: audit.next_id().into(),
            time: now_text().into(),
            kind: "refused",
            severity: "high",
            action: method.to_owned().into(),
            outcome: "refused",
            reason: code.into(),
            client: caller.client().into(),
            trace_id: caller.trace_id().into(),
            details: Some(message.to_owned().into()),
            replica: self.replica.to_string().into(),
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
            id: audit.next_id().into(),
            time: now_text().into(),
            kind: "admin",
            severity: "high",
            principal: author.to_owned().into(),
            action: operation.to_owned().into(),
            outcome,
            reason: outcome.into(),
            version,
            client: caller.client().into(),
            trace_id: caller.trace_id().into(),
            details: Some(details.into()),
            replica: self.replica.to_string().into(),
            ..AuditRecord::default()
        };
        if audit.submit(record, AuditBackpressure::Block).await != Admit::Queued {
            tracing::error!(operation, "admin call could not be audited");
        }
    }
}
