//! Redis, as the replicas' shared state (keys, rate limits, cache, routing).
//!
//! One lazily connected, self-reconnecting connection per process. Every call is bounded by
//! `redis.timeout_ms`, so a stalled or stopped Redis never holds a request; a failure is
//! counted per feature and logged once per outage (and once on recovery), not per request.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::RedisConfig;
use crate::metrics::Metrics;

/// Which feature made a Redis call, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// API key lookups.
    Auth,
    /// Rate limits and quotas.
    RateLimits,
    /// The response cache.
    Cache,
    /// The prefix→backend map.
    Routing,
    /// `gatehouse keys`.
    Cli,
}

impl Feature {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Auth => "auth",
            Feature::RateLimits => "rate_limits",
            Feature::Cache => "cache",
            Feature::Routing => "routing",
            Feature::Cli => "cli",
        }
    }
}

/// A failed Redis call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KvError {
    /// No answer within `redis.timeout_ms`.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error("Redis: {0}")]
    Redis(String),
    /// A stored value could not be decoded.
    #[error("Redis holds an unreadable value at {key}: {message}")]
    Corrupt {
        /// The Redis key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The shared Redis connection. Cloning shares it.
#[derive(Clone)]
pub struct Kv(Arc<Inner>);

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv")
            .field("prefix", &self.0.prefix)
            .finish()
    }
}

struct Inner {
    conn: ConnectionManager,
    timeout: Duration,
    prefix: String,
    /// Set after a failure, cleared by the next success (for once-per-outage logs).
    down: AtomicBool,
    metrics: Option<Arc<Metrics>>,
}

impl Kv {
    /// A client for `cfg`; connects on first use. Call within a Tokio runtime.
    pub fn new(cfg: &RedisConfig, metrics: Option<Arc<Metrics>>) -> Result<Self, KvError> {
        let client =
            redis::Client::open(cfg.url.as_str()).map_err(|e| KvError::Redis(e.to_string()))?;
        // Reconnection is retried on the next call rather than in a long backoff loop, so
        // recovery is noticed as soon as Redis answers again.
        let mcfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.timeout))
            .set_response_timeout(Some(cfg.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let conn = ConnectionManager::new_lazy_with_config(client, mcfg)
            .map_err(|e| KvError::Redis(e.to_string()))?;
        if let Some(m) = &metrics {
            m.fleet.redis_up.set(1);
        }
        Ok(Self(Arc::new(Inner {
            conn,
            timeout: cfg.timeout,
            prefix: cfg.prefix.clone(),
            down: AtomicBool::new(false),
            metrics,
        })))
    }

    /// `prefix:part:part...`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut k = self.0.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    /// Runs `f` on the connection within the timeout, recording the outcome for `feature`.
    pub async fn run<T, F, Fut>(&self, feature: Feature, f: F) -> Result<T, KvError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let res = match tokio::time::timeout(self.0.timeout, f(self.0.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(KvError::Redis(e.to_string())),
            Err(_) => Err(KvError::Timeout(self.0.timeout)),
        };
        match &res {
            Ok(_) => self.up(),
            Err(e) => self.failed(feature, e),
        }
        res
    }

    /// Records a failure noticed outside [`Kv::run`] (an unreadable value).
    pub fn failed(&self, feature: Feature, e: &KvError) {
        if let Some(m) = &self.0.metrics {
            m.fleet
                .redis_errors
                .with_label_values(&[feature.as_str()])
                .inc();
            m.fleet.redis_up.set(0);
        }
        if !self.0.down.swap(true, Ordering::SeqCst) {
            tracing::warn!(feature = feature.as_str(), error = %e, "redis: unavailable; each feature now follows redis.on_error until it answers again");
        } else {
            tracing::debug!(feature = feature.as_str(), error = %e, "redis call failed");
        }
    }

    fn up(&self) {
        if self.0.down.swap(false, Ordering::SeqCst) {
            tracing::info!("redis: answering again");
            if let Some(m) = &self.0.metrics {
                m.fleet.redis_up.set(1);
            }
        }
    }

    /// Whether the last call failed.
    pub fn is_down(&self) -> bool {
        self.0.down.load(Ordering::SeqCst)
    }
}
