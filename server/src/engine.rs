//! The live state of a server: the current snapshot behind an atomic pointer (readers never
//! lock), the overlay of urgent changes, and the single writer path that validates,
//! compiles, persists and only then swaps.

use crate::clock::Clock;
use crate::store::{Corrupt, Store, VersionMeta, content_hash};
use arc_swap::{ArcSwap, ArcSwapOption};
use portcullis_policy::{
    CompileError, Format, Overlay, ParseError, Scope, Snapshot, TemporaryGrant, Timestamp, compile, parse_bundle,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A compiled snapshot with its provenance.
#[derive(Debug)]
pub struct Live {
    /// The compiled policy.
    pub snapshot: Snapshot,
    /// Version, author, hash.
    pub meta: VersionMeta,
}

/// Why a revocation was made (R6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Stated reason.
    pub reason: String,
    /// Who revoked.
    pub author: String,
    /// When (Unix seconds).
    pub at: i64,
}

/// The persisted form of the overlay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverlayState {
    /// Revoked principals, until explicitly reinstated.
    pub revoked: BTreeMap<String, Revocation>,
    /// Temporary grants, until they expire.
    pub temporary: Vec<TemporaryGrant>,
    /// Sequence for temporary grant ids.
    pub next_id: u64,
}

impl OverlayState {
    fn overlay(&self) -> Overlay {
        let mut o = Overlay::default();
        o.revoked.extend(self.revoked.keys().cloned());
        for g in &self.temporary {
            o.temporary.entry(g.principal.clone()).or_default().push(g.clone());
        }
        o
    }
}

/// What a write can fail with. Mapped to gRPC status codes in `status.rs`.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The bundle could not be read.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The bundle is invalid or failed its self-check.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// Compare-and-swap failed.
    #[error("expected live version {expected}, but version {live} is live")]
    Conflict {
        /// What the caller expected.
        expected: u64,
        /// What is live.
        live: u64,
    },
    /// Rollback to a version that is not stored or does not verify.
    #[error("version {0} cannot be restored: {1}")]
    UnknownVersion(u64, String),
    /// A request field is missing or malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No snapshot is loaded yet.
    #[error("no policy snapshot is loaded")]
    NotServing,
    /// Disk or task failure.
    #[error("storage failure: {0}")]
    Io(#[from] std::io::Error),
}

/// Longest temporary grant (R11) the admin API accepts: one year.
pub const MAX_TEMPORARY_TTL_SECS: u64 = 366 * 86_400;

/// The server's policy state.
#[derive(Debug)]
pub struct Engine {
    live: ArcSwapOption<Live>,
    overlay: ArcSwap<Overlay>,
    /// Serializes every write; holds the persisted overlay.
    writer: tokio::sync::Mutex<OverlayState>,
    store: Store,
    /// The live version, for whoever waits on changes (health reporting).
    version_tx: tokio::sync::watch::Sender<u64>,
    /// The server's time: push times, revocation times, temporary grant expiries.
    clock: Clock,
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Yaml => "yaml",
        Format::Json => "json",
    }
}

fn parse_format(name: &str) -> Format {
    if name == "json" { Format::Json } else { Format::Yaml }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Io(std::io::Error::other(e)))
}

impl Engine {
    /// Loads the newest version that verifies and compiles, and the overlay.
    /// Returns the problems met on the way (corrupt or unusable files), which were skipped.
    pub fn open(store: Store, clock: Clock) -> std::io::Result<(Engine, Vec<Corrupt>)> {
        let mut problems = Vec::new();
        let mut live = None;
        for v in store.version_numbers()?.into_iter().rev() {
            let loaded = store.read_version(v).and_then(|(meta, bytes)| {
                let corrupt = |why: String| Corrupt {
                    path: format!("version {v}"),
                    why,
                };
                let bundle = parse_bundle(&bytes, parse_format(&meta.format)).map_err(|e| corrupt(e.to_string()))?;
                let snapshot = compile(&bundle, v).map_err(|e| corrupt(e.to_string()))?;
                Ok(Live { snapshot, meta })
            });
            match loaded {
                Ok(l) => {
                    live = Some(Arc::new(l));
                    break;
                }
                Err(c) => problems.push(c),
            }
        }
        let overlay_state: OverlayState = store.read_overlay()?.unwrap_or_default();
        let version = live.as_ref().map_or(0, |l| l.meta.version);
        let engine = Engine {
            version_tx: tokio::sync::watch::Sender::new(version),
            live: ArcSwapOption::new(live),
            overlay: ArcSwap::from_pointee(overlay_state.overlay()),
            writer: tokio::sync::Mutex::new(overlay_state),
            store,
            clock,
        };
        Ok((engine, problems))
    }

    /// The live snapshot, if any. Lock-free.
    #[inline]
    pub fn live(&self) -> Option<Arc<Live>> {
        self.live.load_full()
    }

    /// The overlay every check applies. Lock-free.
    #[inline]
    pub fn overlay_full(&self) -> Arc<Overlay> {
        self.overlay.load_full()
    }

    /// The live version, 0 when none.
    pub fn version(&self) -> u64 {
        self.live.load().as_ref().map_or(0, |l| l.meta.version)
    }

    /// Notified with the live version after every swap.
    pub fn watch_version(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version_tx.subscribe()
    }

