//! Reading bundles and test files from disk, with the file name in every error.

use anyhow::{Context, Result};
use portcullis_policy::{Bundle, Format, PolicyTestFile, parse_tests};
use std::path::Path;

/// Reads and parses a bundle (`.json` is JSON, anything else YAML). Structure only; not validated.
/// A JSON bundle is parsed as it is read, never held whole.
pub fn read_bundle(path: &Path) -> Result<Bundle> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    portcullis_policy::read_bundle(file, format_of(path)).with_context(|| format!("`{}`", path.display()))
}

/// Reads a policy test file.
pub fn read_tests(path: &Path) -> Result<PolicyTestFile> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    parse_tests(&bytes, format_of(path)).with_context(|| format!("`{}`", path.display()))
}

/// The format a file name implies.
pub fn format_of(path: &Path) -> Format {
    Format::from_path(&path.to_string_lossy())
}
