//! Runs the HTTP server: binds, loads models in the background, drains on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::http::{app, AppState};
use crate::policy::watch::{self as policy_watch, Reload};
use crate::policy::PolicyStore;

/// A server started by [`start`].
pub struct RunningServer {
    /// The bound address (port 0 resolved).
    pub addr: SocketAddr,
    /// Shared state, for inspection.
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Starts draining: readiness turns 503, in-flight requests finish, then the server stops.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) -> std::io::Result<()> {
        self.task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Loads the policies of `config`; every error, one per line, when they don't load.
pub fn load_policies(config: &Config) -> Result<Option<Arc<PolicyStore>>, String> {
    let Some(pc) = &config.policies else {
        return Ok(None);
    };
    match crate::policy::load::load_dir(&pc.dir) {
        Ok(set) => Ok(Some(Arc::new(PolicyStore::new(set)))),
        Err(errors) => Err(errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")),
    }
}

/// Serves `config` on `listener`; local models load in the background (`/readyz` says when).
/// Policies load first: invalid policies refuse to start (`InvalidData`), since there is no
/// previous version to keep.
pub fn start(config: Config, listener: TcpListener) -> std::io::Result<RunningServer> {
    let policies = load_policies(&config)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    start_with(config, listener, policies)
}

/// Like [`start`], with the policies already loaded by [`load_policies`].
pub fn start_with(
    config: Config,
    listener: TcpListener,
    policies: Option<Arc<PolicyStore>>,
) -> std::io::Result<RunningServer> {
    let addr = listener.local_addr()?;
    let grace = config.server.shutdown_grace;
    let watch = config.policies.as_ref().filter(|p| p.watch).cloned();
    let state = AppState::new(Arc::new(config), policies.clone());
    let watcher = match (watch, policies) {
        (Some(pc), Some(store)) => {
            let metrics = state.metrics.clone();
            Some(policy_watch::spawn(
                pc.dir,
                store,
                pc.poll_interval,
                move |r| match r {
                    Reload::Swapped { version } => {
                        metrics.policy.reloads.with_label_values(&["ok"]).inc();
                        metrics.policy.set_version(version);
                    }
                    Reload::Rejected { .. } => {
                        metrics
                            .policy
                            .reloads
                            .with_label_values(&["rejected"])
                            .inc();
                    }
                    Reload::Unchanged => {}
                },
            ))
        }
        _ => None,
    };
    let loader = state.clone();
    tokio::spawn(async move {
        loader
            .models
            .load_local(|id, st| match st {
                crate::models::ModelState::Failed(e) => {
                    tracing::error!(model = id, error = %e, "model failed to load")
                }
                _ => tracing::info!(model = id, "model loaded"),
            })
            .await;
    });
    let (tx, mut rx) = watch::channel(false);
    let app = app(state.clone());
    let draining = state.clone();
    let task = tokio::spawn(async move {
        let mut rx2 = rx.clone();
        let signal = async move {
            let _ = rx2.wait_for(|v| *v).await;
            draining.draining.store(true, Ordering::SeqCst);
            tracing::info!("draining in-flight requests");
        };
        let serve = axum::serve(listener, app).with_graceful_shutdown(signal);
        // In-flight requests get `grace` after the signal; past it the server stops anyway.
        let deadline = async move {
            let _ = rx.wait_for(|v| *v).await;
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            r = serve => r,
            _ = deadline => {
                tracing::warn!("shutdown grace period over; dropping remaining connections");
                Ok(())
            }
        };
        if let Some(w) = watcher {
            w.abort();
        }
        result
    });
    Ok(RunningServer {
        addr,
        state,
        shutdown: tx,
        task,
    })
}

/// Runs with `policies` (from [`load_policies`]) until `signal` completes, then drains and
/// returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    policies: Option<Arc<PolicyStore>>,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let server = start_with(config, listener, policies)?;
    signal.await;
    server.shutdown();
    server.wait().await
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
