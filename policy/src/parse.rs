//! Reading bundles and test files from untrusted bytes. Never panics; errors say where.

use crate::bundle::{Bundle, PolicyTestFile};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The two spellings of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML 1.2.
    Yaml,
    /// JSON.
    Json,
}

impl Format {
    /// Picks the format from a file name: `.json` is JSON, anything else YAML.
    pub fn from_path(path: &str) -> Format {
        if path.to_ascii_lowercase().ends_with(".json") {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// A document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}invalid {format:?} document: {message}", location(*line, *column))]
pub struct ParseError {
    /// Which format was being read.
    pub format: Format,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// 1-based column of the problem, when known.
    pub column: Option<usize>,
    /// What was wrong.
    pub message: String,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

/// Deepest nesting of collections a YAML document may have; bundles need about six.
pub const MAX_YAML_DEPTH: usize = 64;

/// Most nodes aliases (`*name`, merge keys) may add to a YAML document beyond the nodes
/// written out, so a small document cannot expand into a huge one.
pub const MAX_ALIAS_EXPANSION: u64 = 1_000_000;

/// Walks the YAML event stream once, without building anything, and refuses documents
/// nested deeper than `MAX_YAML_DEPTH` or whose aliases would expand past
/// `MAX_ALIAS_EXPANSION` nodes, before the real parser does work that grows with either.
fn check_yaml_shape(bytes: &[u8]) -> Result<(), ParseError> {
    use yaml_rust2::parser::{Event, Parser};
    let error = |line: Option<usize>, column: Option<usize>, message: String| ParseError {
        format: Format::Yaml,
        line,
        column,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        error(
            None,
            None,
            format!("not UTF-8: invalid byte at offset {}", e.valid_up_to()),
        )
    })?;
    let mut parser = Parser::new_from_str(text);
    // Expanded size of each open collection, and of each anchored node once complete.
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut anchored: std::collections::HashMap<usize, u64> = std::collections::HashMap::new();
    let (mut written, mut expanded) = (0u64, 0u64);
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| error(Some(e.marker().line()), Some(e.marker().col() + 1), e.info().to_owned()))?;
        let added = match event {
            Event::StreamEnd => return Ok(()),
            Event::Scalar(_, _, anchor, _) => {
                if anchor > 0 {
                    anchored.insert(anchor, 1);
                }
                written += 1;
                1
            }
            Event::Alias(anchor) => anchored.get(&anchor).copied().unwrap_or(1),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((anchor, 1));
                written += 1;
                if open.len() > MAX_YAML_DEPTH {
                    return Err(error(
                        Some(mark.line()),
                        Some(mark.col() + 1),
                        format!("nested deeper than {MAX_YAML_DEPTH} levels"),
                    ));
                }
                expanded = expanded.saturating_add(1);
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some((anchor, size)) = open.pop() else { continue };
                if anchor > 0 {
                    anchored.insert(anchor, size);
                }
                if let Some(parent) = open.last_mut() {
                    parent.1 = parent.1.saturating_add(size);
                }
                continue;
            }
            _ => continue,
        };
        if let Some(parent) = open.last_mut() {
            parent.1 = parent.1.saturating_add(added);
        }
        expanded = expanded.saturating_add(added);
        if expanded.saturating_sub(written) > MAX_ALIAS_EXPANSION {
            return Err(error(
                Some(mark.line()),
                Some(mark.col() + 1),
                format!("aliases expand the document by more than {MAX_ALIAS_EXPANSION} nodes"),
            ));
        }
    }
}

