//! The tamper-evident audit log (`docs/audit.md`).
//!
//! - [`record`]: one OCSF-shaped JSON line per request;
//! - [`chain`]: the SHA-256 hash chain and HMAC-signed checkpoints;
//! - [`writer`]: a thread appending batches to rotating JSON Lines files behind a bounded
//!   queue;
//! - [`files`], [`verify`], [`query`]: reading the log back (CLI, review page).
//!
//! Requests never wait for the disk: a record goes into a queue of `audit.queue` slots. When
//! it is full, `on_full: drop` serves the request and counts the lost record (a gap record
//! says how many), `on_full: fail_closed` refuses new requests until the writer catches up:
//! each request takes its slot before it is served, so an admitted request's record always
//! has room.

pub mod chain;
pub mod files;
pub mod query;
pub mod record;
pub mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub use record::Record;

use crate::config::{AuditConfig, OnFull};
use crate::metrics::AuditMetrics;
use writer::{Msg, Shared, Writer};

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file or the directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another process writes this log.
    #[error(
        "{0} is in use by another process (a running gatehouse server?): one process writes a \
         log; stop it, or give this one another audit.dir"
    )]
    Locked(PathBuf),
    /// The log cannot be continued.
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl AuditError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The queue is full and `on_full` is `fail_closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// The request side of the audit log.
pub struct Auditor {
    config: AuditConfig,
    tx: Mutex<mpsc::Sender<Msg>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    closed: AtomicBool,
    verified: Mutex<Option<(std::time::Instant, verify::Report, i64)>>,
}

/// A verification of the chain and when it was made (ms since the epoch), or why it could
/// not be made.
pub type ChainStatus = Result<(verify::Report, i64), String>;

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("dir", &self.config.dir)
            .finish_non_exhaustive()
    }
}

/// A record's place in the queue: taken when the request starts under `fail_closed`, when
/// the record is written under `drop`. Dropping an unused slot frees it.
pub struct Slot {
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("reserved", &self.shared.is_some())
            .finish()
    }
}

impl Slot {
    /// No slot yet: [`Auditor::write`] looks for a free one when the record is written.
    pub fn unreserved() -> Self {
        Self { shared: None }
    }
}

/// A request's slot, handed from the HTTP audit middleware (which takes it before anything
/// else runs) to the domain layer that writes the chat record, so that one request holds
/// one slot. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct SlotCell(Arc<Mutex<Option<Slot>>>);

impl SlotCell {
    /// A cell holding `slot`.
    pub fn new(slot: Slot) -> Self {
        Self(Arc::new(Mutex::new(Some(slot))))
    }

    /// Takes the slot, if it is still there.
    pub fn take(&self) -> Option<Slot> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(s) = self.shared.take() {
            let left = s.pending.fetch_sub(1, Ordering::SeqCst) - 1;
            s.metrics.queue_depth.set(left as i64);
        }
    }
}

impl Auditor {
    /// Locks `config.dir`, finds the end of the chain and starts the writer thread.
    pub fn open(config: &AuditConfig, metrics: AuditMetrics) -> Result<Arc<Self>, AuditError> {
        let shared = Arc::new(Shared {
            pending: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            metrics,
            #[cfg(test)]
            fail_writes: AtomicBool::new(false),
        });
        let writer = Writer::open(config.clone(), shared.clone())?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::io(&config.dir, e))?;
        if config.hmac_key.is_none() {
            tracing::warn!(dir = %config.dir.display(), "audit: checkpoints are not signed; set audit.hmac_key_env");
        }
        Ok(Arc::new(Self {
            config: config.clone(),
            tx: Mutex::new(tx),
            shared,
            thread: Mutex::new(Some(thread)),
            closed: AtomicBool::new(false),
            verified: Mutex::new(None),
        }))
    }

    /// The settings it runs with.
    pub fn config(&self) -> &AuditConfig {
        &self.config
    }

    /// Its counters.
    pub fn metrics(&self) -> &AuditMetrics {
        &self.shared.metrics
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Takes a slot for a request about to be served; refuses under `fail_closed` when the
    /// queue is full.
    pub fn admit(&self) -> Result<Slot, QueueFull> {
        match self.config.on_full {
            OnFull::Drop => Ok(Slot::unreserved()),
            OnFull::FailClosed => match self.reserve() {
                Some(s) => Ok(s),
                None => {
                    self.shared.metrics.refused.inc();
                    Err(QueueFull)
                }
            },
        }
    }

    fn reserve(&self) -> Option<Slot> {
        let cap = self.config.queue;
        self.shared
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()?;
        self.shared
            .metrics
            .queue_depth
            .set(self.shared.pending.load(Ordering::SeqCst) as i64);
        Some(Slot {
            shared: Some(self.shared.clone()),
        })
    }

    /// Queues `record` in `slot` (or in a free one now; dropped and counted when none is).
    pub fn write(&self, mut slot: Slot, record: Record) {
        if slot.shared.is_none() {
            match self.reserve() {
                Some(s) => slot = s,
                None => return self.drop_record("queue full"),
            }
        }
        if self.closed.load(Ordering::SeqCst) {
            return self.drop_record("written after shutdown");
        }
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Msg::Record(Box::new(record)));
        if sent.is_ok() {
            // The writer frees the slot once the record is on disk.
            std::mem::forget(slot);
        } else {
            self.drop_record("writer stopped");
        }
    }

    fn drop_record(&self, why: &'static str) {
        self.shared.dropped.fetch_add(1, Ordering::SeqCst);
        self.shared.metrics.dropped.with_label_values(&[why]).inc();
    }

    /// Waits (blocking) until every record queued so far is on disk; `false` on timeout.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::sync_channel(1);
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Msg::Flush(tx));
        sent.is_ok() && rx.recv_timeout(timeout).is_ok()
    }

    /// Writes what is queued and a last checkpoint, then stops the writer (blocking, at most
    /// `timeout`). Records arriving later are dropped and counted.
    pub fn close(&self, timeout: Duration) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Msg::Close(tx));
        if sent.is_err() || rx.recv_timeout(timeout).is_err() {
            tracing::error!(
                dir = %self.config.dir.display(),
                pending = self.shared.pending.load(Ordering::SeqCst),
                "audit: the writer did not finish in time; records still queued are lost"
            );
            return;
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }

    /// The chain's verification (checkpoint signatures with the configured key), walked
    /// again only when the last one is older than `max_age`.
    pub fn verify_cached(&self, max_age: Duration) -> ChainStatus {
        let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, report, ms)) = cache.as_ref() {
            if at.elapsed() < max_age {
                return Ok((report.clone(), *ms));
            }
        }
        let report = verify::verify(self.dir(), self.config.hmac_key.as_deref())
            .map_err(|e| e.to_string())?;
        let ms = record::now_ms();
        *cache = Some((std::time::Instant::now(), report.clone(), ms));
        Ok((report, ms))
    }

    /// Records queued or reserved and not yet written.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests;
