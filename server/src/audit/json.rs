//! The writer's JSON for a record: canonical (keys in sorted order at every level, the
//! field order of [`AuditRecord`]), byte for byte what `serde_json` writes for the record,
//! without escaping the static keys again on every record. `tests` check the two agree.

use super::record::{AuditRecord, Cell, Text};
use std::io::Write;

/// Appends `record`'s canonical JSON to `out`.
pub fn write_record(out: &mut Vec<u8>, r: &AuditRecord<'_>) {
    let mut o = Object::open(out);
    o.opt_str("acting_as", r.acting_as.as_ref());
    o.str_unless_blank("action", &r.action);
    o.true_only("break_glass", r.break_glass);
    o.opt_str("break_glass_reason", r.break_glass_reason.as_ref());
    o.true_only("caller_time", r.caller_time);
    o.str("client", &r.client);
    if !r.columns.is_empty() {
        o.key("columns");
        let mut row = Row::open(o.0.out);
        for (_, name) in r.columns.iter() {
            row.str(Some(name));
        }
        row.close();
    }
    o.str_unless_blank("decision_time", &r.decision_time);
    if !r.decisions.is_empty() {
        o.key("decisions");
        let mut list = Seq::open(o.0.out, b'[', b']');
        for item in &r.decisions.items {
            let mut row = Row::open(list.next());
            for (c, _) in r.decisions.columns.iter() {
                row.cell(item.cell(c));
            }
            row.close();
        }
        list.close();
    }
    o.opt_str("details", r.details.as_ref());
    o.str("id", &r.id);
    o.str("kind", r.kind);
    o.str("outcome", r.outcome);
    o.str("prev", &r.prev);
    o.str("principal", &r.principal);
    o.str_unless_blank("reason", &r.reason);
    o.str("replica", &r.replica);
    o.str_unless_blank("requirement", &r.requirement);
    o.str_unless_blank("resource_id", &r.resource_id);
    o.str_unless_blank("resource_type", &r.resource_type);
    o.str_unless_blank("rule", &r.rule);
    if !r.same.is_empty() {
        o.key("same");
        let mut same = Object::open(o.0.out);
        for (name, value) in r.same.said() {
            same.key(name);
            Row::value(same.0.out, value);
        }
        same.close();
    }
    o.u64("seq", r.seq);
    o.str("severity", r.severity);
    o.opt_str("tenant", r.tenant.as_ref());
    o.str("time", &r.time);
    o.str("trace_id", &r.trace_id);
    o.u64("version", r.version);
    o.close();
}

/// A JSON array or object being written: its brackets and the commas between its values.
struct Seq<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
    end: u8,
}

impl<'o> Seq<'o> {
    fn open(out: &'o mut Vec<u8>, start: u8, end: u8) -> Self {
        out.push(start);
        Seq { out, first: true, end }
    }

    /// Where the next value goes, after a comma unless it is the first.
    #[inline(always)]
    fn next(&mut self) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out
    }

    fn close(self) {
        self.out.push(self.end);
    }
}

/// An array of plain values being written.
struct Row<'o>(Seq<'o>);

impl<'o> Row<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        Row(Seq::open(out, b'[', b']'))
    }

    /// A string, or `null`.
    #[inline(always)]
    fn str(&mut self, value: Option<&str>) {
        Row::value(self.0.next(), Cell::Text(value));
    }

    #[inline(always)]
    fn cell(&mut self, value: Cell<'_>) {
        Row::value(self.0.next(), value);
    }

    /// Appends one value.
    #[inline(always)]
    fn value(out: &mut Vec<u8>, value: Cell<'_>) {
        match value {
            Cell::Text(Some(v)) => escaped(out, v),
            Cell::Text(None) => out.extend_from_slice(b"null"),
            Cell::Flag(f) => out.extend_from_slice(if f { b"true" } else { b"false" }),
        }
    }

    fn close(self) {
        self.0.close();
    }
}

/// An object being written: fields must come in sorted key order.
struct Object<'o>(Seq<'o>);

impl<'o> Object<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        Object(Seq::open(out, b'{', b'}'))
    }

    /// A key: a plain name, so it needs no escaping. (Inlined, so its length is a
    /// constant and the copies are a few moves, not calls.)
    #[inline(always)]
    fn key(&mut self, key: &'static str) {
        let out = self.0.next();
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
    }

    #[inline(always)]
    fn str(&mut self, key: &'static str, value: &str) {
        self.key(key);
        escaped(self.0.out, value);
    }

    #[inline(always)]
    fn str_unless_blank(&mut self, key: &'static str, value: &Text<'_>) {
        if !value.is_empty() {
            self.str(key, value);
        }
    }

    #[inline(always)]
    fn opt_str(&mut self, key: &'static str, value: Option<&Text<'_>>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    #[inline(always)]
    fn true_only(&mut self, key: &'static str, value: bool) {
        if value {
            self.key(key);
            self.0.out.extend_from_slice(b"true");
        }
    }

    #[inline(always)]
    fn u64(&mut self, key: &'static str, value: u64) {
        self.key(key);
        self.0
            .out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn close(self) {
        self.0.close();
    }
}

/// A JSON string as `serde_json` escapes it: `"` and `\`, the short forms of backspace,
/// form feed, newline, carriage return and tab, `\u00XX` for other control characters.
fn escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(bytes.get(plain..i).unwrap_or_default());
        plain = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            // Writing to a Vec cannot fail.
            _ => drop(write!(out, "\\u{b:04x}")),
        }
    }
    out.extend_from_slice(bytes.get(plain..).unwrap_or_default());
    out.push(b'"');
}

