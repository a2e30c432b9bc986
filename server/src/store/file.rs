//! The embedded store: one file per version in a data directory, written to a temporary
//! name, fsynced, renamed, and the directory fsynced, so an acknowledged version survives a
//! crash at any moment. Each file carries a SHA-256 of its bundle; a file that does not
//! verify is reported and skipped, never half-loaded. The overlay is one file holding its
//! fold, rewritten the same way on every change; observed activity (R7) is one more file,
//! rewritten on each batch. One server owns the directory.

use super::{Corrupt, OverlayChange, OverlayState, Store, StoreError, VersionMeta, content_hash};
use crate::low_priority::LowPriorityThread;
use portcullis_policy::Timestamp;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The data directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    /// The overlay as persisted; held so a change can be folded and rewritten.
    overlay: Arc<Mutex<OverlayState>>,
    /// Latest observed authentication per principal (R7), as persisted.
    activity: Arc<Mutex<BTreeMap<String, Timestamp>>>,
    /// Where versions are written: a large one's copy into the page cache and fsync
    /// must not hold a core the checks need (overlay and activity files are small and
    /// a revocation's must not wait behind checks, so they stay on tokio's threads).
    versions: Arc<LowPriorityThread>,
}

const VERSIONS: &str = "versions";
const OVERLAY: &str = "overlay.json";
const ACTIVITY: &str = "activity.json";

/// A JSON file of the data directory, or `T::default()` when there is none yet.
fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> io::Result<T> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::other(format!("`{}` is unreadable: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e),
    }
}

impl FileStore {
    /// Opens (creating if needed) a data directory.
    pub fn open(dir: &Path) -> io::Result<FileStore> {
        fs::create_dir_all(dir.join(VERSIONS))?;
        sync_dir(dir)?;
        Ok(FileStore {
            dir: dir.to_path_buf(),
            overlay: Arc::new(Mutex::new(read_json(&dir.join(OVERLAY))?)),
            activity: Arc::new(Mutex::new(read_json(&dir.join(ACTIVITY))?)),
            versions: Arc::new(LowPriorityThread::start("store-versions")?),
        })
    }

    fn version_path(&self, version: u64) -> PathBuf {
        self.dir.join(VERSIONS).join(format!("{version:020}.snapshot"))
    }

    /// Version numbers of every file present, valid or not, ascending.
    fn version_numbers(&self) -> io::Result<Vec<u64>> {
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

    /// The newest number present, valid or not.
    fn newest(&self) -> io::Result<u64> {
        Ok(self.version_numbers()?.last().copied().unwrap_or(0))
    }

    /// Writes a version durably. Returns only once the file and its directory entry are on disk.
    fn write_version(&self, meta: &VersionMeta, bundle: &[u8]) -> io::Result<()> {
        let mut contents = serde_json::to_vec(meta)?;
        contents.push(b'\n');
        contents.extend_from_slice(bundle);
        write_atomically(&self.version_path(meta.version), &contents)
    }

    /// Reads and verifies one version.
    fn read_version_sync(&self, version: u64) -> Result<(VersionMeta, Vec<u8>), Corrupt> {
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
    fn list_sync(&self) -> io::Result<(Vec<VersionMeta>, Vec<Corrupt>)> {
        let mut metas = Vec::new();
        let mut corrupt = Vec::new();
        for v in self.version_numbers()?.into_iter().rev() {
            match self.read_version_sync(v) {
                Ok((meta, _)) => metas.push(meta),
                Err(c) => corrupt.push(c),
            }
        }
        Ok((metas, corrupt))
    }
}

/// Writes a file readable only by its owner, durably (the generated admin token).
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomically(path, contents)?;
    set_owner_only(path)
}

/// temp file → write → fsync → rename → fsync directory.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        set_owner_only(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // A full disk must not also leave a half-written file behind.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
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

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io(io::Error::other(e)))?
}

