//! Reading a JSON bundle as it streams in, never holding the whole document: the grant
//! list is parsed one grant at a time from a reused buffer, and the rest (settings, types,
//! roles, principals, groups, denies: small beside ten million grants) is gathered into one
//! document and parsed as usual.
//!
//! This is a fast path only. Anything it does not expect (a document that is not an object,
//! an escaped top-level key, `grants` twice, any parse error) makes it give up, and the
//! caller parses the whole document the ordinary way, so every error, and every document it
//! would misjudge, gets exactly the answer [`crate::parse_bundle`] gives.

use crate::bundle::{Bundle, Grant};
use std::io::{BufRead, ErrorKind};

/// Why the fast path gave up: the document is read again whole, or reading failed.
#[derive(Debug)]
pub(crate) enum GiveUp {
    /// Not the shape this reader expects, or not valid: parse the ordinary way.
    Shape,
    /// The reader failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for GiveUp {
    fn from(e: std::io::Error) -> GiveUp {
        GiveUp::Io(e)
    }
}

/// Reads a JSON bundle from `input`, with room reserved for `room` grants.
pub(crate) fn read_json_bundle(input: &mut impl BufRead, room: usize) -> Result<Bundle, GiveUp> {
    let mut doc = Doc { input };
    let mut rest = b"{".to_vec();
    let mut grants: Option<Vec<Grant>> = None;
    doc.skip_space()?;
    doc.expect(b'{')?;
    let mut first = true;
    loop {
        doc.skip_space()?;
        if first && doc.peek()? == Some(b'}') {
            doc.input.consume(1);
            break;
        }
        let mut key = Vec::new();
        doc.value(&mut key)?;
        if key.first() != Some(&b'"') || key.contains(&b'\\') {
            return Err(GiveUp::Shape);
        }
        doc.skip_space()?;
        doc.expect(b':')?;
        doc.skip_space()?;
        if key == b"\"grants\"" && doc.peek()? == Some(b'[') {
            if grants.is_some() {
                return Err(GiveUp::Shape);
            }
            grants = Some(doc.grants(room)?);
        } else {
            if rest.len() > 1 {
                rest.push(b',');
            }
            rest.extend_from_slice(&key);
            rest.push(b':');
            doc.value(&mut rest)?;
        }
        first = false;
        doc.skip_space()?;
        match doc.next()? {
            Some(b',') => {}
            Some(b'}') => break,
            _ => return Err(GiveUp::Shape),
        }
    }
    doc.skip_space()?;
    if doc.peek()?.is_some() {
        return Err(GiveUp::Shape);
    }
    rest.push(b'}');
    let mut bundle: Bundle = serde_json::from_slice(&rest).map_err(|_| GiveUp::Shape)?;
    if let Some(grants) = grants {
        bundle.grants = grants;
    }
    Ok(bundle)
}

/// The document being read.
struct Doc<'a, R> {
    input: &'a mut R,
}

