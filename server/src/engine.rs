//! The live state of a server: the current snapshot behind an atomic pointer (readers never
//! lock), the overlay of urgent changes, and the single writer path that validates,
//! compiles, commits to the store and only then swaps. Catching up with changes other
//! replicas committed goes through the same path, so versions and overlay changes are
//! applied in store order, once each.

use crate::clock::Clock;
use crate::low_priority::LowPriorityThread;
use crate::store::{Corrupt, OverlayChange, OverlayState, Revocation, Store, StoreError, VersionMeta, content_hash};
use arc_swap::{ArcSwap, ArcSwapOption};
use portcullis_policy::{
    Activity, CompileError, CompileOptions, Format, Overlay, Scope, Snapshot, TemporaryGrant, Timestamp, compile_source,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A compiled snapshot with its provenance.
#[derive(Debug)]
pub struct Live {
    /// The compiled policy.
    pub snapshot: Snapshot,
    /// Version, author, hash.
    pub meta: VersionMeta,
}

/// What a write can fail with. Mapped to gRPC status codes in `status.rs`.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The bundle could not be read, is invalid or failed its self-check.
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
    /// The store failed or could not be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Longest temporary grant (R11) the admin API accepts: one year.
pub const MAX_TEMPORARY_TTL_SECS: u64 = 366 * 86_400;

/// How often a write retries after losing a race to another replica.
const WRITE_ATTEMPTS: usize = 5;

/// What the engine has taken from the store so far. Guarded by the writer mutex.
#[derive(Debug, Default)]
struct Seen {
    /// Newest version number processed (loaded, superseded or skipped).
    head: u64,
    /// The overlay as of its last applied change.
    overlay: OverlayState,
}

/// How recently the engine heard from a shared store (R6: a replica cut off from
/// revocations must stop deciding after a bound).
#[derive(Debug)]
struct Freshness {
    started: Instant,
    /// Milliseconds after `started` of the last successful catch-up.
    synced_ms: AtomicU64,
    /// 0: never stale.
    max_staleness_ms: u64,
}

impl Freshness {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The server's policy state.
#[derive(Debug)]
pub struct Engine {
    live: ArcSwapOption<Live>,
    overlay: ArcSwap<Overlay>,
    /// Serializes every write and catch-up; holds what was taken from the store.
    writer: tokio::sync::Mutex<Seen>,
    store: Arc<dyn Store>,
    /// The live version, for whoever waits on changes (health, read-your-writes).
    version_tx: tokio::sync::watch::Sender<u64>,
    /// The overlay sequence applied, for read-your-writes on overlay changes.
    overlay_seq_tx: tokio::sync::watch::Sender<u64>,
    /// The server's time: push times, revocation times, temporary grant expiries.
    clock: Clock,
    freshness: Freshness,
    /// Versions refused because they did not verify or compile.
    skipped: AtomicU64,
    /// Where parsing and compiling happen (one thread, low priority).
    compiler: LowPriorityThread,
    /// R7: latest observed authentication per principal, shared by every overlay published.
    activity: Activity,
    /// Observations not yet written to the store.
    unsynced: std::sync::Mutex<HashMap<String, Timestamp>>,
    /// Where reading the store's activity left off; also serializes activity syncs.
    activity_cursor: tokio::sync::Mutex<u64>,
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

/// Sets its flag when dropped: the future awaiting a compile was dropped or finished.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Engine {
    /// Loads the newest version that verifies and compiles, and the overlay; versions that
    /// do not verify or compile are logged and skipped. `max_staleness` bounds how long a replica of a shared store decides without hearing
    /// from it (zero: no bound).
    pub async fn open(store: Arc<dyn Store>, clock: Clock, max_staleness: Duration) -> Result<Engine, EngineError> {
        let overlay = store.overlay().await?;
        let activity = Activity::default();
        let engine = Engine {
            live: ArcSwapOption::empty(),
            overlay: ArcSwap::from_pointee(overlay.overlay(&activity)),
            overlay_seq_tx: tokio::sync::watch::Sender::new(overlay.seq),
            writer: tokio::sync::Mutex::new(Seen { head: 0, overlay }),
            version_tx: tokio::sync::watch::Sender::new(0),
            store,
            clock,
            freshness: Freshness {
                started: Instant::now(),
                synced_ms: AtomicU64::new(0),
                max_staleness_ms: u64::try_from(max_staleness.as_millis()).unwrap_or(u64::MAX),
            },
            skipped: AtomicU64::new(0),
            compiler: LowPriorityThread::start("compile").map_err(StoreError::Io)?,
            activity,
            unsynced: std::sync::Mutex::default(),
            activity_cursor: tokio::sync::Mutex::new(0),
        };
        engine.catch_up().await?;
        engine.sync_activity().await?;
        Ok(engine)
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

    /// The number of the last overlay change applied. Lock-free.
    pub fn overlay_seq(&self) -> u64 {
        self.overlay.load().seq
    }

    /// Notified with the live version after every swap.
    pub fn watch_version(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version_tx.subscribe()
    }

    /// Notified with the overlay sequence after every change applied.
    pub fn watch_overlay_seq(&self) -> tokio::sync::watch::Receiver<u64> {
        self.overlay_seq_tx.subscribe()
    }

    /// The server's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The store behind the engine.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Versions skipped so far because they did not verify or compile.
    pub fn skipped_versions(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Whether this replica has gone longer than `max_staleness` without hearing from its
    /// shared store: it may have missed a revocation, so it must not decide (R6).
    #[inline]
    pub fn is_stale(&self) -> bool {
        let f = &self.freshness;
        self.store.shared()
            && f.max_staleness_ms > 0
            && f.now_ms().saturating_sub(f.synced_ms.load(Ordering::Relaxed)) > f.max_staleness_ms
    }

    /// Milliseconds since the store was last heard from.
    pub fn since_sync_ms(&self) -> u64 {
        let f = &self.freshness;
        f.now_ms().saturating_sub(f.synced_ms.load(Ordering::Relaxed))
    }

    /// Applies whatever the store holds that this engine has not seen: the newest version
    /// that verifies and compiles becomes live, and overlay changes are applied in order.
    /// Versions skipped as unusable are logged and counted.
    pub async fn catch_up(&self) -> Result<(), EngineError> {
        let mut seen = self.writer.lock().await;
        self.catch_up_locked(&mut seen).await
    }

    async fn catch_up_locked(&self, seen: &mut Seen) -> Result<(), EngineError> {
        let head = self.store.head().await?;
        let mut problems = Vec::new();
        let live_version = self.version();
        // Newest first: the first version that loads wins; older ones are superseded.
        let mut v = head;
        while v > seen.head && v > live_version {
            match self.load(v).await {
                Ok(live) => {
                    self.swap(live);
                    break;
                }
                Err(EngineError::Store(StoreError::Corrupt(c))) => problems.push(c),
                Err(EngineError::Compile(e)) => problems.push(unusable(v, e.to_string())),
                Err(e) => return Err(e),
            }
            v -= 1;
        }
        self.skipped.fetch_add(problems.len() as u64, Ordering::Relaxed);
        for p in problems {
            tracing::error!(store = %self.store.describe(), "{p}; skipped, serving version {}", self.version());
        }
        seen.head = seen.head.max(head);

        let changes = self.store.changes_since(seen.overlay.seq).await?;
        if !changes.is_empty() {
            let now = self.clock.now();
            for (seq, change) in &changes {
                if *seq != seen.overlay.seq + 1 {
                    return Err(StoreError::Incompatible(format!(
                        "overlay change {seq} follows {}: the log has a gap",
                        seen.overlay.seq
                    ))
                    .into());
                }
                seen.overlay.apply(*seq, change, now);
            }
            self.publish_overlay(&seen.overlay);
        }
        self.freshness
            .synced_ms
            .store(self.freshness.now_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Parses and compiles `bytes` on the compile thread. When the caller stops waiting
    /// (its deadline passed, the client went away, the server is stopping) the work stops
    /// at its next check point instead of running on.
    async fn compile(&self, bytes: Arc<Vec<u8>>, format: Format, version: u64) -> Result<Snapshot, EngineError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(cancel.clone());
        let options = CompileOptions {
            cancel: Some(cancel),
            ..CompileOptions::default()
        };
        self.off_thread(move || -> Result<Snapshot, EngineError> {
            Ok(compile_source(&bytes, format, version, options)?)
        })
        .await?
    }

    /// Runs `f` on the compile thread: work an async thread would stop serving checks for.
    async fn off_thread<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, EngineError> {
        self.compiler.run(f).await.map_err(|e| EngineError::Store(e.into()))
    }

    /// Whether a push of `bytes` would be accepted: the same parse, validation, compile
    /// and self-check, with nothing stored.
    pub async fn check_bundle(&self, bytes: Vec<u8>, format: Format) -> Result<Snapshot, EngineError> {
        self.compile(Arc::new(bytes), format, 0).await
    }

    /// Reads, verifies and compiles one stored version (off the async threads).
    async fn load(&self, version: u64) -> Result<Live, EngineError> {
        let (meta, bytes) = self.store.read_version(version).await?;
        let snapshot = self
            .compile(Arc::new(bytes), parse_format(&meta.format), version)
            .await?;
        Ok(Live { snapshot, meta })
    }

    fn swap(&self, live: Live) {
        let version = live.meta.version;
        self.live.store(Some(Arc::new(live)));
        self.version_tx.send_replace(version);
    }

    fn publish_overlay(&self, state: &OverlayState) {
        self.overlay.store(Arc::new(state.overlay(&self.activity)));
        self.overlay_seq_tx.send_replace(state.seq);
    }

    /// R7: records that `principal` authenticated at `at` (an allowed check proved it);
    /// shared with the store at the next `sync_activity`. Takes no lock unless `at` is
    /// newer than what is known, which happens once per session.
    pub fn observe_activity(&self, principal: &str, at: Timestamp) {
        if self.activity.observe(principal, at)
            && let Ok(mut unsynced) = self.unsynced.lock()
        {
            let t = unsynced.entry(principal.to_owned()).or_insert(at);
            *t = (*t).max(at);
        }
    }

    /// Principals with an observed authentication.
    pub fn observed_activity(&self) -> &Activity {
        &self.activity
    }

    /// Writes the observations made since the last sync to the store in one batch, then
    /// takes in what other replicas recorded. Observations leave the pending set only once
    /// the store has them, so a failed or cancelled sync loses nothing.
    pub async fn sync_activity(&self) -> Result<(), EngineError> {
        let mut cursor = self.activity_cursor.lock().await;
        let batch: Vec<(String, Timestamp)> = self
            .unsynced
            .lock()
            .map(|u| u.iter().map(|(p, t)| (p.clone(), *t)).collect())
            .unwrap_or_default();
        if !batch.is_empty() {
            self.store.record_activity(&batch).await?;
            if let Ok(mut unsynced) = self.unsynced.lock() {
                for (p, at) in &batch {
                    if unsynced.get(p).is_some_and(|t| t <= at) {
                        unsynced.remove(p);
                    }
                }
            }
        }
        let (seen, next) = self.store.activity_since(*cursor).await?;
        for (p, at) in seen {
            self.activity.observe(&p, at);
        }
        *cursor = next;
        Ok(())
    }

    /// Observations not yet written to the store.
    pub fn unsynced_activity(&self) -> usize {
        self.unsynced.lock().map_or(0, |u| u.len())
    }

    /// Parses, validates, compiles (off the async threads), commits, then swaps. When
    /// another replica commits first, catches up and tries again, unless the caller
    /// asked for a compare-and-swap on the version that is no longer live.
    pub async fn push(&self, push: Push) -> Result<VersionMeta, EngineError> {
        let mut seen = self.writer.lock().await;
        let mut attempts = 0;
        // Shared, not copied, by the compiler, the hash and the store.
        let bundle = Arc::new(push.bundle);
        let hash = {
            let bundle = bundle.clone();
            self.off_thread(move || content_hash(&bundle)).await?
        };
        loop {
            let parent = self.version();
            if let Some(expected) = push.expected_parent
                && expected != parent
            {
                return Err(EngineError::Conflict { expected, live: parent });
            }
            let version = seen.head + 1;
            let pushed_at = self.clock.now().0;
            let snapshot = self.compile(bundle.clone(), push.format, version).await?;
            let meta = VersionMeta {
                version,
                parent,
                author: push.author.clone(),
                pushed_at,
                format: format_name(push.format).to_owned(),
                content_hash: hash.clone(),
                message: push.message.clone(),
                rollback_of: push.rollback_of,
                length: bundle.len() as u64,
            };
            match self.store.commit_version(seen.head, &meta, bundle.clone()).await {
                Ok(()) => {
                    seen.head = version;
                    self.swap(Live {
                        snapshot,
                        meta: meta.clone(),
                    });
                    return Ok(meta);
                }
                Err(StoreError::Conflict { .. }) if attempts < WRITE_ATTEMPTS => {
                    attempts += 1;
                    self.catch_up_locked(&mut seen).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Pushes the content of an earlier version as a new version (A4).
    pub async fn rollback(
        &self,
        version: u64,
        author: String,
        expected_parent: Option<u64>,
    ) -> Result<VersionMeta, EngineError> {
        let (meta, bytes) = match self.store.read_version(version).await {
            Ok(found) => found,
            Err(StoreError::NotFound(_)) => {
                return Err(EngineError::UnknownVersion(version, "it is not stored".into()));
            }
            Err(StoreError::Corrupt(c)) => return Err(EngineError::UnknownVersion(version, c.why)),
            Err(e) => return Err(e.into()),
        };
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

    /// Commits an overlay change made from the current overlay, then applies it. Returns
    /// its sequence number. Retries on top of changes other replicas committed first.
    async fn change_overlay(
        &self,
        make: impl Fn(&OverlayState) -> Result<OverlayChange, EngineError>,
    ) -> Result<(u64, OverlayState), EngineError> {
        let mut seen = self.writer.lock().await;
        let mut attempts = 0;
        loop {
            let change = make(&seen.overlay)?;
            match self.store.append_change(seen.overlay.seq, &change).await {
                Ok(seq) => {
                    seen.overlay.apply(seq, &change, self.clock.now());
                    self.publish_overlay(&seen.overlay);
                    return Ok((seq, seen.overlay.clone()));
                }
                Err(StoreError::Conflict { .. }) if attempts < WRITE_ATTEMPTS => {
                    attempts += 1;
                    self.catch_up_locked(&mut seen).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn provenance(&self, reason: &str, author: &str) -> Revocation {
        Revocation {
            reason: reason.to_owned(),
            author: author.to_owned(),
            at: self.clock.now().0,
        }
    }

    /// R6: denies `principal` from the next check on, until reinstated. Returns the live
    /// version and the change's sequence number.
    pub async fn revoke(&self, principal: String, reason: String, author: String) -> Result<(u64, u64), EngineError> {
        if principal.is_empty() {
            return Err(EngineError::BadRequest("`principal` is required".into()));
        }
        let revocation = self.provenance(&reason, &author);
        let (seq, _) = self
            .change_overlay(|_| {
                Ok(OverlayChange::Revoke {
                    principal: principal.clone(),
                    revocation: revocation.clone(),
                })
            })
            .await?;
        Ok((self.version(), seq))
    }

    /// Lifts a revocation. Returns the live version and the change's sequence number.
    pub async fn reinstate(
        &self,
        principal: String,
        reason: String,
        author: String,
    ) -> Result<(u64, u64), EngineError> {
        let revocation = self.provenance(&reason, &author);
        let (seq, _) = self
            .change_overlay(|state| {
                if !state.revoked.contains_key(&principal) {
                    return Err(EngineError::BadRequest(format!("`{principal}` is not revoked")));
                }
                Ok(OverlayChange::Reinstate {
                    principal: principal.clone(),
                    revocation: revocation.clone(),
                })
            })
            .await?;
        Ok((self.version(), seq))
    }

    /// R11: adds a grant expiring after `ttl` (the snapshot's default when `None`).
    pub async fn grant_temporary(&self, grant: TemporaryRequest) -> Result<(TemporaryGrant, u64), EngineError> {
        let live = self.live().ok_or(EngineError::NotServing)?;
        if !live.snapshot.has_principal(&grant.principal) {
            return Err(EngineError::BadRequest(format!(
                "unknown principal `{}`",
                grant.principal
            )));
        }
        if !live.snapshot.has_role(&grant.role) {
            return Err(EngineError::BadRequest(format!("unknown role `{}`", grant.role)));
        }
        let ttl = match grant.ttl_seconds {
            Some(s) if s > MAX_TEMPORARY_TTL_SECS => {
                return Err(EngineError::BadRequest(format!(
                    "`ttl_seconds` {s} exceeds the limit of {MAX_TEMPORARY_TTL_SECS} (one year); temporary access (R11) is meant to be short"
                )));
            }
            Some(s) => i64::try_from(s).unwrap_or(i64::MAX),
            None => live.snapshot.settings().temporary_default_ttl.0,
        };
        let revocation = self.provenance(&grant.reason, &grant.author);
        let expires = Timestamp(revocation.at.saturating_add(ttl));
        let (seq, state) = self
            .change_overlay(|_| {
                Ok(OverlayChange::Grant {
                    principal: grant.principal.clone(),
                    role: grant.role.clone(),
                    scope: grant.scope.clone(),
                    expires,
                    revocation: revocation.clone(),
                })
            })
            .await?;
        let id = format!("temporary-{seq}");
        let granted = state
            .temporary
            .into_iter()
            .find(|g| g.id == id)
            .ok_or_else(|| EngineError::BadRequest(format!("the grant expired at once (expires {expires})")))?;
        Ok((granted, seq))
    }

    /// The overlay's contents (revocations with reasons, temporary grants).
    pub async fn overlay_state(&self) -> OverlayState {
        self.writer.lock().await.overlay.clone()
    }
}

fn unusable(version: u64, why: String) -> Corrupt {
    Corrupt {
        path: format!("version {version}"),
        why,
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

/// A temporary grant to add (R11).
#[derive(Debug)]
pub struct TemporaryRequest {
    /// Grantee.
    pub principal: String,
    /// Role name.
    pub role: String,
    /// What it reaches.
    pub scope: Scope,
    /// Lifetime; the snapshot's default when `None`.
    pub ttl_seconds: Option<u64>,
    /// Why (ticket, incident).
    pub reason: String,
    /// Who grants.
    pub author: String,
}