#[tonic::async_trait]
impl Store for FileStore {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn shared(&self) -> bool {
        false
    }

    fn nudges(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let me = self.clone();
        blocking(move || Ok(me.newest()?)).await
    }

    async fn read_version(&self, version: u64) -> Result<(VersionMeta, Vec<u8>), StoreError> {
        let me = self.clone();
        blocking(move || {
            if !me.version_path(version).exists() {
                return Err(StoreError::NotFound(version));
            }
            Ok(me.read_version_sync(version)?)
        })
        .await
    }

    async fn list(&self) -> Result<(Vec<VersionMeta>, Vec<Corrupt>), StoreError> {
        let me = self.clone();
        blocking(move || Ok(me.list_sync()?)).await
    }

    async fn commit_version(&self, seen_head: u64, meta: &VersionMeta, bundle: Arc<Vec<u8>>) -> Result<(), StoreError> {
        let (me, meta) = (self.clone(), meta.clone());
        self.versions
            .run(move || {
                let found = me.newest()?;
                if found != seen_head || meta.version != seen_head + 1 {
                    return Err(StoreError::Conflict {
                        kind: "version",
                        expected: seen_head,
                        found,
                    });
                }
                Ok(me.write_version(&meta, &bundle)?)
            })
            .await?
    }

    async fn overlay(&self) -> Result<OverlayState, StoreError> {
        Ok(self.overlay.lock().map_err(|_| poisoned())?.clone())
    }

    async fn changes_since(&self, seq: u64) -> Result<Vec<(u64, OverlayChange)>, StoreError> {
        // The directory has one writer, the server that owns it, so it is never behind.
        let found = self.overlay.lock().map_err(|_| poisoned())?.seq;
        if found == seq {
            Ok(Vec::new())
        } else {
            Err(StoreError::Conflict {
                kind: "overlay change",
                expected: seq,
                found,
            })
        }
    }

    async fn append_change(&self, seen_seq: u64, change: &OverlayChange) -> Result<u64, StoreError> {
        let (me, change) = (self.clone(), change.clone());
        blocking(move || {
            let mut state = me.overlay.lock().map_err(|_| poisoned())?;
            if state.seq != seen_seq {
                return Err(StoreError::Conflict {
                    kind: "overlay change",
                    expected: seen_seq,
                    found: state.seq,
                });
            }
            let mut next = state.clone();
            next.apply(seen_seq + 1, &change, Timestamp(change.provenance().at));
            let bytes = serde_json::to_vec_pretty(&next).map_err(io::Error::other)?;
            write_atomically(&me.dir.join(OVERLAY), &bytes)?;
            *state = next;
            Ok(seen_seq + 1)
        })
        .await
    }

    async fn record_activity(&self, observed: &[(String, Timestamp)]) -> Result<(), StoreError> {
        let (me, observed) = (self.clone(), observed.to_vec());
        blocking(move || {
            let mut stored = me.activity.lock().map_err(|_| poisoned())?;
            let mut next = stored.clone();
            for (principal, at) in observed {
                let t = next.entry(principal).or_insert(at);
                *t = (*t).max(at);
            }
            let bytes = serde_json::to_vec(&next).map_err(io::Error::other)?;
            write_atomically(&me.dir.join(ACTIVITY), &bytes)?;
            *stored = next;
            Ok(())
        })
        .await
    }

    async fn activity_since(&self, cursor: u64) -> Result<(Vec<(String, Timestamp)>, u64), StoreError> {
        // Only this server writes here: after the first read there is nothing new.
        if cursor > 0 {
            return Ok((Vec::new(), cursor));
        }
        let stored = self.activity.lock().map_err(|_| poisoned())?;
        Ok((stored.iter().map(|(p, t)| (p.clone(), *t)).collect(), 1))
    }
}

fn poisoned() -> StoreError {
    StoreError::Io(io::Error::other("store lock poisoned by an earlier failure"))
}
