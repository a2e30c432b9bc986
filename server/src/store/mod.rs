//! Where snapshot versions and overlay changes are kept: the store of record behind one
//! trait, so the engine does not know which backend it talks to.
//!
//! - `file`: the embedded default, one data directory owned by one server.
//! - `postgres`: PostgreSQL, shared by a fleet of replicas; every commit issues `NOTIFY`.
//!
//! Both give versions increasing numbers with a compare-and-swap on the newest number the
//! writer has seen, and overlay changes a gap-free sequence, so a replica can replay
//! exactly what it missed.

mod file;
mod overlay;
pub mod postgres;

pub use file::{FileStore, write_private};
pub use overlay::{OverlayChange, OverlayState, Revocation};

use portcullis_policy::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

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
    /// Length of the bundle bytes.
    pub length: u64,
}

/// A stored version that could not be read or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot `{path}` is unusable: {why}")]
pub struct Corrupt {
    /// The file or row.
    pub path: String,
    /// What is wrong with it.
    pub why: String,
}

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer committed first: the caller's view of the newest number is stale.
    #[error("the store moved on: expected {kind} {expected}, found {found}")]
    Conflict {
        /// `version` or `overlay change`.
        kind: &'static str,
        /// The number the writer had seen.
        expected: u64,
        /// The number the store has.
        found: u64,
    },
    /// A version that is not stored.
    #[error("version {0} is not stored")]
    NotFound(u64),
    /// A version that is stored but does not verify.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// The store cannot be reached (PostgreSQL down, connection lost).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The database holds something this binary cannot use (schema too new, bad row).
    #[error("{0}")]
    Incompatible(String),
    /// Disk failure.
    #[error("storage failure: {0}")]
    Io(#[from] std::io::Error),
}

/// The store of record. Implementations are cheap to share (`Arc<dyn Store>`).
#[tonic::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Where it is, for logs (a path, or a URL without its password).
    fn describe(&self) -> String;
    /// Whether other replicas write to it too: then changes must be followed, and a
    /// replica cut off from it must bound how long it keeps deciding.
    fn shared(&self) -> bool;
    /// Signalled when another writer may have committed something (`NOTIFY`); `None`
    /// for a store nobody else writes.
    fn nudges(&self) -> Option<Arc<tokio::sync::Notify>>;
    /// The newest version number committed, valid or not; 0 when none.
    async fn head(&self) -> Result<u64, StoreError>;
    /// One version, verified against its SHA-256.
    async fn read_version(&self, version: u64) -> Result<(VersionMeta, Vec<u8>), StoreError>;
    /// Headers of every readable version, newest first, and the problems with the others.
    async fn list(&self) -> Result<(Vec<VersionMeta>, Vec<Corrupt>), StoreError>;
    /// Durably commits `bundle` as `meta.version`, which must be one past `seen_head`, the
    /// newest number the writer knows; `Conflict` when another writer got there first.
    async fn commit_version(&self, seen_head: u64, meta: &VersionMeta, bundle: Arc<Vec<u8>>) -> Result<(), StoreError>;
    /// The overlay as of the newest change.
    async fn overlay(&self) -> Result<OverlayState, StoreError>;
    /// Changes after `seq`, in order, with their sequence numbers.
    async fn changes_since(&self, seq: u64) -> Result<Vec<(u64, OverlayChange)>, StoreError>;
    /// Durably appends `change` as number `seen_seq + 1`; `Conflict` when another writer
    /// got there first.
    async fn append_change(&self, seen_seq: u64, change: &OverlayChange) -> Result<u64, StoreError>;
    /// R7: raises each principal's stored latest authentication to the one given, never
    /// lowering it, durably.
    async fn record_activity(&self, observed: &[(String, Timestamp)]) -> Result<(), StoreError>;
    /// R7: authentications recorded after `cursor` (0: all of them), and the cursor to
    /// pass next time.
    async fn activity_since(&self, cursor: u64) -> Result<(Vec<(String, Timestamp)>, u64), StoreError>;
}

/// SHA-256 of `bytes`, hex.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Opens the store a `--store` value names: a `postgres://` URL, else the data directory.
pub async fn open(url: Option<&str>, data_dir: &std::path::Path) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        Some(url) => Ok(Arc::new(postgres::PgStore::connect(url).await?)),
        None => {
            let dir = data_dir.to_path_buf();
            let store = tokio::task::spawn_blocking(move || FileStore::open(&dir))
                .await
                .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
            Ok(Arc::new(store))
        }
    }
}
