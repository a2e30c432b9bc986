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
/// values under the record's `columns`; a field all its decisions agree on is written once,
/// in `same` ([`group`]).
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
    /// The columns whose values differ between a `decisions` record's rows: what each
    /// row holds, in order. The rest are in `same`.
    #[serde(skip_serializing_if = "Columns::is_empty")]
    pub columns: Columns,
    /// The time the decision was evaluated at (RFC 3339); empty for admin records.
    #[serde(skip_serializing_if = "blank")]
    pub decision_time: Text<'a>,
    /// A `decisions` record's decisions, in the order the call asked for them.
    #[serde(skip_serializing_if = "Rows::is_empty")]
    pub decisions: Rows<'a>,
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
    /// The values every row of a `decisions` record shares, by column; a shared `null` or
    /// `false` is left out.
    #[serde(skip_serializing_if = "Same::is_empty")]
    pub same: Same<'a>,
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

/// One value of a row as written: a text or `null`, or a flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'t> {
    /// A text; `None` is written `null`.
    Text(Option<&'t str>),
    /// `true` or `false`.
    Flag(bool),
}

impl Cell<'_> {
    /// Whether the value says anything (`null` and `false` do not).
    pub fn said(self) -> bool {
        !matches!(self, Cell::Text(None) | Cell::Flag(false))
    }
}

impl Serialize for Cell<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Text(t) => t.serialize(s),
            Cell::Flag(f) => f.serialize(s),
        }
    }
}

impl AuditItem<'_> {
    /// The names of a row's values, in order.
    pub const COLUMNS: [&'static str; 10] = [
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

    /// The value under `COLUMNS[column]`.
    pub fn cell(&self, column: usize) -> Cell<'_> {
        match column {
            0 => Cell::Text(Some(&self.action)),
            1 => Cell::Flag(self.break_glass),
            2 => Cell::Text(Some(self.outcome)),
            3 => Cell::Text(Some(&self.reason)),
            4 => Cell::Text(present(&self.requirement)),
            5 => Cell::Text(present(&self.resource_id)),
            6 => Cell::Text(Some(&self.resource_type)),
            7 => Cell::Text(present(&self.rule)),
            8 => Cell::Text(Some(self.severity)),
            _ => Cell::Text(self.tenant.as_deref()),
        }
    }
}

/// A set of [`AuditItem::COLUMNS`], one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Columns(u16);

impl Columns {
    /// The columns in the set, in order: index and name.
    pub fn iter(self) -> impl Iterator<Item = (usize, &'static str)> {
        AuditItem::COLUMNS
            .into_iter()
            .enumerate()
            .filter(move |(c, _)| self.0 & (1 << c) != 0)
    }

    /// Whether the set has no column.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

impl Serialize for Columns {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(|(_, name)| name))
    }
}

/// A `decisions` record's rows: each item's values in the varying columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows<'a> {
    /// The decisions, in the call's order.
    pub items: Vec<AuditItem<'a>>,
    /// The columns a row holds.
    pub columns: Columns,
}

impl Rows<'_> {
    /// Whether there is no decision.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl Serialize for Rows<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.items.iter().map(|i| Row(i, self.columns)))
    }
}

struct Row<'r, 'a>(&'r AuditItem<'a>, Columns);

impl Serialize for Row<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.1.iter().map(|(c, _)| self.0.cell(c)))
    }
}

/// The values all of a `decisions` record's rows share: the first row's, in the columns
/// that do not vary, leaving out `null` and `false`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Same<'a> {
    /// The first decision (the values are its).
    pub first: Option<AuditItem<'a>>,
    /// The columns all rows agree on.
    pub columns: Columns,
}

impl Same<'_> {
    /// The shared columns with something to say, and their values.
    pub fn said(&self) -> impl Iterator<Item = (&'static str, Cell<'_>)> {
        let first = self.first.as_ref();
        self.columns
            .iter()
            .filter_map(move |(c, name)| first.map(|i| (name, i.cell(c))))
            .filter(|(_, v)| v.said())
    }

    /// Whether it says nothing.
    pub fn is_empty(&self) -> bool {
        self.said().next().is_none()
    }
}

impl Serialize for Same<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.said())
    }
}

/// A `decisions` record's `columns`, `decisions` and `same` for `items`: a column every
/// item agrees on (there being two or more) goes once into `same`, the others into rows.
pub fn group(items: Vec<AuditItem<'_>>) -> (Columns, Rows<'_>, Same<'_>) {
    let all = (1u16 << AuditItem::COLUMNS.len()) - 1;
    let varying = match items.split_first() {
        Some((first, rest)) if !rest.is_empty() => (0..AuditItem::COLUMNS.len())
            .filter(|&c| rest.iter().any(|i| i.cell(c) != first.cell(c)))
            .fold(0, |m, c| m | 1 << c),
        _ => all,
    };
    let (varying, shared) = (Columns(varying), Columns(all & !varying));
    let same = Same {
        first: items.first().filter(|_| !shared.is_empty()).cloned(),
        columns: shared,
    };
    (
        varying,
        Rows {
            items,
            columns: varying,
        },
        same,
    )
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
        let mut r = AuditRecord {
            action: "read".into(),
            tenant: Some("t".into()),
            seq: 7,
            break_glass: true,
            ..AuditRecord::default()
        };
        let item = AuditItem {
            action: "read".into(),
            break_glass: true,
            outcome: "allow",
            reason: "break_glass".into(),
            requirement: "R15".into(),
            resource_type: "medical_record".into(),
            severity: "high",
            tenant: Some("t".into()),
            ..AuditItem::default()
        };
        let other = AuditItem {
            resource_id: "p-1".into(),
            ..item.clone()
        };
        (r.columns, r.decisions, r.same) = group(vec![item, other]);
        let direct = serde_json::to_string(&r).unwrap();
        let via_map =
            serde_json::to_string(&crate::audit::chain::Canonical(&serde_json::to_value(&r).unwrap())).unwrap();
        assert_eq!(direct, via_map, "field order must be alphabetical");
        // Only the resource id differs between the two decisions; the rest is said once.
        assert!(
            direct.contains(r#""columns":["resource_id"],"decisions":[[null],["p-1"]]"#),
            "{direct}"
        );
        assert!(
            direct.contains(r#""same":{"action":"read","break_glass":true,"outcome":"allow","reason":"break_glass","requirement":"R15","resource_type":"medical_record","severity":"high","tenant":"t"}"#),
            "{direct}"
        );
    }

    #[test]
    fn one_decision_keeps_every_column_in_its_row() {
        let (columns, rows, same) = group(vec![AuditItem::default()]);
        assert_eq!(columns.iter().count(), AuditItem::COLUMNS.len());
        assert_eq!(rows.columns, columns);
        assert!(same.is_empty());
    }
}
