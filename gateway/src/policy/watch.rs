//! Hot reload of the policy directory, through [`crate::reload`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::load::load_dir;
use super::set::PolicyStore;
pub use crate::reload::Reload;

/// Checks `dir` once; see [`crate::reload::reload_once`].
pub fn reload_once(dir: &Path, store: &PolicyStore, rejected: &mut Option<String>) -> Reload {
    crate::reload::reload_once(dir, store, load_dir, rejected)
}

/// Polls `dir` every `interval`; see [`crate::reload::spawn`].
pub fn spawn(
    dir: PathBuf,
    store: Arc<PolicyStore>,
    interval: Duration,
    on_reload: impl Fn(&Reload) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    crate::reload::spawn("policies", dir, store, load_dir, interval, on_reload)
}