impl<R: BufRead> Doc<'_, R> {
    /// The buffered bytes, read in when none are left; empty at the end.
    fn fill(&mut self) -> Result<&[u8], GiveUp> {
        loop {
            match self.input.fill_buf() {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(GiveUp::Io(e)),
            }
        }
        // Already filled: this second call returns the buffer without reading.
        Ok(self.input.fill_buf()?)
    }

    fn peek(&mut self) -> Result<Option<u8>, GiveUp> {
        Ok(self.fill()?.first().copied())
    }

    fn next(&mut self) -> Result<Option<u8>, GiveUp> {
        let b = self.peek()?;
        if b.is_some() {
            self.input.consume(1);
        }
        Ok(b)
    }

    fn expect(&mut self, byte: u8) -> Result<(), GiveUp> {
        if self.next()? == Some(byte) {
            Ok(())
        } else {
            Err(GiveUp::Shape)
        }
    }

    fn skip_space(&mut self) -> Result<(), GiveUp> {
        loop {
            let bytes = self.fill()?;
            if bytes.is_empty() {
                return Ok(());
            }
            let n = bytes.iter().take_while(|b| is_space(**b)).count();
            let all = n == bytes.len();
            self.input.consume(n);
            if !all {
                return Ok(());
            }
        }
    }

    /// Appends the next JSON value's bytes to `out`, read up to its end. Only the value's
    /// extent is found here (strings, escapes, nesting); serde checks the bytes later.
    fn value(&mut self, out: &mut Vec<u8>) -> Result<(), GiveUp> {
        self.rest_of_value(&mut ValueEnd::default(), out)
    }

    /// Reads a `[grant, ...]` list, parsing each grant from the buffer where it lies whole
    /// (copied aside only when it straddles two reads).
    fn grants(&mut self, room: usize) -> Result<Vec<Grant>, GiveUp> {
        self.expect(b'[')?;
        let mut grants = Vec::new();
        // As `sized_grants` does: room for the most grants the document can hold, as
        // address space; a refused reservation just means growing.
        let _ = grants.try_reserve(room);
        let mut spill = Vec::new();
        self.skip_space()?;
        if self.peek()? == Some(b']') {
            self.input.consume(1);
            return Ok(grants);
        }
        let mut helper = Helper::default();
        loop {
            self.skip_space()?;
            let bytes = self.fill()?;
            if bytes.len() >= SPLIT_MIN {
                let run = helper.run(bytes, &mut grants)?;
                if run.at > 0 {
                    self.input.consume(run.at);
                    if run.closed {
                        return Ok(grants);
                    }
                    continue;
                }
            }
            // serde finds the grant's end as it parses; only a grant cut off by the end
            // of the buffer is scanned for its end and parsed from a copy.
            let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<Grant>();
            match values.next() {
                Some(Ok(grant)) => {
                    let n = values.byte_offset();
                    grants.push(grant);
                    self.input.consume(n);
                }
                Some(Err(e)) if e.is_eof() => {
                    spill.clear();
                    spill.extend_from_slice(bytes);
                    let n = bytes.len();
                    self.input.consume(n);
                    let mut end = ValueEnd::default();
                    if end.scan(&spill).is_some() {
                        // A whole value that serde still found cut off: not a grant.
                        return Err(GiveUp::Shape);
                    }
                    self.rest_of_value(&mut end, &mut spill)?;
                    grants.push(serde_json::from_slice(&spill).map_err(|_| GiveUp::Shape)?);
                }
                _ => return Err(GiveUp::Shape),
            }
            self.skip_space()?;
            match self.next()? {
                Some(b',') => {}
                Some(b']') => return Ok(grants),
                _ => return Err(GiveUp::Shape),
            }
        }
    }

    /// Continues a value `end` has begun scanning, appending its bytes to `out`.
    fn rest_of_value(&mut self, end: &mut ValueEnd, out: &mut Vec<u8>) -> Result<(), GiveUp> {
        loop {
            let bytes = self.fill()?;
            if bytes.is_empty() {
                return Err(GiveUp::Shape);
            }
            let n = end.scan(bytes).unwrap_or(bytes.len());
            out.extend_from_slice(bytes.get(..n).ok_or(GiveUp::Shape)?);
            let done = n < bytes.len() || end.done;
            self.input.consume(n);
            if done {
                return Ok(());
            }
        }
    }
}

/// A buffer at least this long is parsed in two halves at once.
const SPLIT_MIN: usize = 64 << 10;

/// How far [`run`] got: `at` bytes are parsed, ending at the start of a grant (perhaps
/// after spaces) or, when `closed`, just past the list's `]`.
#[derive(Debug, PartialEq)]
struct Run {
    at: usize,
    closed: bool,
}

