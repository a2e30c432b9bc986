//! Reading bundles and test files from untrusted bytes. Never panics; errors say where.

use crate::bundle::{Bundle, PolicyTestFile};
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

fn parse<T: DeserializeOwned>(bytes: &[u8], format: Format) -> Result<T, ParseError> {
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

/// Reads a bundle. Structure only: call [`crate::validate`] for the policy's own rules.
pub fn parse_bundle(bytes: &[u8], format: Format) -> Result<Bundle, ParseError> {
    parse(bytes, format)
}

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
        assert!(parse_bundle(doc.as_bytes(), Format::Yaml).is_err());
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