    /// The server's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The store behind the engine.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Parses, validates, compiles (off the async threads), persists, then swaps.
    pub async fn push(&self, push: Push) -> Result<VersionMeta, EngineError> {
        let _writer = self.writer.lock().await;
        let parent = self.version();
        if let Some(expected) = push.expected_parent
            && expected != parent
        {
            return Err(EngineError::Conflict { expected, live: parent });
        }
        let store = self.store.clone();
        let pushed_at = self.clock.now().0;
        let (meta, snapshot) = blocking(move || -> Result<(VersionMeta, Snapshot), EngineError> {
            let bundle = parse_bundle(&push.bundle, push.format)?;
            let version = store.next_version()?;
            let snapshot = compile(&bundle, version)?;
            let meta = VersionMeta {
                version,
                parent,
                author: push.author,
                pushed_at,
                format: format_name(push.format).to_owned(),
                content_hash: content_hash(&push.bundle),
                message: push.message,
                rollback_of: push.rollback_of,
                length: push.bundle.len() as u64,
            };
            store.write_version(&meta, &push.bundle)?;
            Ok((meta, snapshot))
        })
        .await??;
        self.live.store(Some(Arc::new(Live {
            snapshot,
            meta: meta.clone(),
        })));
        self.version_tx.send_replace(meta.version);
        Ok(meta)
    }

    /// Pushes the content of an earlier version as a new version (A4).
    pub async fn rollback(
        &self,
        version: u64,
        author: String,
        expected_parent: Option<u64>,
    ) -> Result<VersionMeta, EngineError> {
        let store = self.store.clone();
        let (meta, bytes) = blocking(move || store.read_version(version))
            .await?
            .map_err(|c| EngineError::UnknownVersion(version, c.why))?;
        self.push(Push {
            bundle: bytes,
            format: parse_format(&meta.format),
            author,
            expected_parent,
            message: format!("rollback to version {version}"),
            rollback_of: Some(version),
        })
        .await
    }

    /// Applies a change to the overlay: persisted durably, then made visible to checks.
    async fn change_overlay(
        &self,
        change: impl FnOnce(&mut OverlayState) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let mut state = self.writer.lock().await;
        let mut next = state.clone();
        change(&mut next)?;
        let now = self.clock.now();
        next.temporary.retain(|g| g.expires > now);
        let store = self.store.clone();
        let to_write = next.clone();
        blocking(move || store.write_overlay(&to_write)).await??;
        self.overlay.store(Arc::new(next.overlay()));
        *state = next;
        Ok(())
    }

    /// R6: denies `principal` from the next check on, until reinstated.
    pub async fn revoke(&self, principal: String, reason: String, author: String) -> Result<u64, EngineError> {
        if principal.is_empty() {
            return Err(EngineError::BadRequest("`principal` is required".into()));
        }
        let at = self.clock.now().0;
        self.change_overlay(|s| {
            s.revoked.insert(principal, Revocation { reason, author, at });
            Ok(())
        })
        .await?;
        Ok(self.version())
    }

    /// Lifts a revocation.
    pub async fn reinstate(&self, principal: String) -> Result<u64, EngineError> {
        self.change_overlay(|s| match s.revoked.remove(&principal) {
            Some(_) => Ok(()),
            None => Err(EngineError::BadRequest(format!("`{principal}` is not revoked"))),
        })
        .await?;
        Ok(self.version())
    }

    /// R11: adds a grant expiring after `ttl` (the snapshot's default when `None`).
    pub async fn grant_temporary(
        &self,
        principal: String,
        role: String,
        scope: Scope,
        ttl_seconds: Option<u64>,
    ) -> Result<TemporaryGrant, EngineError> {
        let live = self.live().ok_or(EngineError::NotServing)?;
        if !live.snapshot.has_principal(&principal) {
            return Err(EngineError::BadRequest(format!("unknown principal `{principal}`")));
        }
        if !live.snapshot.has_role(&role) {
            return Err(EngineError::BadRequest(format!("unknown role `{role}`")));
        }
        let ttl = match ttl_seconds {
            Some(0) => return Err(EngineError::BadRequest("`ttl_seconds` must be positive".into())),
            Some(s) if s > MAX_TEMPORARY_TTL_SECS => {
                return Err(EngineError::BadRequest(format!(
                    "`ttl_seconds` {s} exceeds the limit of {MAX_TEMPORARY_TTL_SECS} (one year); temporary access (R11) is meant to be short"
                )));
            }
            Some(s) => i64::try_from(s).unwrap_or(i64::MAX),
            None => live.snapshot.settings().temporary_default_ttl.0,
        };
        let now = self.clock.now();
        let mut granted = None;
        self.change_overlay(|s| {
            s.next_id += 1;
            let g = TemporaryGrant {
                id: format!("temporary-{}", s.next_id),
                principal,
                role,
                scope,
                not_before: None,
                expires: Timestamp(now.0.saturating_add(ttl)),
            };
            s.temporary.push(g.clone());
            granted = Some(g);
            Ok(())
        })
        .await?;
        granted.ok_or(EngineError::NotServing)
    }

    /// The overlay's persisted contents (revocations with reasons, temporary grants).
    pub async fn overlay_state(&self) -> OverlayState {
        self.writer.lock().await.clone()
    }
}

/// A bundle to make live.
#[derive(Debug)]
pub struct Push {
    /// Bundle bytes.
    pub bundle: Vec<u8>,
    /// Their format.
    pub format: Format,
    /// Who pushes.
    pub author: String,
    /// Compare-and-swap: the version the caller believes is live.
    pub expected_parent: Option<u64>,
    /// Change description.
    pub message: String,
    /// Set by rollbacks.
    pub rollback_of: Option<u64>,
}
