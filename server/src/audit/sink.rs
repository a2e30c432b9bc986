//! The default sink: JSON-lines files in `DIR/audit/`, hash-chained across files, rotated
//! by size and age, written by one thread that fsyncs at least every `sync_every`.

use super::chain::{Break, Link, follow, seal};
use super::record::AuditRecord;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where and how records are written.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Directory of the `audit-*.jsonl` files.
    pub dir: PathBuf,
    /// Start a new file past this size.
    pub max_file_bytes: u64,
    /// Start a new file past this age.
    pub max_file_age: Duration,
    /// Longest time a written record waits for fsync.
    pub sync_every: Duration,
    /// How long the writer sleeps between looks at the queue while records wait for
    /// fsync (never past the fsync's time). Each look is a switch onto a core the checks
    /// may be using, so looks are few; a sender that finds the queue more than half full
    /// wakes the writer at once.
    pub poll_every: Duration,
}

/// One write in this many looks at the clock, for the file's age and the fsync's time.
const LOOK_EVERY: u32 = 32;

/// Files of an audit directory, in chain order.
pub fn files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("audit-"))
                && p.extension().is_some_and(|e| e == "jsonl")
        })
        .collect();
    out.sort();
    Ok(out)
}

/// A break in the chain, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct Broken {
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub problem: Break,
}

/// Verifies every file of an audit directory; `Ok(records)` or the first broken record.
pub fn verify(dir: &Path) -> io::Result<Result<u64, Broken>> {
    let mut link = Link::default();
    for path in files(dir)? {
        let reader = BufReader::new(File::open(&path)?);
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            match follow(&line, &link) {
                Ok(next) => link = next,
                Err(problem) => {
                    let file = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    return Ok(Err(Broken {
                        file,
                        line: i + 1,
                        problem,
                    }));
                }
            }
        }
    }
    Ok(Ok(link.seq))
}

/// Writes records to rotating, chained files.
#[derive(Debug)]
pub struct FileSink {
    config: SinkConfig,
    link: Link,
    /// The current file, its size (with what is pending) and when it was opened.
    file: Option<(File, u64, Instant)>,
    dirty_since: Option<Instant>,
    /// Writes since the last that looked at the clock.
    unlooked: u32,
    /// Whether the last write looked at the clock (for its file's age and the fsync).
    looked: bool,
    /// How much of the current file the page cache was told to drop.
    dropped_to: u64,
    /// Records serialized and sealed but not yet handed to the file, written where they
    /// are serialized (no copy into a second buffer) and reused, so serializing
    /// allocates nothing once warm.
    pending: Vec<u8>,
}

/// Pending records are handed to the file once they reach this size.
const WRITE_AT: usize = 1 << 16;

impl FileSink {
    /// Opens the directory and continues the chain from its last complete record. A torn
    /// last line (a crash mid-write; never acknowledged durable) is cut off.
    pub fn open(config: SinkConfig) -> io::Result<FileSink> {
        fs::create_dir_all(&config.dir)?;
        let mut link = Link::default();
        if let Some(last) = files(&config.dir)?.pop() {
            let bytes = fs::read(&last)?;
            let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if complete < bytes.len() {
                tracing::warn!(
                    "{}: cutting a torn last record ({} bytes)",
                    last.display(),
                    bytes.len() - complete
                );
                OpenOptions::new().write(true).open(&last)?.set_len(complete as u64)?;
            }
            if let Some(line) = bytes
                .get(..complete)
                .and_then(|b| b.split(|c| *c == b'\n').rev().find(|l| !l.is_empty()))
            {
                let value: serde_json::Value = serde_json::from_slice(line).map_err(io::Error::other)?;
                link = Link {
                    seq: value.get("seq").and_then(serde_json::Value::as_u64).unwrap_or(0),
                    hash: value
                        .get("hash")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                };
            }
        }
        Ok(FileSink {
            config,
            link,
            file: None,
            dirty_since: None,
            unlooked: 0,
            looked: false,
            dropped_to: 0,
            pending: Vec::with_capacity(2 * WRITE_AT),
        })
    }

