//! What an audit record says (A1): who, acting as whom, did what to which resource, when,
//! the outcome and why, the rule and policy version, the client and the trace.

use serde::Serialize;

/// One audited event. The sink adds `seq`, `prev` and `hash` when it chains the record.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Unique id: `<server start>-<counter>`.
    pub id: String,
    /// RFC 3339 time with milliseconds.
    pub time: String,
    /// `decision` or `admin`.
    pub kind: &'static str,
    /// `high` for break-glass, impersonation and admin changes; `info` otherwise.
    pub severity: &'static str,
    /// The principal (the real one when impersonating).
    pub principal: String,
    /// R16: the account acted as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_as: Option<String>,
    /// Action, or the admin operation.
    pub action: String,
    /// Resource type (empty for admin calls).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_type: String,
    /// Resource id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_id: String,
    /// Resource tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `allow`, `deny`, `ok` or `failed`.
    pub outcome: &'static str,
    /// Reason code (`granted`, `session_idle`, ...) or admin result.
    pub reason: String,
    /// Requirement id (`R9`, `A1`, ...).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub requirement: String,
    /// Grant or deny rule that decided.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rule: String,
    /// Snapshot version that decided (or that was live for admin calls).
    pub version: u64,
    /// R15: emergency access.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// R15: the stated emergency reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub break_glass_reason: Option<String>,
    /// Calling client: peer address and, when present, the client certificate's presence.
    pub client: String,
    /// W3C trace id from the caller's `traceparent`, or one made up for this call.
    pub trace_id: String,
    /// Free-form details of admin calls (version pushed, ticket, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}
