//! What an audit record says (A1): who, acting as whom, did what to which resource, when,
//! the outcome and why, the rule and policy version, the client and the trace.

use serde::Serialize;
use std::borrow::Cow;

/// Text of a record: borrowed from what the writer renders it from, or owned.
pub type Text<'a> = Cow<'a, str>;

/// One audited event. The sink sets `seq` and `prev` when it chains the record. Its text
/// borrows where it can (a decision's record borrows from its compact note), so the writer
/// allocates little per record.
///
/// INVARIANT: fields are declared in alphabetical order, so the record's JSON is its
/// canonical form (keys sorted) and can be hashed as serialized, with no second pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditRecord<'a> {
    /// R16: the account acted as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_as: Option<Text<'a>>,
    /// Action, or the admin operation.
    pub action: Text<'a>,
    /// R15: emergency access.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// R15: the stated emergency reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub break_glass_reason: Option<Text<'a>>,
    /// Whether the caller chose `decision_time` (within the skew, or a what-if by an admin).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub caller_time: bool,
    /// Calling client: peer address, token fingerprint, `mtls` when a client certificate was shown.
    pub client: Text<'a>,
    /// The time the decision was evaluated at (RFC 3339); empty for admin records.
    #[serde(skip_serializing_if = "blank")]
    pub decision_time: Text<'a>,
    /// Free-form details of admin calls (version pushed, ticket, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Text<'a>>,
    /// Unique id: `<server start>-<counter>`.
    pub id: Text<'a>,
    /// `decision` or `admin`.
    pub kind: &'static str,
    /// `allow`, `deny`, `ok` or `failed`.
    pub outcome: &'static str,
    /// Hash of the previous record (set by the sink).
    pub prev: Text<'a>,
    /// The principal (the real one when impersonating).
    pub principal: Text<'a>,
    /// Reason code (`granted`, `session_idle`, ...) or admin result.
    pub reason: Text<'a>,
    /// The replica that decided (config `replica_id`, default the host name).
    pub replica: Text<'a>,
    /// Requirement id (`R9`, `A1`, ...).
    #[serde(skip_serializing_if = "blank")]
    pub requirement: Text<'a>,
    /// Resource id.
    #[serde(skip_serializing_if = "blank")]
    pub resource_id: Text<'a>,
    /// Resource type (empty for admin calls).
    #[serde(skip_serializing_if = "blank")]
    pub resource_type: Text<'a>,
    /// Grant or deny rule that decided.
    #[serde(skip_serializing_if = "blank")]
    pub rule: Text<'a>,
    /// Position in the chain (set by the sink).
    pub seq: u64,
    /// `high` for break-glass, impersonation and admin changes; `info` otherwise.
    pub severity: &'static str,
    /// Resource tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Text<'a>>,
    /// RFC 3339 time with milliseconds.
    pub time: Text<'a>,
    /// W3C trace id from the caller's `traceparent`, or one made up for this call.
    pub trace_id: Text<'a>,
    /// Snapshot version that decided (or that was live for admin calls).
    pub version: u64,
}

fn blank(t: &Text<'_>) -> bool {
    t.is_empty()
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
