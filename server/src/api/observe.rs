//! What the services record about each call: metrics, and audit records (A1) built from
//! the caller's identity, the request and the decision.

use crate::audit::{Admit, Audit, AuditItem, AuditRecord, Deferred, group};
use crate::clock::DecisionTime;
use crate::engine::Live;
use crate::metrics::Metrics;
use crate::scopes::{Identity, Scope};
use portcullis_policy::bundle::AuditBackpressure;
use portcullis_policy::{Decision, Effect, Reason, Request, Timestamp};
use sha2::{Digest, Sha256};
use std::fmt::Write;
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
        let mut client = String::with_capacity(64);
        self.push_client(&mut client);
        client
    }

    /// Appends what [`Caller::client`] returns.
    fn push_client(&self, client: &mut String) {
        if self.authzen {
            client.push_str("authzen ");
        }
        match self.remote {
            Some(a) => push_address(client, a),
            None => client.push_str("unknown"),
        }
        if let Some(token) = self
            .authorization
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::bearer_token)
        {
            client.push_str(" token:");
            push_fingerprint(client, token);
        }
        if self.mtls {
            client.push_str(" mtls");
        }
        if let Some(identity) = &self.identity {
            client.push_str(" credential:");
            client.push_str(&identity.name);
        }
    }

    /// The W3C trace id of the caller's `traceparent`, or a fresh one.
    pub fn trace_id(&self) -> String {
        let mut id = String::with_capacity(32);
        self.push_trace_id(&mut id, fresh_trace_id);
        id
    }

    /// Appends the trace id of the caller's `traceparent`, or else `fresh()`'s.
    fn push_trace_id(&self, out: &mut String, fresh: impl FnOnce() -> u128) {
        match self
            .traceparent
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split('-').nth(1))
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            Some(id) => out.push_str(id),
            None => push_hex(out, fresh()),
        }
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
                    untraced_id: std::sync::OnceLock::new(),
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
    /// The call's trace id when the caller sent none: drawn for its first record, so all
    /// its records name the same trace.
    untraced_id: std::sync::OnceLock<u128>,
}

/// Where a name sits in a note's [`Names`].
type Span = (u32, u32);

/// The request's names a record keeps, copied end to end into one string: a note costs
/// one allocation however many names and decisions it holds.
#[derive(Debug)]
struct Names(String);

impl Names {
    fn keep(&mut self, name: &str) -> Span {
        let start = self.0.len();
        self.0.push_str(name);
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (at(start), at(self.0.len()))
    }

    fn get(&self, (start, end): Span) -> &str {
        self.0.get(start as usize..end as usize).unwrap_or_default()
    }
}

/// One decision as a record keeps it: the names of what was asked, and the decision.
#[derive(Debug)]
struct Asked {
    action: Span,
    resource_type: Span,
    resource_id: Span,
    tenant: Option<Span>,
    decision: Decision,
}

/// Who asked and when, as a record names them: what the decisions of a record share, and
/// the names every decision of the record keeps.
#[derive(Debug)]
struct AskNote {
    call: Arc<CallNote>,
    at: std::time::SystemTime,
    names: Names,
    principal: Span,
    acting_as: Option<Span>,
    /// The session's break-glass reason; recorded only with a decision that used it.
    break_glass_reason: Option<Span>,
    time: DecisionTime,
}

impl AskNote {
    fn of(call: Arc<CallNote>, req: &Request, time: DecisionTime) -> Self {
        // Room for a decision's names without growing (a group's grow as they come).
        let mut names = Names(String::with_capacity(128));
        let principal = names.keep(&req.principal);
        let acting_as = req.session.acting_as.as_deref().map(|a| names.keep(a));
        let break_glass_reason = req.session.break_glass_reason.as_deref().map(|r| names.keep(r));
        AskNote {
            call,
            at: std::time::SystemTime::now(),
            names,
            principal,
            acting_as,
            break_glass_reason,
            time,
        }
    }

    /// Keeps what `req` asked and the decision `d`.
    fn asked(&mut self, req: &Request, d: &Decision) -> Asked {
        let r = &req.resource;
        Asked {
            action: self.names.keep(&req.action),
            resource_type: self.names.keep(&r.resource_type),
            resource_id: self.names.keep(&r.id),
            tenant: r.tenant.as_deref().map(|t| self.names.keep(t)),
            decision: Decision {
                trace: None,
                rule: d.rule.clone(),
                ..*d
            },
        }
    }

