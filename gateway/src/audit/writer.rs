//! The writer thread: takes records off the queue in batches, chains them, appends them to
//! the current file, `fsync`s, and only then counts them as written. Rotates files by size
//! and age, signs checkpoints, and keeps retrying (while the queue absorbs requests) when
//! the disk fails.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chain::{self, GENESIS};
use super::files;
use super::record::{now_ms, Activity, Checkpoint, Class, Record};
use super::AuditError;
use crate::config::AuditConfig;
use crate::metrics::AuditMetrics;

/// Records written in one go at most.
const MAX_BATCH: usize = 512;
/// How long the writer waits for more records before writing a batch.
const LINGER: Duration = Duration::from_millis(5);

/// What the queue carries.
pub(super) enum Msg {
    /// A record to write.
    Record(Box<Record>),
    /// Answer once everything before this message is on disk.
    Flush(SyncSender<()>),
    /// Write a last checkpoint, answer, and stop.
    Close(SyncSender<()>),
}

/// What the request side and the writer share.
pub(super) struct Shared {
    /// Records queued or reserved and not yet written.
    pub pending: AtomicUsize,
    /// Records dropped (queue full) since the last gap record.
    pub dropped: AtomicU64,
    /// Records written, dropped and flushed, for `/metrics`.
    pub metrics: AuditMetrics,
    /// Makes every write fail, to test how the queue absorbs a failing disk.
    #[cfg(test)]
    pub fail_writes: std::sync::atomic::AtomicBool,
}

struct Current {
    file: File,
    size: u64,
    opened: Instant,
}

/// The state of the chain and of the file being appended to.
pub(super) struct Writer {
    cfg: AuditConfig,
    shared: Arc<Shared>,
    _lock: File,
    current: Option<Current>,
    seq: u64,
    prev: String,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Written before the first queued record (crash recovery note).
    startup: Option<Record>,
}

impl Writer {
    /// Locks `cfg.dir` and finds where the chain continues.
    pub(super) fn open(cfg: AuditConfig, shared: Arc<Shared>) -> Result<Self, AuditError> {
        std::fs::create_dir_all(&cfg.dir).map_err(|e| AuditError::io(&cfg.dir, e))?;
        let lock = lock(&cfg.dir)?;
        let tail = files::tail(&cfg.dir)?;
        let (seq, prev) = match tail.as_ref().and_then(|t| t.last.clone()) {
            Some((seq, hash)) => (seq, hash),
            None => (0, GENESIS.to_string()),
        };
        let mut current = None;
        let mut startup = None;
        if let Some(t) = &tail {
            if t.torn_bytes > 0 {
                // Leave the evidence as it is; the chain goes on in a new file.
                let mut r = Record::new(Class::ApplicationLifecycle, Activity::Other, now_ms());
                r.unmapped.kind = "lifecycle".into();
                r.set_outcome("ok");
                r.message = format!(
                    "restarted after a crash: {} bytes of an unfinished record end {} (never \
                     acknowledged as written); the chain continues from sequence {seq}",
                    t.torn_bytes,
                    file_label(&t.path)
                );
                startup = Some(r);
                tracing::warn!(file = %t.path.display(), bytes = t.torn_bytes, "audit log: unfinished record after a crash; starting a new file");
            } else if t.size < cfg.max_file_bytes {
                let age = file_age(&t.path);
                if age < cfg.max_file_age {
                    let file = OpenOptions::new()
                        .append(true)
                        .open(&t.path)
                        .map_err(|e| AuditError::io(&t.path, e))?;
                    current = Some(Current {
                        file,
                        size: t.size,
                        opened: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
                    });
                }
            }
        }
        Ok(Self {
            cfg,
            shared,
            _lock: lock,
            current,
            seq,
            prev,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            startup,
        })
    }

