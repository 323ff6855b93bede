//! What replicas share: auth, rate limits, the response cache, routing, Redis.

use prometheus::{IntCounterVec, IntGauge, Opts};

use super::must;

/// What replicas share: auth, rate limits, the response cache, routing, Redis.
#[derive(Debug, Clone)]
pub struct FleetMetrics {
    /// Refused authentications by reason (`missing`, `invalid`, `unavailable`, `forbidden`).
    pub auth_failures: IntCounterVec,
    /// Requests refused by a rate limit, by scope (`tenant`, `key`) and limit (`requests`,
    /// `tokens`, `concurrent`).
    pub rate_limited: IntCounterVec,
    /// Response cache lookups by result (`hit`, `miss`, `bypass`, `error`).
    pub cache: IntCounterVec,
    /// Failed Redis calls by feature (`auth`, `rate_limits`, `cache`, `routing`).
    pub redis_errors: IntCounterVec,
    /// 1 while the last Redis call succeeded, 0 after a failure.
    pub redis_up: IntGauge,
    /// Routed requests by model, backend and reason (`affinity`, `spill`, `only`).
    pub routed: IntCounterVec,
}

impl FleetMetrics {
    pub(super) fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            must(IntCounterVec::new(Opts::new(name, help), labels))
        };
        Self {
            auth_failures: counter(
                "auth_failures_total",
                "Refused authentications by reason: missing, invalid, unavailable (Redis down, fail_closed), forbidden.",
                &["reason"],
            ),
            rate_limited: counter(
                "rate_limited_total",
                "Requests refused with 429 by scope (tenant, key) and limit (requests, tokens, concurrent).",
                &["scope", "limit"],
            ),
            cache: counter(
                "cache_requests_total",
                "Response cache lookups by result: hit, miss, bypass (not cacheable), error (store failed).",
                &["result"],
            ),
            redis_errors: counter(
                "redis_errors_total",
                "Failed or timed-out Redis calls by feature.",
                &["feature"],
            ),
            redis_up: must(IntGauge::new(
                "redis_up",
                "1 while the last Redis call succeeded, 0 after a failure.",
            )),
            routed: counter(
                "routed_requests_total",
                "Requests routed to a backend replica by model, backend and reason (affinity, spill, only).",
                &["model", "backend", "reason"],
            ),
        }
    }

    pub(super) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.auth_failures.clone()),
            Box::new(self.rate_limited.clone()),
            Box::new(self.cache.clone()),
            Box::new(self.redis_errors.clone()),
            Box::new(self.redis_up.clone()),
            Box::new(self.routed.clone()),
        ]
    }
}