    /// A record with the shared fields filled in, what they format written into `text`;
    /// `kind` and `outcome` are the caller's.
    fn record<'a>(
        &'a self,
        text: &'a mut String,
        kind: &'static str,
        outcome: &'static str,
        break_glass: bool,
    ) -> AuditRecord<'a> {
        text.clear();
        let call = &self.call;
        let client = appended(text, |t| call.caller.push_client(t));
        let trace_id = appended(text, |t| {
            call.caller
                .push_trace_id(t, || *call.untraced_id.get_or_init(fresh_trace_id))
        });
        let time = appended(text, |t| push_millis(t, self.at));
        let decision_time = appended(text, |t| push_seconds(t, self.time.at));
        let text: &'a String = text;
        let part = |r: std::ops::Range<usize>| text.get(r).unwrap_or_default().into();
        AuditRecord {
            time: part(time),
            kind,
            outcome,
            principal: self.names.get(self.principal).into(),
            acting_as: self.acting_as.map(|a| self.names.get(a).into()),
            break_glass_reason: self
                .break_glass_reason
                .filter(|_| break_glass)
                .map(|r| self.names.get(r).into()),
            caller_time: self.time.caller_set,
            decision_time: part(decision_time),
            client: part(client),
            trace_id: part(trace_id),
            replica: (*self.call.replica).into(),
            ..AuditRecord::default()
        }
    }

    /// What is a decision's own in its record.
    fn item<'a>(&'a self, asked: &'a Asked) -> AuditItem<'a> {
        let d = &asked.decision;
        let flagged = d.flags.break_glass || d.flags.impersonated;
        AuditItem {
            action: self.names.get(asked.action).into(),
            break_glass: d.flags.break_glass,
            outcome: outcome(d),
            reason: d.reason.as_str().into(),
            requirement: d.reason.rule_id().into(),
            resource_id: self.names.get(asked.resource_id).into(),
            resource_type: self.names.get(asked.resource_type).into(),
            rule: d
                .rule
                .as_ref()
                .map(|r| self.call.live.snapshot.rule_name(r))
                .unwrap_or_default(),
            severity: if flagged { "high" } else { "info" },
            tenant: asked.tenant.map(|t| self.names.get(t).into()),
        }
    }
}

/// Whether A1 (or `--audit-all`) wants the record of `d`, decided on `live` for `req`.
fn wanted(audit: &Audit, live: &Live, req: &Request, d: &Decision) -> bool {
    let sensitive = live.snapshot.is_sensitive(&req.resource.resource_type);
    audit.wants(d.is_allowed(), sensitive, d.flags.break_glass, d.flags.impersonated)
}

fn outcome(d: &Decision) -> &'static str {
    if d.is_allowed() { "allow" } else { "deny" }
}

/// A decision's audit record as the request thread hands it over: the request's names,
/// the engine's decision and the call it belongs to; no formatting or hashing yet.
#[derive(Debug)]
struct DecisionNote {
    ask: AskNote,
    asked: Asked,
}

impl Deferred for DecisionNote {
    fn render<'a>(&'a self, text: &'a mut String) -> AuditRecord<'a> {
        let d = &self.asked.decision;
        let item = self.ask.item(&self.asked);
        AuditRecord {
            severity: item.severity,
            action: item.action,
            break_glass: item.break_glass,
            reason: item.reason,
            requirement: item.requirement,
            resource_id: item.resource_id,
            resource_type: item.resource_type,
            rule: item.rule,
            tenant: item.tenant,
            version: d.version,
            ..self.ask.record(text, "decision", item.outcome, d.flags.break_glass)
        }
    }
}

/// The records a call that decides many things for one principal (CheckResources) owes:
/// one `decisions` record, filled in as the engine decides.
#[derive(Debug)]
pub struct Notes<'a> {
    audit: &'a Audit,
    live: &'a Live,
    group: Box<GroupNote>,
    /// Which of the call's decisions are in the record.
    noted: Vec<usize>,
}

/// A `decisions` record as the request thread hands it over.
#[derive(Debug)]
struct GroupNote {
    ask: AskNote,
    /// The decisions, in the call's order.
    items: Vec<Asked>,
}

impl Notes<'_> {
    /// Adds the `n`th decision of the call, `d` of `req`, when A1 wants its record.
    pub fn add(&mut self, n: usize, req: &Request, d: &Decision) {
        if !wanted(self.audit, self.live, req, d) {
            return;
        }
        let asked = self.group.ask.asked(req, d);
        self.group.items.push(asked);
        self.noted.push(n);
    }
}

impl Deferred for GroupNote {
    fn decisions(&self) -> usize {
        self.items.len()
    }