    /// Runs until `Close` (or every sender is gone).
    pub(super) fn run(mut self, rx: Receiver<Msg>) {
        let mut batch: Vec<Record> = Vec::new();
        if let Some(r) = self.startup.take() {
            batch.push(r);
        }
        loop {
            let wait = self
                .cfg
                .checkpoint_interval
                .saturating_sub(self.last_checkpoint.elapsed())
                .max(Duration::from_millis(10));
            let first = match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.write_retrying(&mut batch, 0);
                    self.checkpoint_retrying();
                    return;
                }
            };
            let mut queued = 0;
            let mut replies = Vec::new();
            let mut close = None;
            // Group commit: records arriving within LINGER of the first share its write and
            // fsync (fewer wake-ups and syncs under load; nothing waits on it but the record).
            let linger_until = Instant::now() + LINGER;
            let mut lingering = true;
            let mut next = first;
            while let Some(m) = next.take() {
                match m {
                    Msg::Record(r) => {
                        batch.push(*r);
                        queued += 1;
                    }
                    Msg::Flush(tx) => {
                        replies.push(tx);
                        lingering = false;
                    }
                    Msg::Close(tx) => {
                        close = Some(tx);
                        break;
                    }
                }
                if batch.len() >= MAX_BATCH {
                    break;
                }
                next = rx.try_recv().ok();
                if next.is_none() && lingering {
                    let left = linger_until.saturating_duration_since(Instant::now());
                    if !left.is_zero() {
                        next = rx.recv_timeout(left).ok();
                    }
                }
            }
            self.write_retrying(&mut batch, queued);
            if self.since_checkpoint >= self.cfg.checkpoint_every
                || (self.since_checkpoint > 0
                    && self.last_checkpoint.elapsed() >= self.cfg.checkpoint_interval)
            {
                self.checkpoint_retrying();
            }
            for tx in replies {
                let _ = tx.send(());
            }
            if let Some(tx) = close {
                self.checkpoint_retrying();
                let _ = tx.send(());
                return;
            }
        }
    }

    /// Writes `batch` (the first `queued` of which came off the queue), retrying with
    /// backoff while the disk fails; empties it.
    fn write_retrying(&mut self, batch: &mut Vec<Record>, queued: usize) {
        let dropped = self.shared.dropped.swap(0, Ordering::SeqCst);
        if dropped > 0 {
            let mut r = Record::new(Class::ApplicationLifecycle, Activity::Other, now_ms());
            r.unmapped.kind = "lifecycle".into();
            r.set_outcome("failed");
            r.unmapped.dropped = Some(dropped);
            r.message = format!("{dropped} records were dropped: the audit queue was full");
            batch.insert(0, r);
        }
        if batch.is_empty() {
            return;
        }
        let mut backoff = Duration::from_millis(50);
        let mut failing = false;
        loop {
            match self.append(batch) {
                Ok(()) => break,
                Err(e) => {
                    self.shared.metrics.write_errors.inc();
                    if !failing {
                        tracing::error!(dir = %self.cfg.dir.display(), error = %e, queued = self.shared.pending.load(Ordering::Relaxed), "audit log: cannot write; retrying (requests go on until the queue is full)");
                        failing = true;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        if failing {
            tracing::info!(dir = %self.cfg.dir.display(), "audit log: writing again");
        }
        self.shared.pending.fetch_sub(queued, Ordering::SeqCst);
        self.shared
            .metrics
            .queue_depth
            .set(self.shared.pending.load(Ordering::SeqCst) as i64);
        batch.clear();
    }

    fn checkpoint_retrying(&mut self) {
        if self.since_checkpoint == 0 {
            return;
        }
        let mut batch = vec![self.checkpoint_record()];
        self.write_retrying(&mut batch, 0);
    }

    /// A checkpoint covering everything written so far; its signature is made in `append`,
    /// where its sequence and `prev_hash` are known.
    fn checkpoint_record(&self) -> Record {
        let mut r = Record::new(Class::ApplicationLifecycle, Activity::Other, now_ms());
        r.unmapped.kind = "checkpoint".into();
        r.set_outcome("ok");
        r.message = format!("checkpoint after {} records", self.since_checkpoint);
        r.unmapped.checkpoint = Some(Checkpoint {
            records: self.since_checkpoint,
            key_id: self.cfg.hmac_key.as_deref().map(chain::key_id),
            hmac: None,
        });
        r
    }

    /// Appends `records` in one write: all of them or (after a failure) none.
    fn append(&mut self, records: &mut [Record]) -> std::io::Result<()> {
        if self.rotation_due() {
            self.rotate()?;
        }
        self.append_here(records)
    }

    /// [`Self::append`] to the current file, whatever its size and age.
    fn append_here(&mut self, records: &mut [Record]) -> std::io::Result<()> {
        let (mut seq, mut prev) = (self.seq, self.prev.clone());
        let mut bytes = Vec::new();
        let mut checkpoint = false;
        for r in records.iter_mut() {
            seq += 1;
            r.metadata.sequence = seq;
            r.unmapped.prev_hash = prev.clone();
            if let Some(cp) = r.unmapped.checkpoint.as_mut() {
                checkpoint = true;
                if let Some(key) = &self.cfg.hmac_key {
                    cp.hmac = Some(chain::sign(
                        key,
                        &chain::checkpoint_message(seq, &prev, r.time),
                    ));
                }
            }
            let line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
            prev = chain::line_hash(&line);
            bytes.extend_from_slice(&line);
            bytes.push(b'\n');
        }
        let started = Instant::now();
        self.write_bytes(&bytes, self.seq + 1)?;
        self.shared
            .metrics
            .write_seconds
            .observe(started.elapsed().as_secs_f64());
        let n = seq - self.seq;
        (self.seq, self.prev) = (seq, prev);
        for r in records.iter() {
            let kind = r.unmapped.kind.as_str();
            self.shared.metrics.records.with_label_values(&[kind]).inc();
        }
        if checkpoint {
            self.shared.metrics.checkpoints.inc();
            self.since_checkpoint = 0;
            self.last_checkpoint = Instant::now();
        } else {
            self.since_checkpoint += n;
        }
        Ok(())
    }

    fn rotation_due(&self) -> bool {
        self.current.as_ref().is_some_and(|c| {
            c.size >= self.cfg.max_file_bytes || c.opened.elapsed() >= self.cfg.max_file_age
        })
    }

    /// Ends the current file with a checkpoint; the next write starts a new one.
    fn rotate(&mut self) -> std::io::Result<()> {
        if self.since_checkpoint > 0 {
            // The file is full, not broken: its closing checkpoint goes in regardless.
            let mut cp = [self.checkpoint_record()];
            self.append_here(&mut cp)?;
        }
        self.current = None;
        Ok(())
    }

    /// Writes whole lines to the current file (a new one, named after `first_seq`, if
    /// none), `fsync`s, and cuts off a partial write on failure.
    fn write_bytes(&mut self, bytes: &[u8], first_seq: u64) -> std::io::Result<()> {
        if self.current.is_none() {
            let path = self.cfg.dir.join(files::file_name(first_seq, now_ms()));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            if self.cfg.fsync {
                // The new name must survive a crash too.
                File::open(&self.cfg.dir)?.sync_all()?;
            }
            self.current = Some(Current {
                file,
                size: 0,
                opened: Instant::now(),
            });
        }
        #[cfg(test)]
        if self.shared.fail_writes.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected write failure"));
        }
        let fsync = self.cfg.fsync;
        let cur = self.current.as_mut().expect("opened above");
        let result =
            cur.file
                .write_all(bytes)
                .and_then(|()| if fsync { cur.file.sync_data() } else { Ok(()) });
        match result {
            Ok(()) => {
                cur.size += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Nothing of this batch counts as written; don't leave half of it behind.
                if cur.file.set_len(cur.size).is_err() {
                    self.current = None;
                }
                Err(e)
            }
        }
    }
}

/// Takes the exclusive lock of `dir` (`.lock` in it): one writer per chain.
fn lock(dir: &Path) -> Result<File, AuditError> {
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| AuditError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AuditError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(AuditError::io(&path, e)),
    }
}

/// How long ago the file named `audit-<seq>-<time>.jsonl` was started.
fn file_age(path: &Path) -> Duration {
    let started = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit('-').next())
        .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ").ok())
        .map(|t| t.and_utc().timestamp_millis());
    match started {
        Some(ms) => Duration::from_millis((now_ms() - ms).max(0) as u64),
        None => Duration::MAX,
    }
}

fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| PathBuf::from(path).display().to_string())
}