/// The 1-based line of each of `paths` (`grants[3].role`, `settings.idle_timeout`) in a
/// YAML or JSON document: of the node itself, or of its deepest ancestor the document
/// spells out (a field left to its default, a node reached through an alias). One pass
/// over the event stream; only called when there are problems to place.
pub(crate) fn lines_of(bytes: &[u8], paths: &[&str]) -> Vec<Option<usize>> {
    use yaml_rust2::parser::{Event, Parser};
    let Ok(text) = std::str::from_utf8(bytes) else {
        return vec![None; paths.len()];
    };
    // Every prefix of a wanted path, so a node's line is kept only if someone asks.
    let mut wanted: std::collections::HashMap<String, Option<usize>> = std::collections::HashMap::new();
    for p in paths {
        for (i, c) in p.char_indices() {
            if c == '.' || c == '[' {
                wanted.insert(p[..i].to_owned(), None);
            }
        }
        wanted.insert((*p).to_owned(), None);
    }
    enum Frame {
        /// A mapping and the key whose value comes next (`None`: a key comes next).
        Map(Option<String>),
        /// A sequence and the index of its next item.
        Seq(usize),
    }
    let mut stack: Vec<(Frame, usize)> = Vec::new(); // frame, length of `path` at its start
    let mut path = String::new();
    let mut parser = Parser::new_from_str(text);
    while let Ok((event, mark)) = parser.next_token() {
        let is_start = matches!(event, Event::SequenceStart(..) | Event::MappingStart(..));
        let is_node = is_start || matches!(event, Event::Scalar(..) | Event::Alias(_));
        if matches!(event, Event::StreamEnd) {
            break;
        }
        if matches!(event, Event::SequenceEnd | Event::MappingEnd) {
            if let Some((_, len)) = stack.pop() {
                path.truncate(len);
            }
            advance(&mut stack);
            continue;
        }
        if !is_node {
            continue;
        }
        // A scalar in key position names the next value; it is not itself a node with a path.
        if let (Some((Frame::Map(key @ None), _)), Event::Scalar(name, ..)) = (stack.last_mut(), &event) {
            *key = Some(name.clone());
            continue;
        }
        let base = path.len();
        match stack.last() {
            Some((Frame::Map(Some(key)), _)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Some((Frame::Seq(i), _)) => path.push_str(&format!("[{i}]")),
            _ => {}
        }
        if let Some(line) = wanted.get_mut(path.as_str())
            && line.is_none()
        {
            *line = Some(mark.line());
        }
        if is_start {
            let frame = if matches!(event, Event::SequenceStart(..)) {
                Frame::Seq(0)
            } else {
                Frame::Map(None)
            };
            stack.push((frame, base));
        } else {
            path.truncate(base);
            advance(&mut stack);
        }
    }
    /// After a value: a mapping expects its next key, a sequence its next index.
    fn advance(stack: &mut [(Frame, usize)]) {
        match stack.last_mut() {
            Some((Frame::Map(key), _)) => *key = None,
            Some((Frame::Seq(i), _)) => *i += 1,
            None => {}
        }
    }
    paths
        .iter()
        .map(|p| {
            let mut prefix: &str = p;
            loop {
                if let Some(Some(line)) = wanted.get(prefix) {
                    return Some(*line);
                }
                match prefix.rfind(['.', '[']) {
                    Some(i) => prefix = &prefix[..i],
                    None => return None,
                }
            }
        })
        .collect()
}

fn parse<T: DeserializeOwned>(bytes: &[u8], format: Format) -> Result<T, ParseError> {
    if format == Format::Yaml {
        check_yaml_shape(bytes)?;
    }
    match format {
        Format::Json => serde_json::from_slice(bytes).map_err(|e| ParseError {
            format,
            line: Some(e.line()),
            column: Some(e.column()),
            message: e.to_string(),
        }),
        Format::Yaml => serde_yaml::from_slice(bytes).or_else(|direct| {
            // Merge keys (`<<: *anchor`) need a pass over the whole tree; only pay for it when used.
            if !bytes.windows(3).any(|w| w == b"<<:") {
                return Err(yaml_error(direct));
            }
            let mut value: serde_yaml::Value = serde_yaml::from_slice(bytes).map_err(yaml_error)?;
            value.apply_merge().map_err(yaml_error)?;
            T::deserialize(value).map_err(yaml_error)
        }),
    }
}

fn yaml_error(e: serde_yaml::Error) -> ParseError {
    let loc = e.location();
    ParseError {
        format: Format::Yaml,
        line: loc.as_ref().map(|l| l.line()),
        column: loc.as_ref().map(|l| l.column()),
        message: e.to_string(),
    }
}

/// The fewest bytes a grant takes in a document (`{"principal":"a","role":"b","scope":"all"}`
/// is 42 in JSON, a little less in YAML flow style).
const MIN_GRANT_BYTES: usize = 36;

thread_local! {
    /// Room for the grants of the document being parsed on this thread: the most it can hold.
    static GRANT_ROOM: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Reads the grant list into a vector sized up front from the document's length, the most
/// grants it can hold. Grown by doubling, a 10M-grant list would copy every grant about
/// twice and hold its old and new buffers at once (1.7 + 3.4 GB at the last step, and the
/// allocator keeps freed pages a while). The room reserved and not used is address space
/// only: pages nothing writes are never backed by memory.
pub(crate) fn sized_grants<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct Sized<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Sized<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            // A format's own hint is not trusted beyond the room (an untrusted document can
            // claim any length), and a reservation the system refuses just means growing.
            let room = GRANT_ROOM.get();
            let mut all = Vec::new();
            let _ = all.try_reserve(seq.size_hint().map_or(room, |hint| hint.min(room)));
            while let Some(item) = seq.next_element()? {
                all.push(item);
            }
            Ok(all)
        }
    }
    d.deserialize_seq(Sized(std::marker::PhantomData))
}

