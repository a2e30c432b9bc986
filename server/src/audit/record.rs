//! What an audit record says (A1): who, acting as whom, did what to which resource, when,
//! the outcome and why, the rule and policy version, the client and the trace.

use serde::Serialize;

/// One audited event. The sink sets `seq` and `prev` when it chains the record.
///
/// INVARIANT: fields are declared in alphabetical order, so the record's JSON is its
/// canonical form (keys sorted) and can be hashed as serialized, with no second pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditRecord {
    /// R16: the account acted as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_as: Option<String>,
    /// Action, or the admin operation.
    pub action: String,
    /// R15: emergency access.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// R15: the stated emergency reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub break_glass_reason: Option<String>,
    /// Whether the caller chose `decision_time` (within the skew, or a what-if by an admin).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub caller_time: bool,
    /// Calling client: peer address, token fingerprint, `mtls` when a client certificate was shown.
    pub client: String,
    /// The time the decision was evaluated at (RFC 3339); empty for admin records.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub decision_time: String,
    /// Free-form details of admin calls (version pushed, ticket, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// Unique id: `<server start>-<counter>`.
    pub id: String,
    /// `decision` or `admin`.
    pub kind: &'static str,
    /// `allow`, `deny`, `ok` or `failed`.
    pub outcome: &'static str,
    /// Hash of the previous record (set by the sink).
    pub prev: String,
    /// The principal (the real one when impersonating).
    pub principal: String,
    /// Reason code (`granted`, `session_idle`, ...) or admin result.
    pub reason: String,
    /// The replica that decided (config `replica_id`, default the host name).
    pub replica: std::sync::Arc<str>,
    /// Requirement id (`R9`, `A1`, ...).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub requirement: String,
    /// Resource id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_id: String,
    /// Resource type (empty for admin calls).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_type: String,
    /// Grant or deny rule that decided.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rule: String,
    /// Position in the chain (set by the sink).
    pub seq: u64,
    /// `high` for break-glass, impersonation and admin changes; `info` otherwise.
    pub severity: &'static str,
    /// Resource tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// RFC 3339 time with milliseconds.
    pub time: String,
    /// W3C trace id from the caller's `traceparent`, or one made up for this call.
    pub trace_id: String,
    /// Snapshot version that decided (or that was live for admin calls).
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_records_are_canonical() {
        let r = AuditRecord {
            action: "read".into(),
            tenant: Some("t".into()),
            seq: 7,
            break_glass: true,
            ..AuditRecord::default()
        };
        let direct = serde_json::to_string(&r).unwrap();
        let via_map = serde_json::to_value(&r).unwrap().to_string();
        assert_eq!(direct, via_map, "field order must be alphabetical");
    }
}
