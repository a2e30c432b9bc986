//! The audit trail (A1): records go through a bounded queue to a sink thread, so the check
//! path never waits on disk unless the policy says it must (`audit_on_backpressure`).
//! Decisions travel as compact [`Deferred`] records; their text, JSON and hash are made on
//! the sink thread.
//!
//! The queue's capacity counts decisions, not messages: a `decisions` record of a
//! CheckResources call takes one place per decision, so what waits is bounded whatever the
//! calls look like.
//!
//! Durability: the sink fsyncs every `sync_every` (default 100 ms) while it has unsynced
//! records. A crash loses at most the records not yet fsynced: those still queued (up to
//! the queue capacity, default 65,536 decisions) and those written in the last
//! `sync_every`. A graceful shutdown writes and fsyncs everything queued before the
//! process exits.

mod chain;
mod export;
mod json;
mod record;
mod sink;

pub use chain::{Break, GENESIS};
pub use export::{export, flatten};
pub use record::{AuditItem, AuditRecord, Cell, Columns, Rows, Same, group};
pub use sink::{Broken, SinkConfig, verify};

use portcullis_policy::bundle::AuditBackpressure;
use sink::FileSink;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc};

enum Msg {
    Record(Box<AuditRecord<'static>>),
    Deferred(Box<dyn Deferred>),
    Stop,
}

/// A record handed over compact and rendered on the writer thread, so the request thread
/// does no formatting, JSON or hashing. The writer gives the rendered record its id.
pub trait Deferred: Send + 'static {
    /// The full record, borrowing from `self` and from `text`, which it clears and writes
    /// what it formats into (the writer reuses it from record to record, so rendering
    /// allocates nothing once warm). Its `id` is set by the writer.
    fn render<'a>(&'a self, text: &'a mut String) -> AuditRecord<'a>;

    /// How many decisions the record holds (its places in the queue).
    fn decisions(&self) -> usize {
        1
    }
}

/// A message and the places in the queue it holds, given back when the writer takes it.
type Queued = (Msg, u32);

/// Record ids: `<server start>-<counter>`.
#[derive(Debug)]
struct Ids {
    run_tag: String,
    next: AtomicU64,
}

impl Ids {
    fn next(&self) -> String {
        let mut id = String::new();
        self.write_next(&mut id);
        id
    }

    /// Replaces `out` with a fresh id.
    fn write_next(&self, out: &mut String) {
        out.clear();
        out.push_str(&self.run_tag);
        out.push('-');
        out.push_str(itoa::Buffer::new().format(self.next.fetch_add(1, Ordering::Relaxed)));
    }
}

/// What became of a record offered to the trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Queued for the sink.
    Queued,
    /// Dropped and counted (`drop` policy).
    Dropped,
    /// Not recorded; the decision must become a deny (`block`/`deny` policy, A1).
    Refused,
}

/// Which decisions are recorded besides those A1 requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Coverage {
    /// Denies, sensitive resources, break-glass and impersonation (A1).
    #[default]
    Required,
    /// Every decision.
    All,
}

/// How long a failed trail waits before trying the disk again.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The default [`SinkConfig::poll_every`]: 16 ms (at 100,000 decisions a second the queue
/// holds 1,600 meanwhile).
pub const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(16);

/// The sink thread's state. After a write or fsync error the trail is unhealthy (records
/// that A1 needs are refused, so their decisions deny); every `RETRY_EVERY` it reopens the
/// directory from what is on disk (cutting a torn last record, so the chain stays whole)
/// and writes an `audit_recovered` record; once that is durable, it is healthy again.
struct Writer {
    config: SinkConfig,
    sink: Option<FileSink>,
    rx: mpsc::UnboundedReceiver<Queued>,
    room: Arc<Semaphore>,
    errors: std::sync::Arc<AtomicU64>,
    healthy: std::sync::Arc<AtomicBool>,
    written: std::sync::Arc<AtomicU64>,
    ids: std::sync::Arc<Ids>,
    /// What a compact record's text and id are rendered into, reused.
    text: String,
    id: String,
}

impl Writer {
    /// Gives a message's places in the queue back and writes its record (rendering it if
    /// it came compact); false on `Stop`.
    fn take(&mut self, (msg, places): Queued) -> bool {
        self.room.add_permits(places as usize);
        match msg {
            Msg::Record(mut r) => self.pending(&mut r),
            Msg::Deferred(d) => {
                // Taken while the record borrows them, so `pending` may borrow the writer.
                let (mut text, mut id) = (std::mem::take(&mut self.text), std::mem::take(&mut self.id));
                self.ids.write_next(&mut id);
                let mut r = d.render(&mut text);
                r.id = id.as_str().into();
                self.pending(&mut r);
                drop(r);
                (self.text, self.id) = (text, id);
            }
            Msg::Stop => return false,
        }
        true
    }