/// Reads a bundle. Structure only: call [`crate::validate`] for the policy's own rules.
/// Names its grants repeat (roles, tenants, groups) are read into shared [`crate::name::Name`]s.
pub fn parse_bundle(bytes: &[u8], format: Format) -> Result<Bundle, ParseError> {
    let room = GRANT_ROOM.replace(bytes.len() / MIN_GRANT_BYTES);
    let parsed = crate::name::interning(|| parse(bytes, format));
    GRANT_ROOM.set(room);
    parsed
}

/// [`parse_bundle`] from a file (or any reader that can go back to its start), without
/// holding the whole document: a JSON bundle's grants are parsed as they stream in, so a
/// 1 GB bundle never sits in memory beside what it parses into. YAML, and any JSON
/// document the streaming reader does not expect or finds a problem in, is read whole
/// and parsed by [`parse_bundle`], which gives the same bundle or the error with its place.
pub fn read_bundle(mut input: impl std::io::Read + std::io::Seek, format: Format) -> Result<Bundle, ParseError> {
    let io_error = |e: std::io::Error| ParseError {
        format,
        line: None,
        column: None,
        message: format!("cannot read the document: {e}"),
    };
    if format == Format::Json {
        let len = input.seek(std::io::SeekFrom::End(0)).map_err(io_error)?;
        input.rewind().map_err(io_error)?;
        let room = usize::try_from(len).unwrap_or(usize::MAX) / MIN_GRANT_BYTES;
        let mut buffered = std::io::BufReader::with_capacity(STREAM_BUFFER, &mut input);
        match crate::name::interning(|| crate::stream::read_json_bundle(&mut buffered, room)) {
            Ok(bundle) => return Ok(bundle),
            Err(crate::stream::GiveUp::Io(e)) => return Err(io_error(e)),
            Err(crate::stream::GiveUp::Shape) => {}
        }
        drop(buffered);
        input.rewind().map_err(io_error)?;
    }
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).map_err(io_error)?;
    parse_bundle(&bytes, format)
}

/// Bytes the streaming reader reads at a time.
const STREAM_BUFFER: usize = 4 << 20;

