//! Redis, as the replicas' shared state (keys, rate limits, cache, routing).
//!
//! One lazily connected, self-reconnecting connection per process, to one server or to a
//! Redis Cluster (`redis.mode: cluster`: keys a script touches together share a hash tag,
//! [`Kv::key_in_slot`]). Every call is bounded by
//! `redis.timeout_ms`, so a stalled or stopped Redis never holds a request; a failure is
//! counted per feature and logged once per outage (and once on recovery), not per request.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

use crate::config::{RedisConfig, RedisMode};
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
    /// Review-page sessions and the sign-in throttle.
    Sessions,
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
            Feature::Sessions => "sessions",
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

/// A connection to one server or to a cluster, as [`Kv::run`] hands it out; cloning shares it.
#[derive(Clone)]
pub enum Conn {
    /// One server; reconnects by itself.
    Single(ConnectionManager),
    /// A Redis Cluster: each command goes to the node that owns its keys' slot, following
    /// slot moves and failovers.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How connections are made.
enum Connector {
    Single(ConnectionManager),
    /// Connected at the first call (it needs a runtime and a reachable seed node), and again
    /// at the next call after a failed attempt; afterwards redis-rs follows slot moves and
    /// failovers itself (`gateway/tests/redis_cluster.rs` kills a master under load).
    Cluster {
        client: Box<ClusterClient>,
        conn: tokio::sync::OnceCell<ClusterConnection>,
    },
}

struct Inner {
    conn: Connector,
    timeout: Duration,
    prefix: String,
    /// Set after a failure, cleared by the next success (for once-per-outage logs).
    down: AtomicBool,
    metrics: Option<Arc<Metrics>>,
}

impl Kv {
    /// A client for `cfg`; connects on first use. Call within a Tokio runtime.
    pub fn new(cfg: &RedisConfig, metrics: Option<Arc<Metrics>>) -> Result<Self, KvError> {
        let conn = match cfg.mode {
            RedisMode::Standalone => {
                let client = redis::Client::open(cfg.nodes[0].as_str())
                    .map_err(|e| KvError::Redis(e.to_string()))?;
                // Reconnection is retried on the next call rather than in a long backoff
                // loop, so recovery is noticed as soon as Redis answers again.
                let mcfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(cfg.timeout))
                    .set_response_timeout(Some(cfg.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(100));
                Connector::Single(
                    ConnectionManager::new_lazy_with_config(client, mcfg)
                        .map_err(|e| KvError::Redis(e.to_string()))?,
                )
            }
            RedisMode::Cluster => {
                // Retries re-route a command after MOVED/ASK or a failover; each call stays
                // bounded by `timeout` as a whole.
                let client = ClusterClient::builder(cfg.nodes.iter().map(String::as_str))
                    .connection_timeout(cfg.timeout)
                    .response_timeout(cfg.timeout)
                    .retries(2)
                    .build()
                    .map_err(|e| KvError::Redis(e.to_string()))?;
                Connector::Cluster {
                    client: Box::new(client),
                    conn: tokio::sync::OnceCell::new(),
                }
            }
        };
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

    /// `prefix:part:part...` for a key that a script uses together with others of the same
    /// `slot`: in cluster mode `prefix:{slot}:part...`, so that they hash to one slot. One
    /// server keeps the plain names (and the data stored under them).
    pub fn key_in_slot(&self, slot: &str, parts: &[&str]) -> String {
        if !self.is_cluster() {
            return self.key(parts);
        }
        let tag = format!("{{{slot}}}");
        let tagged: Vec<&str> = std::iter::once(tag.as_str())
            .chain(parts.iter().copied())
            .collect();
        self.key(&tagged)
    }

    /// Whether Redis is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.0.conn, Connector::Cluster { .. })
    }

    async fn connection(&self) -> redis::RedisResult<Conn> {
        match &self.0.conn {
            Connector::Single(c) => Ok(Conn::Single(c.clone())),
            Connector::Cluster { client, conn } => {
                let c = conn
                    .get_or_try_init(|| client.get_async_connection())
                    .await?;
                Ok(Conn::Cluster(c.clone()))
            }
        }
    }

    /// Runs `f` on the connection within the timeout, recording the outcome for `feature`.
    pub async fn run<T, F, Fut>(&self, feature: Feature, f: F) -> Result<T, KvError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let call = async {
            let conn = self.connection().await?;
            f(conn).await
        };
        let res = match tokio::time::timeout(self.0.timeout, call).await {
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

    /// The local test Redis (127.0.0.1:6379) under `prefix`, for unit tests.
    #[cfg(test)]
    pub fn local_for_tests(prefix: &str) -> Self {
        use crate::config::{FailMode, OnError};
        Kv::new(
            &RedisConfig {
                mode: RedisMode::Standalone,
                nodes: vec!["redis://127.0.0.1:6379".into()],
                timeout: Duration::from_secs(2),
                prefix: prefix.to_string(),
                on_error: OnError {
                    auth: FailMode::Closed,
                    rate_limits: FailMode::Open,
                    cache: FailMode::Open,
                    routing: FailMode::Open,
                },
            },
            None,
        )
        .expect("client")
    }
}
