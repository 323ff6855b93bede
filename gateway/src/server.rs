//! Runs the HTTP server (and the gRPC listener, when configured) that `crate::app` assembles:
//! serves them, loads models in the background, watches policies and templates for reloads,
//! drains on shutdown.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::connections;

use crate::app::{
    http_router, http_state, load_stores, open_audit, open_vectors, Services, Stores,
};
use crate::config::Config;
use crate::http::AppState;
use crate::policy::watch::{self as policy_watch, Reload};

/// A server started by [`start`].
pub struct RunningServer {
    /// The bound address (port 0 resolved).
    pub addr: SocketAddr,
    /// The gRPC listener's address (port 0 resolved), when `server.grpc_listen` is set.
    pub grpc_addr: Option<SocketAddr>,
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

    /// Waits until the server has stopped, then writes what the audit log still holds.
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self
            .task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Some(audit) = self.state.audit.clone() {
            let _ = tokio::task::spawn_blocking(move || audit.close(AUDIT_CLOSE_TIMEOUT)).await;
        }
        result
    }
}

/// How long shutdown waits for the audit log to write what is queued.
const AUDIT_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `config` on `listener`; local models load in the background (`/readyz` says when).
/// Policies and templates load first: invalid ones refuse to start (`InvalidData`), since
/// there is no previous version to keep.
pub fn start(config: Config, listener: TcpListener) -> std::io::Result<RunningServer> {
    let mut stores = load_stores(&config)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    stores.vectors = open_vectors(&config).map_err(std::io::Error::other)?;
    stores.audit = open_audit(&config).map_err(std::io::Error::other)?;
    start_with(config, listener, stores)
}

/// Like [`start`], with the stores already loaded by [`load_stores`].
pub fn start_with(
    config: Config,
    listener: TcpListener,
    stores: Stores,
) -> std::io::Result<RunningServer> {
    let addr = listener.local_addr()?;
    // Again on the real addresses: `serve --listen` and embedders bypass the config's check.
    for a in std::iter::once(addr).chain(config.server.grpc_listen) {
        config
            .auth
            .check_listen(a)
            .map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidInput, m))?;
    }
    // Bound before anything is spawned: a port in use refuses to start, leaving nothing behind.
    let grpc_listener = config.server.grpc_listen.map(bind).transpose()?;
    let grace = config.server.shutdown_grace;
    // Every configured directory gets a reload task: polled when `watch` is on, and reloaded
    // on SIGHUP either way.
    let watch = config.policies.clone();
    let watch_prompts = config.prompts.clone();
    let hangups = on_hangup()?;
    if let crate::config::AuthConfig::None { open_admin, .. } = config.auth {
        let admin = if open_admin {
            "open to anyone"
        } else {
            "closed"
        };
        tracing::warn!(listen = %addr, admin, "auth: none: every request is served without an API key, as no tenant, without rate limits");
    }
    let state = http_state(Services::new(Arc::new(config), stores.clone()));
    let template_watcher = match (watch_prompts, stores.templates) {
        (Some(pc), Some(store)) => {
            let reloads = state.metrics.shaping.template_reloads.clone();
            Some(crate::reload::spawn(
                "templates",
                pc.dir,
                store,
                crate::prompts::load_dir,
                pc.watch.then_some(pc.poll_interval),
                hangups.clone(),
                move |r| match r {
                    Reload::Swapped { .. } => reloads.with_label_values(&["ok"]).inc(),
                    Reload::Rejected { .. } => reloads.with_label_values(&["rejected"]).inc(),
                    Reload::Unchanged => {}
                },
            ))
        }
        _ => None,
    };
    let watcher = match (watch, stores.policies) {
        (Some(pc), Some(store)) => {
            let metrics = state.metrics.clone();
            Some(policy_watch::spawn(
                pc.dir,
                store,
                pc.watch.then_some(pc.poll_interval),
                hangups,
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
    let grpc = match grpc_listener {
        Some(l) => Some(serve_grpc(state.clone(), l, rx.clone())?),
        None => None,
    };
    let grpc_addr = grpc.as_ref().map(|g| g.0);
    let app = http_router(state.clone());
    let limits = state.config.server.connections;
    let draining = state.clone();
    let task = tokio::spawn(async move {
        let mut rx2 = rx.clone();
        let signal = async move {
            let _ = rx2.wait_for(|v| *v).await;
            draining.draining.store(true, Ordering::SeqCst);
            tracing::info!("draining in-flight requests");
        };
        let serve = connections::serve(listener, app, limits, signal);
        let grpc_abort = grpc.as_ref().map(|(_, task)| task.abort_handle());
        // HTTP and gRPC drain together; the server has stopped when both have.
        let both = async move {
            tokio::join!(serve, async move {
                if let Some((_, task)) = grpc {
                    let _ = task.await;
                }
            });
            Ok(())
        };
        // In-flight requests get `grace` after the signal; past it the server stops anyway.
        let deadline = async move {
            let _ = rx.wait_for(|v| *v).await;
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            r = both => r,
            _ = deadline => {
                tracing::warn!("shutdown grace period over; dropping remaining connections");
                Ok(())
            }
        };
        for w in [watcher, template_watcher].into_iter().flatten() {
            w.abort();
        }
        if let Some(grpc) = grpc_abort {
            grpc.abort();
        }
        result
    });
    Ok(RunningServer {
        addr,
        grpc_addr,
        state,
        shutdown: tx,
        task,
    })
}

/// A counter that SIGHUP increments: the reload tasks watch it. Installing the handler also
/// keeps SIGHUP from terminating the process (its default action).
fn on_hangup() -> std::io::Result<watch::Receiver<u64>> {
    let (tx, rx) = watch::channel(0u64);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading policies and templates");
                tx.send_modify(|n| *n += 1);
                if tx.is_closed() {
                    break;
                }
            }
        });
    }
    // Without signals the reload tasks only poll.
    #[cfg(not(unix))]
    drop(tx);
    Ok(rx)
}

/// Binds `at` for the gRPC listener (outside the runtime's async context: `start` is sync).
fn bind(at: SocketAddr) -> std::io::Result<TcpListener> {
    let std = std::net::TcpListener::bind(at)
        .map_err(|e| std::io::Error::new(e.kind(), format!("gRPC listener {at}: {e}")))?;
    std.set_nonblocking(true)?;
    TcpListener::from_std(std)
}

/// Serves the gRPC API on `listener` until `shutdown`, then drains like HTTP; its health
/// service follows `/readyz`. Answers the bound address and the serving task.
fn serve_grpc(
    state: Arc<AppState>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let limits = state.config.server.connections;
    let (router, reporter) = crate::grpc::router(state.clone());
    let health = crate::grpc::health::follow(state, reporter);
    let task = tokio::spawn(async move {
        let signal = async move {
            let _ = shutdown.wait_for(|v| *v).await;
        };
        connections::serve(listener, router, limits, signal).await;
        health.abort();
    });
    Ok((addr, task))
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