    fn run(mut self) {
        loop {
            if self.sink.is_none() && !self.recover() {
                // Unhealthy: a record that arrives waits (in queue order) until the disk
                // takes writes again.
                match self.rx.try_recv() {
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                    Ok(msg) => {
                        if !self.take(msg) {
                            return;
                        }
                    }
                    Err(mpsc::error::TryRecvError::Empty) => std::thread::sleep(RETRY_EVERY),
                }
                continue;
            }
            // While records wait for fsync, poll so the sync happens on time; fsync at most
            // every `sync_every` so a busy trail costs few syscalls.
            let dirty = self.sink.as_ref().is_some_and(FileSink::dirty);
            let msg = if dirty {
                match self.rx.try_recv() {
                    Ok(m) => m,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match self.sink.as_ref().map(FileSink::until_sync) {
                            Some(wait) if !wait.is_zero() => {
                                std::thread::park_timeout(wait.min(self.config.poll_every));
                            }
                            _ => self.sync(),
                        }
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match self.rx.blocking_recv() {
                    Some(m) => m,
                    None => break,
                }
            };
            if !self.take(msg) {
                break;
            }
        }
        self.sync();
    }

    /// Writes one record, once the sink is (again) usable.
    fn pending(&mut self, r: &mut AuditRecord<'_>) {
        while self.sink.is_none() {
            if self.recover() {
                break;
            }
            std::thread::sleep(RETRY_EVERY);
        }
        let Some(sink) = &mut self.sink else { return };
        match sink.write(r) {
            Ok(()) => {
                self.written
                    .fetch_add(r.decisions.items.len().max(1) as u64, Ordering::Relaxed);
                if sink.sync_due() {
                    self.sync();
                }
            }
            Err(e) => self.fail(e),
        }
    }

    fn sync(&mut self) {
        if let Some(sink) = &mut self.sink
            && let Err(e) = sink.sync()
        {
            self.fail(e);
        }
    }

    /// Marks the trail unhealthy and drops the sink with whatever it had not flushed.
    fn fail(&mut self, e: std::io::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::error!("audit sink: {e}; records A1 requires are refused until the disk takes writes again");
        }
        if let Some(sink) = self.sink.take() {
            sink.abandon();
        }
    }

    /// Reopens the trail from disk and makes a recovery record durable; true on success.
    fn recover(&mut self) -> bool {
        let attempt = FileSink::open(self.config.clone()).and_then(|mut sink| {
            let mut note = AuditRecord {
                id: format!("recovery-{}", self.errors.load(Ordering::Relaxed)).into(),
                time: humantime::format_rfc3339_millis(std::time::SystemTime::now())
                    .to_string()
                    .into(),
                kind: "audit_recovered",
                severity: "high",
                outcome: "ok",
                reason: "write_error".into(),
                details: Some(
                    format!(
                        "the trail failed {} time(s); records queued when it failed may be missing",
                        self.errors.load(Ordering::Relaxed)
                    )
                    .into(),
                ),
                ..AuditRecord::default()
            };
            sink.write(&mut note)?;
            sink.sync()?;
            Ok(sink)
        });
        match attempt {
            Ok(sink) => {
                self.sink = Some(sink);
                self.healthy.store(true, Ordering::Relaxed);
                tracing::warn!("audit sink writable again; the chain continues from the last complete record");
                true
            }
            Err(_) => false,
        }
    }
}

/// Handle to the audit trail, shared by every service.
#[derive(Debug)]
pub struct Audit {
    tx: mpsc::UnboundedSender<Queued>,
    /// Free places in the queue (decisions).
    room: Arc<Semaphore>,
    capacity: u32,
    coverage: Coverage,
    dropped: AtomicU64,
    refused: AtomicU64,
    write_errors: std::sync::Arc<AtomicU64>,
    healthy: std::sync::Arc<AtomicBool>,
    written: std::sync::Arc<AtomicU64>,
    ids: std::sync::Arc<Ids>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The writer thread, woken when the queue is more than half full.
    writer: std::thread::Thread,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Record(_) => "Record",
            Msg::Deferred(_) => "Deferred",
            Msg::Stop => "Stop",
        })
    }
}