/// Whether any byte is a control character, `"` or `\`; eight bytes at a time (a byte
/// below 0x20, or equal to one of the two, sets its high bit in the word's test). A text
/// shorter than a word is tested as one word of two overlapping loads, most of the short
/// codes and names a record holds.
fn needs_escape(bytes: &[u8]) -> bool {
    /// Fills a word's unused bytes: a letter, which needs no escape.
    const PAD: u64 = u64::from_ne_bytes([b'a'; 8]);
    let n = bytes.len();
    let load = |at: usize, len: usize| -> u64 {
        let mut word = [0; 8];
        if let (Some(w), Some(b)) = (word.get_mut(..len), bytes.get(at..at + len)) {
            w.copy_from_slice(b);
        }
        u64::from_le_bytes(word)
    };
    let word = match n {
        0 => return false,
        1 => load(0, 1) | PAD << 8,
        2..4 => load(0, 2) | load(n - 2, 2) << 16 | PAD << 32,
        4..8 => load(0, 4) | load(n - 4, 4) << 32,
        _ => {
            let mut words = bytes.chunks_exact(8);
            if words.any(|w| special(load_word(w))) {
                return true;
            }
            // The last eight bytes, overlapping what was tested: they hold the rest.
            return n % 8 != 0 && special(load(n - 8, 8));
        }
    };
    special(word)
}

fn load_word(w: &[u8]) -> u64 {
    u64::from_le_bytes(w.try_into().unwrap_or_default())
}

/// Whether any byte of `w` is below 0x20, `"` or `\`.
fn special(w: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    below(w, 0x20) | below(quote, 1) | below(backslash, 1) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{AuditItem, group};
    use rand::Rng;

    /// Text with what JSON must escape, non-ASCII and plain letters, or nothing.
    fn text(rng: &mut impl Rng) -> Text<'static> {
        const PARTS: [&str; 9] = [
            "",
            "a",
            "dr-ann",
            "\"",
            "\\",
            "\u{1}\n\t\r\u{8}\u{c}\u{1f}",
            "é漢",
            "\u{7f}",
            "/",
        ];
        let n = rng.random_range(0..4);
        (0..n)
            .map(|_| PARTS[rng.random_range(0..PARTS.len())])
            .collect::<String>()
            .into()
    }

    fn item(rng: &mut impl Rng) -> AuditItem<'static> {
        AuditItem {
            action: text(rng),
            break_glass: rng.random(),
            outcome: if rng.random() { "allow" } else { "deny" },
            reason: text(rng),
            requirement: text(rng),
            resource_id: text(rng),
            resource_type: text(rng),
            rule: text(rng),
            severity: if rng.random() { "info" } else { "high" },
            tenant: rng.random::<bool>().then(|| text(rng)),
        }
    }

    /// Up to four items, each field either the first item's or its own, so that some
    /// columns are shared and go to `same`.
    fn items(rng: &mut impl Rng) -> Vec<AuditItem<'static>> {
        let first = item(rng);
        let n = rng.random_range(0..5);
        (0..n)
            .map(|_| {
                let own = item(rng);
                let mut its_own = || rng.random_bool(0.3);
                AuditItem {
                    action: if its_own() { own.action } else { first.action.clone() },
                    break_glass: if its_own() { own.break_glass } else { first.break_glass },
                    outcome: if its_own() { own.outcome } else { first.outcome },
                    reason: if its_own() { own.reason } else { first.reason.clone() },
                    requirement: if its_own() {
                        own.requirement
                    } else {
                        first.requirement.clone()
                    },
                    resource_id: if its_own() {
                        own.resource_id
                    } else {
                        first.resource_id.clone()
                    },
                    resource_type: if its_own() {
                        own.resource_type
                    } else {
                        first.resource_type.clone()
                    },
                    rule: if its_own() { own.rule } else { first.rule.clone() },
                    severity: if its_own() { own.severity } else { first.severity },
                    tenant: if its_own() { own.tenant } else { first.tenant.clone() },
                }
            })
            .collect()
    }

    #[test]
    fn escapes_are_found_wherever_they_sit() {
        for len in 0..20 {
            for at in 0..len {
                for b in 0u8..=255 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    let want = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&bytes), want, "byte {b:#x} at {at} of {len}");
                }
            }
            assert!(!needs_escape(&vec![0xe9; len]));
        }
    }

    #[test]
    fn records_are_written_as_serde_json_writes_them() {
        let mut rng = rand::rng();
        for _ in 0..2_000 {
            let (columns, decisions, same) = group(items(&mut rng));
            let r = AuditRecord {
                acting_as: rng.random::<bool>().then(|| text(&mut rng)),
                action: text(&mut rng),
                break_glass: rng.random(),
                break_glass_reason: rng.random::<bool>().then(|| text(&mut rng)),
                caller_time: rng.random(),
                client: text(&mut rng),
                columns,
                decision_time: text(&mut rng),
                decisions,
                details: rng.random::<bool>().then(|| text(&mut rng)),
                id: text(&mut rng),
                kind: "decision",
                outcome: "deny",
                prev: text(&mut rng),
                principal: text(&mut rng),
                reason: text(&mut rng),
                replica: text(&mut rng),
                requirement: text(&mut rng),
                resource_id: text(&mut rng),
                resource_type: text(&mut rng),
                rule: text(&mut rng),
                same,
                seq: rng.random(),
                severity: "high",
                tenant: rng.random::<bool>().then(|| text(&mut rng)),
                time: text(&mut rng),
                trace_id: text(&mut rng),
                version: rng.random(),
            };
            let mut ours = Vec::new();
            write_record(&mut ours, &r);
            let theirs = serde_json::to_vec(&r).unwrap();
            assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }
}