    fn render<'a>(&'a self, text: &'a mut String) -> AuditRecord<'a> {
        let decisions: Vec<AuditItem<'_>> = self.items.iter().map(|a| self.ask.item(a)).collect();
        let agreed = decisions
            .first()
            .map(|i| i.outcome)
            .filter(|o| decisions.iter().all(|i| i.outcome == *o));
        let break_glass = decisions.iter().any(|i| i.break_glass);
        let severity = if decisions.iter().any(|i| i.severity == "high") {
            "high"
        } else {
            "info"
        };
        let (columns, decisions, same) = group(decisions);
        AuditRecord {
            severity,
            version: self.items.first().map_or(0, |a| a.decision.version),
            columns,
            decisions,
            same,
            ..self
                .ask
                .record(text, "decisions", agreed.unwrap_or("mixed"), break_glass)
        }
    }
}

/// An allow whose record the trail refused becomes a deny (`audit_unavailable`, A1).
fn refuse(d: &mut Decision) {
    if d.is_allowed() {
        d.effect = Effect::Deny;
        d.reason = Reason::AuditUnavailable;
        d.rule = None;
    }
}

/// A random W3C trace id's number (never zero) from a generator per thread seeded by the
/// OS: a trace id must be unique, not secret, and the OS-backed generator costs a fifth of
/// a microsecond.
fn fresh_trace_id() -> u128 {
    use rand::{Rng, SeedableRng, rngs::SmallRng};
    thread_local!(static DRAWS: std::cell::RefCell<SmallRng> = std::cell::RefCell::new(SmallRng::from_rng(&mut rand::rng())));
    DRAWS.with_borrow_mut(|r| r.random::<u128>()).max(1)
}

/// Appends `n` as 32 lowercase hex digits.
fn push_hex(out: &mut String, n: u128) {
    let mut digits = [0; 32];
    // 16 bytes always fill 32 digits.
    let _ = hex::encode_to_slice(n.to_be_bytes(), &mut digits);
    out.push_str(std::str::from_utf8(&digits).unwrap_or_default());
}

/// The range of `out` that `write` appends.
fn appended(out: &mut String, write: impl FnOnce(&mut String)) -> std::ops::Range<usize> {
    let start = out.len();
    write(out);
    start..out.len()
}

/// Appends `a` as `Display` writes it; an IPv4 address (nearly every caller) without the
/// formatting machinery, which cost a third of a microsecond per record.
fn push_address(out: &mut String, a: std::net::SocketAddr) {
    let std::net::SocketAddr::V4(v4) = a else {
        let _ = write!(out, "{a}");
        return;
    };
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(itoa::Buffer::new().format(octet));
    }
    out.push(':');
    out.push_str(itoa::Buffer::new().format(v4.port()));
}

fn now_text() -> String {
    let mut text = String::new();
    push_millis(&mut text, std::time::SystemTime::now());
    text
}

/// The last text a thread made of a key, for texts asked again and again for the same key
/// (the writer renders records in about time order; callers reuse one token).
struct LastText<K> {
    key: Option<K>,
    text: String,
}

impl<K> LastText<K> {
    /// A thread's cell, empty.
    const fn cell() -> std::cell::RefCell<Self> {
        std::cell::RefCell::new(LastText {
            key: None,
            text: String::new(),
        })
    }

    /// Appends the text of `key`, made by `make` unless it is the last key's.
    fn push<Q>(&mut self, out: &mut String, key: &Q, make: impl FnOnce(&mut String))
    where
        Q: PartialEq + ToOwned<Owned = K> + ?Sized,
        K: std::borrow::Borrow<Q>,
    {
        if self.key.as_ref().map(std::borrow::Borrow::borrow) != Some(key) {
            self.text.clear();
            make(&mut self.text);
            self.key = Some(key.to_owned());
        }
        out.push_str(&self.text);
    }
}

/// Appends the RFC 3339 text of `at` to the millisecond.
fn push_millis(out: &mut String, at: std::time::SystemTime) {
    thread_local!(static LAST: std::cell::RefCell<LastText<u128>> = const { LastText::cell() });
    let ms = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    LAST.with_borrow_mut(|last| {
        last.push(out, &ms, |t| {
            let _ = write!(t, "{}", humantime::format_rfc3339_millis(at));
        })
    });
}

/// Appends a decision time's text.
fn push_seconds(out: &mut String, at: Timestamp) {
    thread_local!(static LAST: std::cell::RefCell<LastText<Timestamp>> = const { LastText::cell() });
    LAST.with_borrow_mut(|last| {
        last.push(out, &at, |t| {
            let _ = write!(t, "{at}");
        })
    });
}

