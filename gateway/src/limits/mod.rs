//! Rate limits and quotas per tenant and per key: requests per minute (GCRA), tokens per
//! minute (GCRA charged after the response) and concurrent requests (leases).
//!
//! With `redis:` the state lives in Redis and one Lua script checks and updates every scope
//! of a request atomically, so all replicas enforce one global limit; without it, or while
//! Redis fails under `redis.on_error.rate_limits: fail_open`, the same algorithm runs in this
//! process ([`memory`]).

pub mod gcra;
pub mod memory;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{FailMode, RateLimits};
use crate::kv::Kv;
use crate::metrics::Metrics;

pub use gcra::{Admit, Check, LimitKind, Spec, Window};

/// Who a limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// All keys of a tenant together.
    Tenant,
    /// One key.
    Key,
}

impl ScopeKind {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Tenant => "tenant",
            ScopeKind::Key => "key",
        }
    }
}

/// One set of limits a request counts against.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Tenant or key.
    pub kind: ScopeKind,
    /// Tenant id (both kinds: it keeps a tenant's state together).
    pub tenant: String,
    /// Key id, for [`ScopeKind::Key`].
    pub key: Option<String>,
    /// Its limits.
    pub limits: RateLimits,
}

impl Scope {
    /// The state's name, unique per scope.
    pub fn name(&self) -> String {
        match &self.key {
            None => format!("{{{}}}:t", self.tenant),
            Some(k) => format!("{{{}}}:k:{k}", self.tenant),
        }
    }

    fn spec(&self) -> Spec {
        Spec::from_limits(&self.limits)
    }
}

/// A request over a limit.
#[derive(Debug, Clone)]
pub struct Refused {
    /// Whose limit.
    pub scope: ScopeKind,
    /// Which limit.
    pub limit: LimitKind,
    /// When a retry can succeed.
    pub retry_after: Duration,
    /// The configured value of that limit.
    pub value: u64,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    /// Over a limit: 429.
    #[error("rate limit")]
    Refused(Refused),
    /// Redis failed and `redis.on_error.rate_limits` is `fail_closed`: 503.
    #[error("rate limits cannot be checked: {0}")]
    Unavailable(String),
}

/// An admitted request: what to report in headers, and what to settle when it ends.
#[derive(Debug)]
pub struct Grant {
    /// Requests window of the scope with the fewest left, with its limit.
    pub requests: Option<(u64, Window)>,
    /// Tokens window of the scope with the fewest left, with its limit.
    pub tokens: Option<(u64, Window)>,
    /// Settles the request (tokens used, concurrency released).
    pub lease: Lease,
}

/// Where a request's state was counted; settled by [`Lease::settle`].
#[derive(Debug)]
pub struct Lease {
    id: String,
    scopes: Vec<(String, Spec)>,
    store: Store,
}

#[derive(Debug, Clone)]
enum Store {
    Memory(Arc<memory::MemoryLimiter>),
    Redis(Kv),
}

impl Lease {
    /// Charges `tokens` (prompt + completion) and frees the concurrency slot.
    pub async fn settle(self, tokens: u64) {
        if self.scopes.is_empty() {
            return;
        }
        match &self.store {
            Store::Memory(m) => m.settle(&self.id, &self.scopes, tokens, None),
            Store::Redis(kv) => {
                if let Err(e) = redis::settle(kv, &self.id, &self.scopes, tokens).await {
                    // The tokens are not charged and the lease expires on its own.
                    tracing::debug!(error = %e, "rate limit settlement skipped");
                }
            }
        }
    }
}

/// How long a concurrency lease lives in Redis if its replica dies before releasing it.
pub const LEASE_TTL: Duration = Duration::from_secs(600);

/// The limiter of a server.
pub struct RateLimiter {
    memory: Arc<memory::MemoryLimiter>,
    redis: Option<(Kv, FailMode)>,
    metrics: Arc<Metrics>,
}

impl RateLimiter {
    /// In Redis when `redis` is given, else in this process.
    pub fn new(redis: Option<(Kv, FailMode)>, metrics: Arc<Metrics>) -> Self {
        Self {
            memory: Arc::new(memory::MemoryLimiter::default()),
            redis,
            metrics,
        }
    }

    /// Checks and counts a request against `scopes` (all or nothing).
    pub async fn admit(&self, scopes: &[Scope]) -> Result<Grant, LimitError> {
        let specs: Vec<(String, Spec)> = scopes
            .iter()
            .filter(|s| !s.limits.is_unlimited())
            .map(|s| (s.name(), s.spec()))
            .collect();
        let kinds: Vec<ScopeKind> = scopes
            .iter()
            .filter(|s| !s.limits.is_unlimited())
            .map(|s| s.kind)
            .collect();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut store = Store::Memory(self.memory.clone());
        let outcome = match &self.redis {
            None => self.memory.admit(&id, &specs, None),
            Some((kv, mode)) => match redis::admit(kv, &id, &specs).await {
                Ok(o) => {
                    store = Store::Redis(kv.clone());
                    o
                }
                Err(e) => match mode {
                    FailMode::Open => self.memory.admit(&id, &specs, None),
                    FailMode::Closed => return Err(LimitError::Unavailable(e.to_string())),
                },
            },
        };
        match outcome {
            Admit::Refused { index, check } => {
                let scope = kinds[index];
                let spec = &specs[index].1;
                self.metrics
                    .fleet
                    .rate_limited
                    .with_label_values(&[scope.as_str(), check.limit.as_str()])
                    .inc();
                Err(LimitError::Refused(Refused {
                    scope,
                    limit: check.limit,
                    retry_after: check.retry_after,
                    value: spec.limit_of(check.limit),
                }))
            }
            Admit::Admitted(windows) => {
                let pick = |f: fn(&gcra::Windows) -> Option<Window>, kind: LimitKind| {
                    windows
                        .iter()
                        .zip(&specs)
                        .filter_map(|(w, (_, s))| f(w).map(|w| (s.limit_of(kind), w)))
                        .min_by_key(|(_, w)| w.remaining)
                };
                Ok(Grant {
                    requests: pick(|w| w.requests, LimitKind::Requests),
                    tokens: pick(|w| w.tokens, LimitKind::Tokens),
                    lease: Lease {
                        id,
                        scopes: specs,
                        store,
                    },
                })
            }
        }
    }
}