/// Parses `grant, grant, ...` from the start of `bytes` (a grant's first byte, or spaces
/// before it) into `out`, until a grant would start at or past `stop`, the list closes, or
/// the next grant or its separator is not in `bytes` whole.
fn run(bytes: &[u8], stop: usize, out: &mut Vec<Grant>) -> Result<Run, GiveUp> {
    let spaces = |from: usize| {
        from + bytes
            .get(from..)
            .map_or(0, |b| b.iter().take_while(|c| is_space(**c)).count())
    };
    let mut at = 0;
    loop {
        let start = spaces(at);
        let Some(rest) = bytes.get(start..).filter(|r| !r.is_empty() && start < stop) else {
            return Ok(Run {
                at: start,
                closed: false,
            });
        };
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Grant>();
        let grant = match values.next() {
            Some(Ok(grant)) => grant,
            Some(Err(e)) if e.is_eof() => {
                return Ok(Run {
                    at: start,
                    closed: false,
                });
            }
            _ => return Err(GiveUp::Shape),
        };
        let end = spaces(start + values.byte_offset());
        match bytes.get(end) {
            Some(b',') => at = end + 1,
            Some(b']') => {
                out.push(grant);
                return Ok(Run {
                    at: end + 1,
                    closed: true,
                });
            }
            None => {
                return Ok(Run {
                    at: start,
                    closed: false,
                });
            }
            Some(_) => return Err(GiveUp::Shape),
        }
        out.push(grant);
    }
}

/// Where the second half of `bytes` seems to start a grant: the `{` of the first `}, {`
/// past the middle. Only a guess (the text could sit inside a string): [`Helper::run`]
/// uses the half parsed from it only once the first half's parse has ended exactly there.
fn split(bytes: &[u8]) -> Option<usize> {
    let mut from = bytes.len() / 2;
    while let Some(comma) = bytes.get(from..)?.iter().position(|b| *b == b',') {
        let comma = from + comma;
        let before = bytes.get(..comma)?.iter().rev().find(|b| !is_space(**b));
        let after = bytes.get(comma + 1..)?.iter().position(|b| !is_space(*b));
        if let (Some(b'}'), Some(n)) = (before, after)
            && bytes.get(comma + 1 + n) == Some(&b'{')
        {
            return Some(comma + 1 + n);
        }
        from = comma + 1;
    }
    None
}

/// The second thread of a grant list's parse: its names and the grants of the half it
/// parses, both kept from one buffer to the next.
#[derive(Default)]
struct Helper {
    names: crate::name::Table,
    grants: Vec<Grant>,
}