/// Appends a token's fingerprint in the trail: the first 12 hex digits of its SHA-256.
fn push_fingerprint(out: &mut String, token: &str) {
    thread_local!(static LAST: std::cell::RefCell<LastText<String>> = const { LastText::cell() });
    LAST.with_borrow_mut(|last| {
        last.push(out, token, |t| {
            let full = crate::auth::hex(&Sha256::digest(token.as_bytes()));
            t.push_str(full.get(..12).unwrap_or_default());
        })
    });
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
        let mut d = d;
        if let Some(audit) = self.audit.as_deref()
            && wanted(audit, call.live, req, &d)
        {
            let mut ask = AskNote::of(call.shared(&self.replica), req, time);
            let asked = ask.asked(req, &d);
            let note = Box::new(DecisionNote { ask, asked });
            let mode = call.live.snapshot.settings().audit_on_backpressure;
            if audit.submit_deferred(note, mode).await == Admit::Refused {
                refuse(&mut d);
            }
        }
        self.metrics.decision(d.effect, d.reason);
        d
    }

    /// The `decisions` record of a call asking for `req.principal` at `time` (its
    /// resource and action are ignored), when the trail is on. Fill it with
    /// [`Notes::add`] and offer it with [`Telemetry::settle_all`].
    pub fn notes<'a>(&'a self, call: &mut CallAudit<'a>, req: &Request, time: DecisionTime) -> Option<Notes<'a>> {
        let audit = self.audit.as_deref()?;
        let ask = AskNote::of(call.shared(&self.replica), req, time);
        Some(Notes {
            audit,
            live: call.live,
            group: Box::new(GroupNote { ask, items: Vec::new() }),
            noted: Vec::new(),
        })
    }

    /// Offers the call's `decisions` record (when it holds any) and counts every decision
    /// as sent: when the trail refused the record, each allow in it becomes a deny
    /// (`audit_unavailable`, A1).
    pub async fn settle_all(&self, call: &CallAudit<'_>, notes: Option<Notes<'_>>, decisions: &mut [Decision]) {
        if let Some(Notes {
            audit, group, noted, ..
        }) = notes
            && !noted.is_empty()
        {
            let mode = call.live.snapshot.settings().audit_on_backpressure;
            if audit.submit_deferred(group, mode).await == Admit::Refused {
                for n in noted {
                    if let Some(d) = decisions.get_mut(n) {
                        refuse(d);
                    }
                }
            }
        }
        for d in decisions.iter() {
            self.metrics.decision(d.effect, d.reason);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn fresh_trace_ids_are_valid_and_differ() {
        let untraced = Caller {
            remote: None,
            authorization: None,
            traceparent: None,
            mtls: false,
            identity: None,
            authzen: false,
        };
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| untraced.trace_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{id}");
            assert_ne!(id.as_str(), "0".repeat(32));
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut rng = rand::rng();
        let mut addresses: Vec<std::net::SocketAddr> = vec![
            "0.0.0.0:0".parse().unwrap(),
            "255.255.255.255:65535".parse().unwrap(),
            "10.0.9.100:8080".parse().unwrap(),
            "[::1]:443".parse().unwrap(),
        ];
        for _ in 0..1000 {
            let ip = std::net::Ipv4Addr::from(rand::Rng::random::<u32>(&mut rng));
            addresses.push((ip, rand::Rng::random::<u16>(&mut rng)).into());
        }
        for a in addresses {
            let mut out = String::from("x ");
            push_address(&mut out, a);
            assert_eq!(out, format!("x {a}"));
        }
    }

    #[test]
    fn cached_texts_follow_their_input() {
        let text = |push: &dyn Fn(&mut String)| {
            let mut out = String::from("x ");
            push(&mut out);
            out
        };
        let t = UNIX_EPOCH + Duration::from_millis(1_795_428_000_123);
        for (at, want) in [
            (t, "x 2026-11-23T10:00:00.123Z"),
            (t + Duration::from_micros(400), "x 2026-11-23T10:00:00.123Z"),
            (t + Duration::from_millis(1), "x 2026-11-23T10:00:00.124Z"),
        ] {
            assert_eq!(text(&|o| push_millis(o, at)), want);
        }
        for (at, want) in [
            (1_795_428_000, "x 2026-11-23T10:00:00Z"),
            (1_795_428_000, "x 2026-11-23T10:00:00Z"),
            (1_795_428_001, "x 2026-11-23T10:00:01Z"),
        ] {
            assert_eq!(text(&|o| push_seconds(o, Timestamp(at))), want);
        }
        for token in ["alpha", "beta", "alpha"] {
            let want = crate::auth::hex(&Sha256::digest(token.as_bytes()));
            assert_eq!(text(&|o| push_fingerprint(o, token)), format!("x {}", &want[..12]));
        }
    }
}
