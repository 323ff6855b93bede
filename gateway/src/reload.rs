//! Hot reload of a directory of files (policies, prompt templates): a [`Store`] holds the
//! version in force; a poller swaps in a new version when the directory's fingerprint
//! changes and the new files load cleanly. An invalid change is logged and the old version
//! stays.
//!
//! Polling rather than inotify: it sees edits made through bind mounts, ConfigMap symlink
//! swaps and network filesystems alike, and hashing a few small files each second is cheap.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// A loaded version of a directory.
pub trait Versioned: Send + Sync + 'static {
    /// The directory's [`fingerprint`] when it was loaded.
    fn version(&self) -> &str;
}

/// The current version, swapped whole on reload. Requests hold the `Arc` they got, so
/// in-flight requests finish on the version they started with.
#[derive(Debug)]
pub struct Store<T> {
    current: RwLock<Arc<T>>,
    last_error: RwLock<Option<String>>,
}

impl<T> Store<T> {
    /// A store serving `set`.
    pub fn new(set: T) -> Self {
        Self {
            current: RwLock::new(Arc::new(set)),
            last_error: RwLock::new(None),
        }
    }

    /// The version in force.
    pub fn current(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts `set` in force.
    pub fn swap(&self, set: T) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        *self.last_error.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Records a rejected reload; the current version stays.
    pub fn reject(&self, error: String) {
        *self.last_error.write().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// Forgets the last rejected reload (its change was undone).
    pub fn clear_error(&self) {
        *self.last_error.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The error of the last rejected reload, until a reload succeeds or the change is
    /// undone.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// `sha256:<hex>` over every file under `dir` (relative path and content), so that any
/// edit, including of files the main ones refer to, makes a new version.
pub fn fingerprint(dir: &Path) -> std::io::Result<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Editors' swap and backup files are not content.
            if name.starts_with('.') || name.ends_with('~') {
                continue;
            }
            if path.is_dir() {
                walk(&path, base, out)?;
            } else {
                let rel = path.strip_prefix(base).unwrap_or(&path);
                out.push((rel.to_string_lossy().into_owned(), path.clone()));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    for (rel, path) in files {
        let bytes = std::fs::read(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        h.update((rel.len() as u64).to_le_bytes());
        h.update(rel.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// What a reload attempt did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reload {
    /// Nothing changed on disk.
    Unchanged,
    /// A new version is in force.
    Swapped {
        /// Its version.
        version: String,
    },
    /// The change was rejected; the previous version stays.
    Rejected {
        /// Every error, one per line.
        errors: String,
    },
}

/// Loads a directory into a version, or returns every error it found.
pub type Loader<T, E> = fn(&Path) -> Result<T, Vec<E>>;

/// Errors one per line, as reloads report and stores remember them.
pub fn one_per_line<E: std::fmt::Display>(errors: &[E]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks `dir` once; `rejected` remembers the last rejected fingerprint so that the same
/// bad file is reported once, not every poll.
pub fn reload_once<T: Versioned, E: std::fmt::Display>(
    dir: &Path,
    store: &Store<T>,
    load: Loader<T, E>,
    rejected: &mut Option<String>,
) -> Reload {
    let current = store.current();
    let fp = match fingerprint(dir) {
        Ok(fp) => fp,
        Err(e) => {
            let errors = format!("{}: cannot read: {e}", dir.display());
            if rejected.as_deref() == Some(errors.as_str()) {
                return Reload::Unchanged;
            }
            *rejected = Some(errors.clone());
            store.reject(errors.clone());
            return Reload::Rejected { errors };
        }
    };
    if fp == current.version() {
        if rejected.take().is_some() {
            // The bad edit was undone: what is on disk is what is in force again.
            store.clear_error();
        }
        return Reload::Unchanged;
    }
    if rejected.as_deref() == Some(fp.as_str()) {
        return Reload::Unchanged;
    }
    match load(dir) {
        Ok(set) => {
            let version = set.version().to_string();
            store.swap(set);
            *rejected = None;
            Reload::Swapped { version }
        }
        Err(errors) => {
            let errors = one_per_line(&errors);
            // Remember the fingerprint that failed; a later edit gets a new one.
            *rejected = Some(fp);
            store.reject(errors.clone());
            Reload::Rejected { errors }
        }
    }
}

/// Checks `dir` every `interval` (`None`: never by itself) and whenever `on_demand` changes
/// (SIGHUP), until the returned task is aborted; `on_reload` sees every swap and rejection.
/// `what` names the content in logs ("policies", "templates").
pub fn spawn<T: Versioned, E: std::fmt::Display + 'static>(
    what: &'static str,
    dir: PathBuf,
    store: Arc<Store<T>>,
    load: Loader<T, E>,
    interval: Option<Duration>,
    mut on_demand: tokio::sync::watch::Receiver<u64>,
    on_reload: impl Fn(&Reload) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rejected = None;
        let mut tick = interval.map(|i| {
            let mut t = tokio::time::interval(i);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut demand_open = true;
        loop {
            let tick_or_never = async {
                match &mut tick {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick_or_never => {}
                changed = on_demand.changed(), if demand_open => {
                    if changed.is_err() {
                        // Nobody can ask any more; keep polling, if polling at all.
                        demand_open = false;
                        if tick.is_none() {
                            return;
                        }
                        continue;
                    }
                    tracing::info!(dir = %dir.display(), "{what}: reload requested");
                }
            }
            let (d, s) = (dir.clone(), store.clone());
            let mut r = rejected.take();
            // File reads and compilation stay off the async workers.
            let res = tokio::task::spawn_blocking(move || {
                let out = reload_once(&d, &s, load, &mut r);
                (out, r)
            })
            .await;
            let Ok((outcome, r)) = res else { continue };
            rejected = r;
            match &outcome {
                Reload::Unchanged => {}
                Reload::Swapped { version } => {
                    tracing::info!(dir = %dir.display(), %version, "{what} reloaded")
                }
                Reload::Rejected { errors } => tracing::error!(
                    dir = %dir.display(),
                    "{what} change rejected; the previous version stays in force:\n{errors}"
                ),
            }
            on_reload(&outcome);
        }
    })
}
