//! The embedded snapshot store: one file per version in a data directory, written to a
//! temporary name, fsynced, renamed, and the directory fsynced, so an acknowledged version
//! survives a crash at any moment. Each file carries a SHA-256 of its bundle; a file that
//! does not verify is reported and skipped, never half-loaded.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What is recorded with each version (A4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// Version number, increasing from 1.
    pub version: u64,
    /// The version that was live when this one was pushed (0 for none).
    pub parent: u64,
    /// Who pushed it.
    pub author: String,
    /// When (Unix seconds).
    pub pushed_at: i64,
    /// `yaml` or `json`.
    pub format: String,
    /// SHA-256 of the bundle bytes, hex.
    pub content_hash: String,
    /// Change description.
    pub message: String,
    /// The version this one restores, for rollbacks.
    pub rollback_of: Option<u64>,
    /// Length of the bundle bytes that follow the header.
    pub length: u64,
}

/// A stored version that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot file `{path}` is unusable: {why}")]
pub struct Corrupt {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub why: String,
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// SHA-256 of `bytes`, hex.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

const VERSIONS: &str = "versions";
const OVERLAY: &str = "overlay.json";

impl Store {
    /// Opens (creating if needed) a data directory.
    pub fn open(dir: &Path) -> io::Result<Store> {
        fs::create_dir_all(dir.join(VERSIONS))?;
        sync_dir(dir)?;
        Ok(Store { dir: dir.to_path_buf() })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn version_path(&self, version: u64) -> PathBuf {
        self.dir.join(VERSIONS).join(format!("{version:020}.snapshot"))
    }

    /// Version numbers of every file present, valid or not, ascending.
    pub fn version_numbers(&self) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.dir.join(VERSIONS))? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name.strip_suffix(".snapshot").and_then(|n| n.parse().ok()) {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The number the next version gets: one past every file present, valid or not.
    pub fn next_version(&self) -> io::Result<u64> {
        Ok(self.version_numbers()?.last().map_or(1, |v| v + 1))
    }

    /// Writes a version durably. Returns only once the file and its directory entry are on disk.
    pub fn write_version(&self, meta: &VersionMeta, bundle: &[u8]) -> io::Result<()> {
        let mut contents = serde_json::to_vec(meta)?;
        contents.push(b'\n');
        contents.extend_from_slice(bundle);
        self.write_atomically(&self.version_path(meta.version), &contents)
    }

    /// Reads and verifies one version.
    pub fn read_version(&self, version: u64) -> Result<(VersionMeta, Vec<u8>), Corrupt> {
        let path = self.version_path(version);
        let corrupt = |why: String| Corrupt {
            path: path.display().to_string(),
            why,
        };
        let data = fs::read(&path).map_err(|e| corrupt(e.to_string()))?;
        let split = data
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| corrupt("no header line".into()))?;
        let (header, rest) = data.split_at(split);
        let body = rest.get(1..).unwrap_or_default();
        let meta: VersionMeta = serde_json::from_slice(header).map_err(|e| corrupt(format!("bad header: {e}")))?;
        if meta.version != version {
            return Err(corrupt(format!("header says version {}", meta.version)));
        }
        if body.len() as u64 != meta.length {
            return Err(corrupt(format!("truncated: {} of {} bytes", body.len(), meta.length)));
        }
        if content_hash(body) != meta.content_hash {
            return Err(corrupt("content hash does not match".into()));
        }
        Ok((meta, body.to_vec()))
    }

    /// Headers of every readable version, newest first, and the problems with the others.
    pub fn list(&self) -> io::Result<(Vec<VersionMeta>, Vec<Corrupt>)> {
        let mut metas = Vec::new();
        let mut corrupt = Vec::new();
        for v in self.version_numbers()?.into_iter().rev() {
            match self.read_version(v) {
                Ok((meta, _)) => metas.push(meta),
                Err(c) => corrupt.push(c),
            }
        }
        Ok((metas, corrupt))
    }

    /// The persisted overlay, if one was written.
    pub fn read_overlay<T: for<'de> Deserialize<'de>>(&self) -> io::Result<Option<T>> {
        match fs::read(self.dir.join(OVERLAY)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the overlay durably (before the change is acknowledged).
    pub fn write_overlay<T: Serialize>(&self, overlay: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(overlay)?;
        self.write_atomically(&self.dir.join(OVERLAY), &bytes)
    }

    /// Writes a file readable only by its owner, durably.
    pub fn write_private(&self, name: &str, contents: &[u8]) -> io::Result<PathBuf> {
        let path = self.dir.join(name);
        self.write_atomically(&path, contents)?;
        set_owner_only(&path)?;
        Ok(path)
    }

    /// temp file → write → fsync → rename → fsync directory.
    fn write_atomically(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        let dir = path.parent().unwrap_or(&self.dir);
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            std::process::id()
        ));
        {
            let mut f = File::create(&tmp)?;
            set_owner_only(&tmp)?;
            f.write_all(contents)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(unix)]
fn set_owner_only(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_owner_only(_path: &Path) -> io::Result<()> {
    Ok(())
}
