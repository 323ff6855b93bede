//! Hot reload of the policy directory, through [`crate::reload`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::load::{load_dir, PolicyError};
use super::set::{PolicySet, PolicyStore};
pub use crate::reload::Reload;

/// [`load_dir`] for a reload: a directory left without policy files (emptied by a failed
/// deploy, say) is refused, so a reload never drops every guardrail at once. Removing the
/// `policies:` section and restarting is how guardrails are turned off.
fn reload_dir(dir: &Path) -> Result<PolicySet, Vec<PolicyError>> {
    let set = load_dir(dir)?;
    if set.policies.is_empty() {
        return Err(vec![PolicyError::Read {
            file: dir.display().to_string(),
            message: "no policy files: a reload may not remove every policy (remove the \
                      `policies:` section and restart to run without guardrails)"
                .into(),
        }]);
    }
    Ok(set)
}

/// Checks `dir` once; see [`crate::reload::reload_once`].
pub fn reload_once(dir: &Path, store: &PolicyStore, rejected: &mut Option<String>) -> Reload {
    crate::reload::reload_once(dir, store, reload_dir, rejected)
}

/// Checks `dir` every `interval` and on demand; see [`crate::reload::spawn`].
pub fn spawn(
    dir: PathBuf,
    store: Arc<PolicyStore>,
    interval: Option<Duration>,
    on_demand: tokio::sync::watch::Receiver<u64>,
    on_reload: impl Fn(&Reload) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    crate::reload::spawn(
        "policies", dir, store, reload_dir, interval, on_demand, on_reload,
    )
}