impl Helper {
    /// [`run`] over `bytes`, the half after [`split`] parsed on a second thread. The first
    /// half is parsed here; where it does not end at the split (the guess was inside a
    /// string, or past the list), the second half's grants and errors are thrown away
    /// and the run ends where the first half's did.
    fn run(&mut self, bytes: &[u8], out: &mut Vec<Grant>) -> Result<Run, GiveUp> {
        let Some(at) = split(bytes) else {
            return run(bytes, usize::MAX, out);
        };
        let Helper { names, grants } = self;
        let (first, second) = std::thread::scope(|scope| {
            let second = scope.spawn(|| {
                crate::name::interning_in(names, || run(bytes.get(at..).unwrap_or_default(), usize::MAX, grants))
            });
            let first = run(bytes, at, out);
            (first, second.join())
        });
        let first = first?;
        let confirmed = first == Run { at, closed: false };
        match second {
            Ok(Ok(second)) if confirmed => {
                out.append(grants);
                Ok(Run {
                    at: at + second.at,
                    closed: second.closed,
                })
            }
            Ok(Err(e)) if confirmed => Err(e),
            _ => {
                grants.clear();
                Ok(first)
            }
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Where a JSON value ends, found across as many reads as it spans.
#[derive(Default)]
struct ValueEnd {
    begun: bool,
    /// The value is a number or literal: it ends at the first delimiter.
    scalar: bool,
    depth: u32,
    in_string: bool,
    escaped: bool,
    done: bool,
}

impl ValueEnd {
    /// How many of `bytes` belong to the value, when it ends within them.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.depth == 0 {
                        return self.end(i + 1);
                    }
                }
                continue;
            }
            if !self.begun {
                self.begun = true;
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth = 1,
                    _ => self.scalar = true,
                }
                continue;
            }
            if self.scalar {
                if is_space(b) || matches!(b, b',' | b']' | b'}') {
                    return self.end(i);
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return self.end(i + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }

    fn end(&mut self, n: usize) -> Option<usize> {
        self.done = true;
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, parse_bundle, read_bundle};
    use std::io::BufReader;

    /// The fast path's bundle, read `at` bytes at a time so values straddle reads.
    fn streamed(doc: &[u8], at: usize) -> Result<Bundle, GiveUp> {
        let mut input = BufReader::with_capacity(at, doc);
        crate::name::interning(|| read_json_bundle(&mut input, 0))
    }

    #[test]
    fn streamed_bundles_are_the_ones_parsed_whole() {
        let mut docs: Vec<Vec<u8>> = Vec::new();
        for seed in 0..40 {
            let bundle = crate::synth::random_bundle(seed);
            docs.push(serde_json::to_vec(&bundle).unwrap());
            docs.push(serde_json::to_vec_pretty(&bundle).unwrap());
        }
        // Strings that look like structure, escapes, and a list that is empty or last.
        docs.push(
            br#" { "grants" : [ {"principal":"a\"]}","role":"r","scope":"all","ticket":"x\\"} ,
            {"group":"g{[","role":"r\u00e9","scope":{"tenant":"t"}} ] , "principals":[{"id":"a\"]}"}] } "#
                .to_vec(),
        );
        docs.push(br#"{"grants":[],"roles":[]}"#.to_vec());
        docs.push(br#"{"roles":[],"grants":[{"principal":"a","role":"r","scope":"all"}]}"#.to_vec());
        docs.push(b"{}".to_vec());
        for doc in &docs {
            let whole = parse_bundle(doc, Format::Json).unwrap();
            for at in [1, 2, 3, 7, 64, 1 << 16] {
                let Ok(read) = streamed(doc, at) else {
                    panic!("gave up on a valid document: {}", String::from_utf8_lossy(doc))
                };
                assert_eq!(read, whole, "read {at} bytes at a time");
            }
        }
    }

    /// `n` grants, a third of them with principals that hold `}, {` (a split point's look).
    fn grant_texts(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let principal = match i % 3 {
                    0 => format!("u{i}"),
                    1 => format!("u{i}\"}}, {{\"x"),
                    _ => format!("u{i}}}, {{"),
                };
                format!(
                    r#"{{"principal":{},"role":"r{}","scope":{{"tenant":"t{}"}}}}"#,
                    serde_json::to_string(&principal).unwrap(),
                    i % 7,
                    i % 50
                )
            })
            .collect()
    }

    #[test]
    fn long_lists_parsed_in_halves_are_the_ones_parsed_whole() {
        let grants = grant_texts(6000);
        let principals: Vec<String> = (0..3000).map(|i| format!(r#"{{"id":"u{i}"}}"#)).collect();
        let docs = [
            // The list is followed by another that looks like grants to `split`.
            format!(
                r#"{{"grants":[{}],"principals":[{}]}}"#,
                grants.join(", "),
                principals.join(", ")
            ),
            format!(
                r#"{{"principals":[{}],"grants":[{}]}}"#,
                principals.join(","),
                grants.join(",")
            ),
            format!("{{\"grants\": [\n  {}\n]}}", grants.join(",\n  ")),
        ];
        for doc in &docs {
            let whole = parse_bundle(doc.as_bytes(), Format::Json).unwrap();
            for at in [SPLIT_MIN, SPLIT_MIN + 7, 3 * SPLIT_MIN] {
                let Ok(read) = streamed(doc.as_bytes(), at) else {
                    panic!("gave up on a valid document read {at} bytes at a time")
                };
                assert_eq!(read, whole, "read {at} bytes at a time");
            }
        }
        // A bad grant in a second half: the whole parse's error, with its place.
        let mut bad = grants.clone();
        bad[5000] = r#"{"principal":"u","role":3,"scope":"all"}"#.to_owned();
        let doc = format!(r#"{{"grants":[{}]}}"#, bad.join(","));
        assert!(matches!(streamed(doc.as_bytes(), 3 * SPLIT_MIN), Err(GiveUp::Shape)));
        let read = read_bundle(std::io::Cursor::new(doc.as_bytes()), Format::Json);
        assert!(read.is_err());
        assert_eq!(read, parse_bundle(doc.as_bytes(), Format::Json));
    }

    #[test]
    fn a_half_is_used_only_when_the_first_ends_where_it_begins() {
        let texts = grant_texts(3000);
        let whole: Vec<Grant> = texts.iter().map(|t| serde_json::from_str(t).unwrap()).collect();
        let bytes = format!("{}]", texts.join(",")).into_bytes();
        let mut helper = Helper::default();
        let mut sequential = Vec::new();
        assert_eq!(
            run(&bytes, usize::MAX, &mut sequential).unwrap(),
            Run {
                at: bytes.len(),
                closed: true
            }
        );
        assert_eq!(sequential, whole);
        // Split where the guess is a real boundary: one run reads the whole list.
        let mut out = Vec::new();
        assert_eq!(
            helper.run(&bytes, &mut out).unwrap(),
            Run {
                at: bytes.len(),
                closed: true
            }
        );
        assert_eq!(out, whole);
        // A guess inside a string (a principal holding `}, {`): the second half is
        // thrown away, the run ends where the first half's did, and going on from there
        // reads the same grants.
        let inside = (10..).find(|&i| texts[i].contains("}, {")).unwrap();
        let start: usize = texts[..inside].iter().map(|t| t.len() + 1).sum();
        // Its middle is where that grant starts; it holds the grant and its comma.
        let fooled = &bytes[..2 * start + 1];
        let guess = split(fooled).unwrap();
        assert!(guess > start && guess < start + texts[inside].len(), "{guess}, {start}");
        let mut out = Vec::new();
        let first = helper.run(fooled, &mut out).unwrap();
        assert!(!first.closed && first.at > guess, "{first:?}");
        let rest = run(&bytes[first.at..], usize::MAX, &mut out).unwrap();
        assert!(rest.closed);
        assert_eq!(out, whole);
    }

    #[test]
    fn what_it_does_not_expect_is_parsed_whole_with_the_same_answer() {
        let grant = r#"{"principal":"a","role":"r","scope":"all"}"#;
        let docs = [
            format!(r#"{{"gr\u0061nts":[{grant}]}}"#),
            format!(r#"{{"grants":[{grant}],"grants":[]}}"#),
            format!(r#"{{"grants":[{grant},]}}"#),
            format!(r#"{{"grants":[{grant}]}} x"#),
            format!(r#"{{"grants":[{grant}]"#),
            r#"{"grants":[{"principal":"a","role":3,"scope":"all"}]}"#.to_owned(),
            r#"{"grants":[{"principal":"a","role":"r","scope":"all","expire":1}]}"#.to_owned(),
            r#"{"grants":3}"#.to_owned(),
            r#"{"grants":[1]}"#.to_owned(),
            r#"{"rolez":[],"grants":[]}"#.to_owned(),
            r#"{"roles":[],}"#.to_owned(),
            r#"[]"#.to_owned(),
            String::new(),
        ];
        for doc in &docs {
            assert!(
                matches!(streamed(doc.as_bytes(), 5), Err(GiveUp::Shape)),
                "took the fast path on {doc}"
            );
            let read = read_bundle(std::io::Cursor::new(doc.as_bytes()), Format::Json);
            assert_eq!(read, parse_bundle(doc.as_bytes(), Format::Json), "{doc}");
        }
        let yaml = include_bytes!("../../examples/clinic-portal.yaml");
        let read = read_bundle(std::io::Cursor::new(&yaml[..]), Format::Yaml);
        assert_eq!(read, parse_bundle(yaml, Format::Yaml), "YAML is read whole");
        // The escaped key is still `grants`: parsed whole, the bundle has its grant.
        let read = read_bundle(std::io::Cursor::new(docs[0].as_bytes()), Format::Json).unwrap();
        assert_eq!(read.grants.len(), 1);
    }
}