/// Reads a policy test file (`tests: [...]`).
pub fn parse_tests(bytes: &[u8], format: Format) -> Result<PolicyTestFile, ParseError> {
    parse(bytes, format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reports_the_line_of_a_yaml_error() {
        let err = parse_bundle(b"roles:\n  - name: a\n    bogus: 1\n", Format::Yaml).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("bogus"), "{err}");
    }

    #[test]
    fn grants_beyond_the_room_the_length_suggests_are_all_read() {
        // Aliases make grants shorter than any grant written out: the vector grows past
        // its reserved room rather than losing any.
        let aliases = vec!["*g"; 300].join(", ");
        let doc = format!(
            "resource_types: [{{name: note, actions: [read]}}]\nroles: [{{name: r, permissions: {{note: [read]}}}}]\nprincipals: [{{id: ann}}]\ngrants: [&g {{principal: ann, role: r, scope: all}}, {aliases}]\n"
        );
        let bundle = parse_bundle(doc.as_bytes(), Format::Yaml).unwrap();
        assert!(bundle.grants.len() > doc.len() / MIN_GRANT_BYTES);
        assert_eq!(bundle.grants.len(), 301);
        assert!(bundle.grants.iter().all(|g| g.principal.as_deref() == Some("ann")));
    }

    #[test]
    fn grant_terms_are_written_flat_and_held_out_of_line() {
        let doc = r#"{"grants":[
            {"principal":"a","role":"r","scope":"all"},
            {"principal":"b","role":"r","scope":"all","expires":"2027-01-01T00:00:00Z",
             "approvals":[{"by":"c"}],"ticket":"T-1"}]}"#;
        let bundle = parse_bundle(doc.as_bytes(), Format::Json).unwrap();
        let [plain, termed] = &bundle.grants[..] else {
            panic!("two grants")
        };
        assert!(plain.terms.is_none(), "a grant without terms holds no box");
        assert_eq!(termed.terms().ticket.as_deref(), Some("T-1"));
        assert_eq!(termed.terms().approvals.len(), 1);
        assert!(termed.terms().expires.is_some());
        // Written back at one level, and read again to the same grants.
        let json = serde_json::to_value(&bundle).unwrap();
        assert_eq!(json["grants"][1]["ticket"], "T-1");
        assert!(json["grants"][0].get("approvals").is_none());
        let again = parse_bundle(json.to_string().as_bytes(), Format::Json).unwrap();
        assert_eq!(again.grants, bundle.grants);
        // An empty box is the same grant as none.
        let mut emptied = termed.clone();
        *emptied.terms_mut() = crate::bundle::GrantTerms::default();
        let plain_b = crate::bundle::Grant {
            principal: Some("b".into()),
            ..plain.clone()
        };
        assert_eq!(emptied, plain_b);
        assert_ne!(termed, &plain_b);
        let err = parse_bundle(
            br#"{"grants":[{"principal":"a","role":"r","scope":"all","expire":1}]}"#,
            Format::Json,
        )
        .unwrap_err();
        assert!(err.message.contains("unknown field `expire`"), "{err}");
        // Ten million grants are held at once at scale: the terms stay out of line.
        assert!(std::mem::size_of::<crate::bundle::Grant>() <= 88);
    }

    #[test]
    fn scope_keys_unknown_or_repeated_are_named() {
        let doc = |scope: &str| format!(r#"{{"grants":[{{"principal":"a","role":"r","scope":{scope}}}]}}"#);
        let err = parse_bundle(doc(r#"{"tenantx":"t"}"#).as_bytes(), Format::Json).unwrap_err();
        assert!(
            err.message
                .contains("unknown field `tenantx`, expected one of `tenant`, `resources`, `own`"),
            "{err}"
        );
        let err = parse_bundle(doc(r#"{"tenant":"t","tenant":"u"}"#).as_bytes(), Format::Json).unwrap_err();
        assert!(err.message.contains("`tenant` appears twice in one scope"), "{err}");
        let ok = parse_bundle(doc(r#"{"own":true,"tenant":"t"}"#).as_bytes(), Format::Json).unwrap();
        assert_eq!(
            ok.grants.first().map(|g| &g.scope),
            Some(&crate::Scope::Own {
                tenant: Some("t".into())
            })
        );
    }

    #[test]
    fn rejects_unknown_top_level_fields_in_json() {
        let err = parse_bundle(br#"{"rolez": []}"#, Format::Json).unwrap_err();
        assert!(err.message.contains("rolez"), "{err}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut doc = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 { "a".to_string() } else { format!("l{}", i - 1) };
            doc.push_str(&format!(
                "l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let err = parse_bundle(doc.as_bytes(), Format::Yaml).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{err}");
        // The same through merge keys, which used to expand before any limit applied.
        let mut doc = String::from("a: &a {k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x}\n");
        for i in 0..12 {
            let prev = if i == 0 { "a".to_string() } else { format!("l{}", i - 1) };
            let fields: Vec<String> = (0..8).map(|j| format!("m{j}: {{<<: *{prev}}}")).collect();
            doc.push_str(&format!("l{i}: &l{i} {{{}}}\n", fields.join(", ")));
        }
        let err = parse_bundle(doc.as_bytes(), Format::Yaml).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing_and_quickly() {
        for depth in [65, 100_000] {
            let doc = format!("roles: {}{}", "[".repeat(depth), "]".repeat(depth));
            let started = std::time::Instant::now();
            let err = parse_bundle(doc.as_bytes(), Format::Yaml).unwrap_err();
            // Our limit, or the event parser's own recursion limit when it reads ahead.
            assert!(
                err.message.contains("nested deeper than 64") || err.message.contains("recursion limit"),
                "{err}"
            );
            assert_eq!(err.line, Some(1));
            // Generous: the point is "not seconds", on any machine.
            assert!(started.elapsed() < std::time::Duration::from_secs(2), "{depth}");
        }
        let block: String = (0..70).map(|i| format!("{}- \n", "  ".repeat(i))).collect();
        let err = parse_bundle(format!("roles:\n{block}").as_bytes(), Format::Yaml).unwrap_err();
        assert!(err.message.contains("nested deeper"), "{err}");
        // Modest nesting and a few aliases, as authors write them, still parse.
        let ok =
            "resource_types: &types [{name: note, actions: [read]}]\nroles: [{name: r, permissions: {note: [read]}}]\n";
        parse_bundle(ok.as_bytes(), Format::Yaml).unwrap();
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_bundle(&bytes, Format::Yaml);
            let _ = parse_bundle(&bytes, Format::Json);
        }

        #[test]
        fn mutated_bundles_never_panic(cut in 0usize..400, byte in any::<u8>()) {
            let mut doc = include_bytes!("../../examples/clinic-portal.yaml").to_vec();
            let at = cut.min(doc.len().saturating_sub(1));
            doc[at] = byte;
            let _ = parse_bundle(&doc, Format::Yaml);
        }
    }
}
