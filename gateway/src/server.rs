//! Runs the HTTP server: binds, loads models in the background, drains on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::http::{app, AppState};

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

/// Serves `config` on `listener`; local models load in the background (`/readyz` says when).
pub fn start(config: Config, listener: TcpListener) -> std::io::Result<RunningServer> {
    let addr = listener.local_addr()?;
    let grace = config.server.shutdown_grace;
    let state = AppState::new(Arc::new(config));
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
        tokio::select! {
            r = serve => r,
            _ = deadline => {
                tracing::warn!("shutdown grace period over; dropping remaining connections");
                Ok(())
            }
        }
    });
    Ok(RunningServer {
        addr,
        state,
        shutdown: tx,
        task,
    })
}

/// Runs until `signal` completes, then drains and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let server = start(config, listener)?;
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
