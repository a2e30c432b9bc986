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
/// A call that decides many things for one principal (CheckResources) is one record of
/// kind `decisions`: what the decisions share (principal, session, times, caller, version)
/// once, and each decision's own fields in `decisions`, in the call's order, as a row of
/// values under the record's `columns` ([`AuditItem::COLUMNS`]).
/// [`flatten`](super::flatten) turns it back into one `decision` record per decision.
///
/// INVARIANT: fields are declared in alphabetical order, so the record's JSON is its
/// canonical form (keys sorted) and can be hashed as serialized, with no second pass. The
/// writer serializes with `audit::json`, which is tested to write the same bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditRecord<'a> {
    /// R16: the account acted as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_as: Option<Text<'a>>,
    /// Action, or the admin operation (empty in a `decisions` record: each item has its own).
    #[serde(skip_serializing_if = "blank")]
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
    /// What each row of `decisions` holds, in order ([`AuditItem::COLUMNS`]).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub columns: &'static [&'static str],
    /// The time the decision was evaluated at (RFC 3339); empty for admin records.
    #[serde(skip_serializing_if = "blank")]
    pub decision_time: Text<'a>,
    /// A `decisions` record's decisions, in the order the call asked for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<AuditItem<'a>>,
    /// Free-form details of admin calls (version pushed, ticket, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Text<'a>>,
    /// Unique id: `<server start>-<counter>`.
    pub id: Text<'a>,
    /// `decision`, `decisions`, `admin`, `refused` or `audit_recovered`.
    pub kind: &'static str,
    /// `allow`, `deny`, `ok` or `failed`; for `decisions`, `allow` or `deny` when all its
    /// decisions agree, else `mixed`.
    pub outcome: &'static str,
    /// Hash of the previous record (set by the sink).
    pub prev: Text<'a>,
    /// The principal (the real one when impersonating).
    pub principal: Text<'a>,
    /// Reason code (`granted`, `session_idle`, ...) or admin result (empty in `decisions`).
    #[serde(skip_serializing_if = "blank")]
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

/// One decision of a `decisions` record: what is its own. It is written as a row, its
/// values in the order of [`AuditItem::COLUMNS`] (the fields' order), `null` for a blank
/// requirement, resource id or rule and for no tenant: the keys are written once per
/// record, not once per decision, so there is half as much to hash and write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditItem<'a> {
    /// The action asked.
    pub action: Text<'a>,
    /// R15: emergency access was used for this decision.
    pub break_glass: bool,
    /// `allow` or `deny`.
    pub outcome: &'static str,
    /// Reason code.
    pub reason: Text<'a>,
    /// Requirement id.
    pub requirement: Text<'a>,
    /// Resource id.
    pub resource_id: Text<'a>,
    /// Resource type.
    pub resource_type: Text<'a>,
    /// Grant or deny rule that decided.
    pub rule: Text<'a>,
    /// `high` for break-glass and impersonation, `info` otherwise.
    pub severity: &'static str,
    /// Resource tenant.
    pub tenant: Option<Text<'a>>,
}

impl AuditItem<'_> {
    /// The names of a row's values, in order: a `decisions` record's `columns`.
    pub const COLUMNS: &'static [&'static str] = &[
        "action",
        "break_glass",
        "outcome",
        "reason",
        "requirement",
        "resource_id",
        "resource_type",
        "rule",
        "severity",
        "tenant",
    ];
}

impl Serialize for AuditItem<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (
            &self.action,
            self.break_glass,
            self.outcome,
            &self.reason,
            present(&self.requirement),
            present(&self.resource_id),
            &self.resource_type,
            present(&self.rule),
            self.severity,
            &self.tenant,
        )
            .serialize(s)
    }
}

/// A text that may be blank as a row holds it: blank is `null`.
pub(super) fn present<'t>(t: &'t Text<'_>) -> Option<&'t str> {
    (!t.is_empty()).then_some(t.as_ref())
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
            decisions: vec![AuditItem {
                action: "read".into(),
                break_glass: true,
                requirement: "R2".into(),
                tenant: Some("t".into()),
                ..AuditItem::default()
            }],
            ..AuditRecord::default()
        };
        let direct = serde_json::to_string(&r).unwrap();
        let via_map =
            serde_json::to_string(&crate::audit::chain::Canonical(&serde_json::to_value(&r).unwrap())).unwrap();
        assert_eq!(direct, via_map, "field order must be alphabetical");
    }
}
