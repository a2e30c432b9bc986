//! The hash chain: each record carries the SHA-256 of the previous one and its own, over
//! its canonical JSON (keys sorted), so an altered, inserted or deleted record breaks the
//! chain at a place `portcullis audit verify` can name.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// `prev` of the first record ever written.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Position in the chain: the last sequence number and hash written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Sequence number of the last record (0 before the first).
    pub seq: u64,
    /// Hash of the last record (`GENESIS` before the first).
    pub hash: String,
}

impl Link {
    /// Moves past the next record, sealed with `hash` (reusing this link's text).
    pub fn advance(&mut self, hash: &HashText) {
        self.seq += 1;
        self.hash.clear();
        // Hex digits are ASCII.
        self.hash.push_str(std::str::from_utf8(hash).unwrap_or_default());
    }
}

impl Default for Link {
    fn default() -> Self {
        Link {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

/// SHA-256 over the canonical form of a record without its `hash` field: its fields
/// serialized with keys in sorted order at every level, whatever order the line had.
pub fn record_hash(fields: &Map<String, Value>) -> String {
    let canonical: BTreeMap<&str, Canonical<'_>> = fields
        .iter()
        .filter(|(k, _)| k.as_str() != "hash")
        .map(|(k, v)| (k.as_str(), Canonical(v)))
        .collect();
    let text = serde_json::to_string(&canonical).unwrap_or_default();
    crate::auth::hex(&Sha256::digest(text.as_bytes()))
}

/// A JSON value serialized with every object's keys in sorted order (the form the writer
/// hashes), whichever order its maps keep.
pub struct Canonical<'a>(pub &'a Value);

impl Serialize for Canonical<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(m) => {
                let sorted: BTreeMap<&str, Canonical<'_>> = m.iter().map(|(k, v)| (k.as_str(), Canonical(v))).collect();
                sorted.serialize(s)
            }
            Value::Array(items) => s.collect_seq(items.iter().map(Canonical)),
            other => other.serialize(s),
        }
    }
}

/// A record hash as the trail writes it: 64 lowercase hex digits.
pub type HashText = [u8; 64];

/// Appends the hash to a record's canonical JSON, the end of `line` from `start` (an
/// object with keys in sorted order that already carries its `seq` and `prev`), in place.
/// Returns the record's hash.
pub fn seal(line: &mut Vec<u8>, start: usize) -> HashText {
    let mut hash = [0; 64];
    // 32 bytes always fill 64 digits.
    let _ = hex::encode_to_slice(Sha256::digest(line.get(start..).unwrap_or_default()), &mut hash);
    if line.last() == Some(&b'}') {
        line.pop();
    }
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(&hash);
    line.extend_from_slice(b"\"}");
    hash
}

/// Why a line does not continue the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// Not a JSON object with `seq`, `prev`, `hash`.
    #[error("not a chained audit record: {0}")]
    Malformed(String),
    /// Sequence numbers skip: records are missing.
    #[error("expected record {expected}, found {found}: {} record(s) deleted", found.saturating_sub(*expected))]
    Gap {
        /// The number that should come next.
        expected: u64,
        /// The number found.
        found: u64,
    },
    /// `prev` does not name the previous record.
    #[error(
        "record {seq} does not follow the previous record (prev hash differs): a record was removed, reordered or replaced"
    )]
    Unlinked {
        /// Its sequence number.
        seq: u64,
    },
    /// The record's content does not match its hash.
    #[error("record {seq} was altered: its content does not match its hash")]
    Altered {
        /// Its sequence number.
        seq: u64,
    },
}

/// Checks that `line` continues the chain after `link`; returns the new link.
pub fn follow(line: &str, link: &Link) -> Result<Link, Break> {
    let value: Value = serde_json::from_str(line).map_err(|e| Break::Malformed(e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(Break::Malformed("not an object".into()));
    };
    let seq = fields
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| Break::Malformed("no `seq`".into()))?;
    let prev = fields
        .get("prev")
        .and_then(Value::as_str)
        .ok_or_else(|| Break::Malformed("no `prev`".into()))?;
    let hash = fields
        .get("hash")
        .and_then(Value::as_str)
        .ok_or_else(|| Break::Malformed("no `hash`".into()))?;
    if record_hash(&fields) != hash {
        return Err(Break::Altered { seq });
    }
    if seq != link.seq + 1 {
        return Err(Break::Gap {
            expected: link.seq + 1,
            found: seq,
        });
    }
    if prev != link.hash {
        return Err(Break::Unlinked { seq });
    }
    Ok(Link {
        seq,
        hash: hash.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's canonical JSON: keys in sorted order, as the writer's records have them.
    fn record(n: u64, after: &Link) -> String {
        format!(
            r#"{{"outcome":"deny","prev":"{}","principal":"p{n}","seq":{}}}"#,
            after.hash,
            after.seq + 1
        )
    }

    #[test]
    fn a_chain_verifies_and_every_kind_of_tampering_is_named() {
        let mut link = Link::default();
        let mut lines = Vec::new();
        for n in 0..4 {
            let mut line = record(n, &link).into_bytes();
            let hash = seal(&mut line, 0);
            lines.push(String::from_utf8(line).unwrap());
            link.advance(&hash);
        }
        let mut check = Link::default();
        for l in &lines {
            check = follow(l, &check).unwrap();
        }
        assert_eq!(check, link);

        let altered = lines[1].replace("\"deny\"", "\"allow\"");
        let after_first = follow(&lines[0], &Link::default()).unwrap();
        // Key order is not content: the same fields reordered still verify.
        let reordered = lines[0]
            .replacen(r#""outcome":"deny","#, "", 1)
            .replacen('}', r#","outcome":"deny"}"#, 1);
        assert_ne!(reordered, lines[0]);
        assert_eq!(follow(&reordered, &Link::default()), Ok(after_first.clone()));
        // Also inside a `decisions` record's items.
        let mut grouped = br#"{"decisions":[{"action":"read","outcome":"allow"}],"prev":"0","seq":1}"#.to_vec();
        seal(&mut grouped, 0);
        let grouped = String::from_utf8(grouped).unwrap();
        let inner = grouped.replace(
            r#"{"action":"read","outcome":"allow"}"#,
            r#"{"outcome":"allow","action":"read"}"#,
        );
        assert_ne!(inner, grouped);
        let start = Link {
            seq: 0,
            hash: "0".into(),
        };
        assert_eq!(follow(&inner, &start), follow(&grouped, &start));
        assert!(follow(&inner, &start).is_ok());
        assert_eq!(follow(&altered, &after_first), Err(Break::Altered { seq: 2 }));
        assert_eq!(
            follow(&lines[2], &after_first),
            Err(Break::Gap { expected: 2, found: 3 })
        );
        assert!(matches!(follow("{\"seq\":", &after_first), Err(Break::Malformed(_))));
    }
}
