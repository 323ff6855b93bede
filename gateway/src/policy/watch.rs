//! Hot reload: polls the policy directory's fingerprint and swaps in a new version when it
//! changes and loads cleanly. An invalid change is logged and the old version stays.
//!
//! Polling rather than inotify: it sees edits made through bind mounts, ConfigMap symlink
//! swaps and network filesystems alike, and hashing a few small files each second is cheap.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::load::{fingerprint, load_dir};
use super::set::PolicyStore;

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

/// Checks `dir` once; `rejected` remembers the last rejected fingerprint so that the same
/// bad file is reported once, not every poll.
pub fn reload_once(dir: &Path, store: &PolicyStore, rejected: &mut Option<String>) -> Reload {
    let current = store.current();
    let fp = match fingerprint(dir) {
        Ok(fp) => fp,
        Err(e) => {
            let errors = e.to_string();
            if rejected.as_deref() == Some(errors.as_str()) {
                return Reload::Unchanged;
            }
            *rejected = Some(errors.clone());
            store.reject(errors.clone());
            return Reload::Rejected { errors };
        }
    };
    if fp == current.version || rejected.as_deref() == Some(fp.as_str()) {
        return Reload::Unchanged;
    }
    match load_dir(dir) {
        Ok(set) => {
            let version = set.version.clone();
            store.swap(set);
            *rejected = None;
            Reload::Swapped { version }
        }
        Err(errs) => {
            let errors = errs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n");
            // Remember the fingerprint that failed; a later edit gets a new one.
            *rejected = Some(fp);
            store.reject(errors.clone());
            Reload::Rejected { errors }
        }
    }
}

/// Polls `dir` every `interval` until the returned task is aborted; `on_reload` sees every
/// swap and rejection.
pub fn spawn(
    dir: PathBuf,
    store: Arc<PolicyStore>,
    interval: Duration,
    on_reload: impl Fn(&Reload) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rejected = None;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (d, s) = (dir.clone(), store.clone());
            let mut r = rejected.take();
            // File reads and regex compilation stay off the async workers.
            let res = tokio::task::spawn_blocking(move || {
                let out = reload_once(&d, &s, &mut r);
                (out, r)
            })
            .await;
            let Ok((outcome, r)) = res else { continue };
            rejected = r;
            match &outcome {
                Reload::Unchanged => {}
                Reload::Swapped { version } => {
                    tracing::info!(dir = %dir.display(), %version, "policies reloaded")
                }
                Reload::Rejected { errors } => tracing::error!(
                    dir = %dir.display(),
                    "policy change rejected; the previous version stays in force:\n{errors}"
                ),
            }
            on_reload(&outcome);
        }
    })
}