    /// Chains and appends one record (buffered; durable after the next `sync`). The record
    /// holds its `seq` after, and its `prev` only while it is written.
    pub fn write(&mut self, record: &mut AuditRecord<'_>) -> io::Result<()> {
        self.unlooked += 1;
        self.looked = self.unlooked >= LOOK_EVERY;
        if self.looked {
            self.unlooked = 0;
        }
        self.rotate_if_needed()?;
        let Some((file, size, _)) = &mut self.file else {
            return Err(io::Error::other("no audit file open"));
        };
        record.seq = self.link.seq + 1;
        // Lent to the record and taken back, so chaining allocates nothing.
        record.prev = std::mem::take(&mut self.link.hash).into();
        let start = self.pending.len();
        super::json::write_record(&mut self.pending, record);
        self.link.hash = std::mem::take(&mut record.prev).into_owned();
        let hash = seal(&mut self.pending, start);
        self.pending.push(b'\n');
        *size += (self.pending.len() - start) as u64;
        if self.pending.len() >= WRITE_AT {
            file.write_all(&self.pending)?;
            self.pending.clear();
        }
        self.link.advance(&hash);
        self.dirty_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Closes the current file without writing what is pending (after a write error, so
    /// nothing half-written follows the last complete record).
    pub fn abandon(self) {}

    /// Whether buffered records have waited `sync_every`, asked after each write. Only
    /// every [`LOOK_EVERY`]th write looks at the clock (two readings cost a tenth of a
    /// record): while records stream in, that is well under a millisecond late, and a
    /// writer that runs out of records reads the clock itself ([`FileSink::until_sync`]).
    pub fn sync_due(&self) -> bool {
        self.looked && self.dirty() && self.until_sync().is_zero()
    }

    /// How long until the oldest buffered record has waited `sync_every` (zero when
    /// nothing is buffered or it has).
    pub fn until_sync(&self) -> std::time::Duration {
        self.dirty_since.map_or(std::time::Duration::ZERO, |t| {
            self.config.sync_every.saturating_sub(t.elapsed())
        })
    }

    /// Whether anything is waiting for fsync.
    pub fn dirty(&self) -> bool {
        self.dirty_since.is_some()
    }

    /// Flushes and fsyncs what was written, then lets the page cache drop it.
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some((file, size, _)) = &mut self.file {
            file.write_all(&self.pending)?;
            self.pending.clear();
            file.sync_data()?;
            forget_synced(file, &mut self.dropped_to, *size);
        }
        self.dirty_since = None;
        Ok(())
    }

    fn rotate_if_needed(&mut self) -> io::Result<()> {
        let stale = match &self.file {
            None => true,
            Some((_, size, opened)) => {
                *size >= self.config.max_file_bytes || (self.looked && opened.elapsed() >= self.config.max_file_age)
            }
        };
        if stale {
            self.sync()?;
            let path = self.config.dir.join(format!("audit-{:020}.jsonl", self.link.seq + 1));
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(&path)?;
            let size = file.metadata()?.len();
            self.dropped_to = 0;
            File::open(&self.config.dir)?.sync_all()?;
            self.file = Some((file, size, Instant::now()));
        }
        Ok(())
    }
}

/// Tells the kernel the whole pages of `file` up to `size`, written and fsynced, will not
/// be read soon, so the trail does not fill the page cache with what only an auditor reads
/// (a trail at 50,000 records a second writes 90 GB a hour). The page being filled stays.
fn forget_synced(file: &File, dropped_to: &mut u64, size: u64) {
    const PAGE: u64 = 4096;
    let whole = size - size % PAGE;
    #[cfg(target_os = "linux")]
    if let Some(len) = std::num::NonZeroU64::new(whole.saturating_sub(*dropped_to)) {
        // Only advice: the records are durable whatever the kernel makes of it.
        let _ = rustix::fs::fadvise(file, *dropped_to, Some(len), rustix::fs::Advice::DontNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    *dropped_to = whole;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(name: &str, max_file_bytes: u64, max_file_age: Duration) -> (PathBuf, FileSink) {
        let dir = std::env::temp_dir().join(format!("portcullis-sink-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let config = SinkConfig {
            dir: dir.clone(),
            max_file_bytes,
            max_file_age,
            sync_every: Duration::from_secs(3600),
            poll_every: Duration::from_secs(3600),
        };
        (dir, FileSink::open(config).unwrap())
    }

    fn write(sink: &mut FileSink, n: usize) {
        for i in 0..n {
            let mut r = AuditRecord {
                principal: format!("p{i}").into(),
                ..AuditRecord::default()
            };
            sink.write(&mut r).unwrap();
        }
        sink.sync().unwrap();
    }

    #[test]
    fn files_rotate_by_size_and_by_age_and_the_chain_runs_through_them() {
        // Each record is over 100 bytes: every write starts a file.
        let (dir, mut by_size) = sink("size", 100, Duration::from_secs(3600));
        write(&mut by_size, 5);
        assert_eq!(files(&dir).unwrap().len(), 5);
        assert_eq!(verify(&dir).unwrap(), Ok(5));
        let _ = fs::remove_dir_all(&dir);

        // Aged at once: a new file once the age is looked at, every LOOK_EVERY writes.
        let (dir, mut by_age) = sink("age", 1 << 20, Duration::ZERO);
        let n = 3 * LOOK_EVERY as usize;
        write(&mut by_age, n);
        assert_eq!(files(&dir).unwrap().len(), 4, "the first file and one per look");
        assert_eq!(verify(&dir).unwrap(), Ok(n as u64));
        let _ = fs::remove_dir_all(&dir);
    }

    /// Bytes of `file` in the page cache, by util-linux's `fincore`.
    #[cfg(target_os = "linux")]
    fn cached(file: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(file)
            .output()
            .expect("fincore (util-linux) runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn synced_records_leave_the_page_cache() {
        let (dir, mut sink) = sink("cache", 1 << 30, Duration::from_secs(3600));
        write(&mut sink, 5_000);
        let file = files(&dir).unwrap().pop().unwrap();
        let size = fs::metadata(&file).unwrap().len();
        assert!(size > 400_000, "{size}");
        // At most the page still being filled (and a neighbour, where a record spans two).
        assert!(cached(&file) <= 2 * 4096, "{} of {size} bytes cached", cached(&file));
        let _ = fs::remove_dir_all(&dir);
    }
}
