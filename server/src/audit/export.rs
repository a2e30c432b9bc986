//! The trail one decision per line, for tools that index decisions (a SIEM, `jq`): every
//! `decisions` record becomes the `decision` records it stands for; other records pass as
//! they are.

use super::sink::files;
use serde_json::{Map, Value};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

/// Fields of a `decisions` record that belong to the group, not to any one decision.
const GROUP_ONLY: [&str; 7] = [
    "columns",
    "decisions",
    "outcome",
    "severity",
    "prev",
    "break_glass_reason",
    "same",
];

/// The `decision` records a record stands for: its decisions, each with what they share
/// (principal, times, caller, version), `id` `<record id>/<n>` (n from 0) and the `seq`
/// and `hash` of the chained line that holds them. A decision is what the record's `same`
/// says of every decision plus its row of values under the record's `columns` (what it
/// leaves `null` or `false` it does not say), or an object in records written before rows.
/// Any other record is returned as is.
pub fn flatten(record: Value) -> Vec<Value> {
    let Value::Object(mut fields) = record else {
        return vec![record];
    };
    if fields.get("kind").and_then(Value::as_str) != Some("decisions") {
        return vec![Value::Object(fields)];
    }
    let items = match fields.remove("decisions") {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let columns: Vec<String> = match fields.get("columns") {
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let reason = fields.get("break_glass_reason").cloned();
    let same = match fields.get("same") {
        Some(Value::Object(same)) => same.clone(),
        _ => Map::new(),
    };
    let mut shared = fields;
    for key in GROUP_ONLY {
        shared.remove(key);
    }
    shared.insert("kind".into(), "decision".into());
    let id = shared.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
    items
        .into_iter()
        .enumerate()
        .map(|(n, item)| {
            let mut one: Map<String, Value> = shared.clone();
            one.insert("id".into(), format!("{id}/{n}").into());
            let own = match item {
                Value::Object(own) => own,
                Value::Array(row) => {
                    let mut own = same.clone();
                    own.extend(
                        columns
                            .iter()
                            .zip(row)
                            .filter(|(_, v)| !v.is_null() && *v != Value::Bool(false))
                            .map(|(k, v)| (k.clone(), v)),
                    );
                    own
                }
                _ => Map::new(),
            };
            if own.get("break_glass") == Some(&Value::Bool(true))
                && let Some(reason) = &reason
            {
                one.insert("break_glass_reason".into(), reason.clone());
            }
            one.extend(own);
            Value::Object(one)
        })
        .collect()
}

/// Writes every record of an audit directory, in chain order, one decision per line
/// ([`flatten`]); returns the lines written. A line that is not JSON is an error naming
/// its file and line (run `audit verify` for the chain itself).
pub fn export(dir: &Path, out: &mut impl Write) -> io::Result<u64> {
    let mut lines = 0;
    for path in files(dir)? {
        for (i, line) in BufReader::new(std::fs::File::open(&path)?).lines().enumerate() {
            let line = line?;
            let record: Value = serde_json::from_str(&line).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}:{}: not a JSON record: {e}", path.display(), i + 1),
                )
            })?;
            for one in flatten(record) {
                serde_json::to_writer(&mut *out, &one)?;
                out.write_all(b"\n")?;
                lines += 1;
            }
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_group_becomes_one_record_per_decision_with_what_they_share() {
        let group = json!({
            "kind": "decisions", "id": "r-1", "seq": 9, "prev": "p", "hash": "h",
            "principal": "dr-ann", "outcome": "mixed", "severity": "high",
            "break_glass_reason": "code blue", "version": 3, "time": "t",
            "decisions": [
                {"action": "read", "outcome": "allow", "reason": "granted", "resource_type": "x", "severity": "info"},
                {"action": "edit", "break_glass": true, "outcome": "allow", "reason": "break_glass", "resource_type": "x", "severity": "high"},
            ],
        });
        let flat = flatten(group);
        assert_eq!(flat.len(), 2);
        assert_eq!(
            flat[0],
            json!({"kind": "decision", "id": "r-1/0", "seq": 9, "hash": "h", "principal": "dr-ann",
                   "version": 3, "time": "t", "action": "read", "outcome": "allow",
                   "reason": "granted", "resource_type": "x", "severity": "info"})
        );
        assert_eq!(flat[1]["break_glass_reason"], "code blue");
        assert_eq!(flat[1]["severity"], "high");
        assert_eq!(flat[1]["id"], "r-1/1");
        // The same decisions as rows under `columns` flatten to the same records.
        let rows = json!({
            "kind": "decisions", "id": "r-1", "seq": 9, "prev": "p", "hash": "h",
            "principal": "dr-ann", "outcome": "mixed", "severity": "high",
            "break_glass_reason": "code blue", "version": 3, "time": "t",
            "columns": ["action", "break_glass", "outcome", "reason", "resource_type", "rule", "severity"],
            "decisions": [
                ["read", false, "allow", "granted", "x", null, "info"],
                ["edit", true, "allow", "break_glass", "x", null, "high"],
            ],
        });
        assert_eq!(flatten(rows), flat);
        // And with what the two rows share said once, in `same`.
        let hoisted = json!({
            "kind": "decisions", "id": "r-1", "seq": 9, "prev": "p", "hash": "h",
            "principal": "dr-ann", "outcome": "mixed", "severity": "high",
            "break_glass_reason": "code blue", "version": 3, "time": "t",
            "columns": ["action", "break_glass", "reason", "severity"],
            "same": {"outcome": "allow", "resource_type": "x"},
            "decisions": [["read", false, "granted", "info"], ["edit", true, "break_glass", "high"]],
        });
        assert_eq!(flatten(hoisted), flat);
        let admin = json!({"kind": "admin", "id": "a"});
        assert_eq!(flatten(admin.clone()), vec![admin]);
    }
}