impl Audit {
    /// Opens the sink (failing now if it cannot) and starts its thread.
    pub fn start(config: SinkConfig, capacity: usize, coverage: Coverage) -> std::io::Result<Audit> {
        let sink = FileSink::open(config.clone())?;
        let capacity = u32::try_from(capacity.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        let (tx, rx) = mpsc::unbounded_channel::<Queued>();
        let room = Arc::new(Semaphore::new(capacity as usize));
        let write_errors = std::sync::Arc::new(AtomicU64::new(0));
        let healthy = std::sync::Arc::new(AtomicBool::new(true));
        let written = std::sync::Arc::new(AtomicU64::new(0));
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let ids = std::sync::Arc::new(Ids {
            run_tag: format!("{started:x}"),
            next: AtomicU64::new(0),
        });
        let writer = Writer {
            config,
            sink: Some(sink),
            rx,
            room: room.clone(),
            errors: write_errors.clone(),
            healthy: healthy.clone(),
            written: written.clone(),
            ids: ids.clone(),
            text: String::new(),
            id: String::new(),
        };
        let thread = std::thread::Builder::new()
            .name("audit-sink".into())
            .spawn(move || writer.run())?;
        Ok(Audit {
            tx,
            room,
            capacity,
            coverage,
            dropped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            write_errors,
            healthy,
            written,
            ids,
            writer: thread.thread().clone(),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Whether a decision must be recorded: A1's list, or everything with `Coverage::All`.
    pub fn wants(&self, allowed: bool, sensitive: bool, break_glass: bool, impersonated: bool) -> bool {
        self.coverage == Coverage::All || !allowed || sensitive || break_glass || impersonated
    }

    /// A fresh record id.
    pub fn next_id(&self) -> String {
        self.ids.next()
    }

    /// Offers a record under the policy's backpressure rule.
    pub async fn submit(&self, record: AuditRecord<'static>, mode: AuditBackpressure) -> Admit {
        self.offer(Msg::Record(Box::new(record)), 1, mode).await
    }

    /// Offers a compact record, rendered on the writer thread, under the same rule. It
    /// takes a place in the queue per decision (all of the queue at most).
    pub async fn submit_deferred(&self, record: Box<dyn Deferred>, mode: AuditBackpressure) -> Admit {
        let decisions = record.decisions();
        self.offer(Msg::Deferred(record), decisions, mode).await
    }

    async fn offer(&self, msg: Msg, decisions: usize, mode: AuditBackpressure) -> Admit {
        let places = u32::try_from(decisions).unwrap_or(u32::MAX).clamp(1, self.capacity);
        let healthy = self.healthy.load(Ordering::Relaxed);
        let room = match (mode, healthy) {
            (AuditBackpressure::Block, true) => self.room.acquire_many(places).await.map(|p| p.forget()).is_ok(),
            (AuditBackpressure::Deny, true) | (AuditBackpressure::Drop, _) => {
                self.room.try_acquire_many(places).map(|p| p.forget()).is_ok()
            }
            (AuditBackpressure::Block | AuditBackpressure::Deny, false) => false,
        };
        // The writer gives the places back when it takes the record.
        let sent = room && self.tx.send((msg, places)).is_ok();
        if sent && self.room.available_permits() < self.capacity as usize / 2 {
            self.writer.unpark();
        }
        if room && !sent {
            self.room.add_permits(places as usize);
        }
        let admit = match (sent, mode) {
            (true, _) if healthy => Admit::Queued,
            // Queued behind a failed disk: it may never be written (`drop` only).
            (_, AuditBackpressure::Drop) => Admit::Dropped,
            (_, _) => Admit::Refused,
        };
        let lost = decisions as u64;
        match admit {
            Admit::Dropped => self.dropped.fetch_add(lost, Ordering::Relaxed),
            Admit::Refused => self.refused.fetch_add(lost, Ordering::Relaxed),
            Admit::Queued => 0,
        };
        admit
    }

    /// Decisions waiting for the sink.
    pub fn queue_depth(&self) -> usize {
        (self.capacity as usize).saturating_sub(self.room.available_permits())
    }

    /// Counters: (written, dropped, refused, write errors).
    pub fn counters(&self) -> (u64, u64, u64, u64) {
        (
            self.written.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.write_errors.load(Ordering::Relaxed),
        )
    }

    /// Writes and fsyncs everything queued, then stops the sink. Idempotent.
    pub async fn close(&self) {
        let _ = self.tx.send((Msg::Stop, 0));
        // A writer waiting to fsync sleeps until its next look at the queue: wake it.
        self.writer.unpark();
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}
