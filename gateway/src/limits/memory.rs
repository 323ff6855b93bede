//! The limiter of a single process: [`super::gcra`] over a map of scope states.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::gcra::{self, Admit, Spec, State};

/// Scope states of this process.
#[derive(Debug)]
pub struct MemoryLimiter {
    epoch: Instant,
    states: Mutex<HashMap<String, State>>,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            states: Mutex::new(HashMap::new()),
        }
    }
}

impl MemoryLimiter {
    fn now(&self, at: Option<f64>) -> f64 {
        // Offset so that a zero TAT (a new scope) is always in the past.
        at.unwrap_or_else(|| 1e6 + self.epoch.elapsed().as_micros() as f64)
    }

    /// Checks every scope, then counts the request in all of them (or in none). `now` in
    /// microseconds overrides the clock (tests).
    pub fn admit(&self, _lease: &str, scopes: &[(String, Spec)], now: Option<f64>) -> Admit {
        let now = self.now(now);
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        for (index, (name, spec)) in scopes.iter().enumerate() {
            let st = states.get(name).copied().unwrap_or_default();
            if let Err(check) = gcra::check(spec, &st, now) {
                return Admit::Refused { index, check };
            }
        }
        Admit::Admitted(
            scopes
                .iter()
                .map(|(name, spec)| {
                    gcra::commit(spec, states.entry(name.clone()).or_default(), now)
                })
                .collect(),
        )
    }

    /// Charges `tokens` and releases the request's leases.
    pub fn settle(&self, _lease: &str, scopes: &[(String, Spec)], tokens: u64, now: Option<f64>) {
        let now = self.now(now);
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        for (name, spec) in scopes {
            gcra::settle(spec, states.entry(name.clone()).or_default(), now, tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimits;

    #[test]
    fn a_refusal_in_one_scope_counts_in_none() {
        let m = MemoryLimiter::default();
        let tenant = Spec::from_limits(&RateLimits {
            requests_per_minute: Some(60),
            burst: Some(5),
            ..RateLimits::default()
        });
        let key = Spec::from_limits(&RateLimits {
            requests_per_minute: Some(60),
            burst: Some(1),
            ..RateLimits::default()
        });
        let scopes = vec![("t".to_string(), tenant), ("k".to_string(), key)];
        assert!(matches!(
            m.admit("a", &scopes, Some(1e6)),
            Admit::Admitted(_)
        ));
        match m.admit("b", &scopes, Some(1e6)) {
            Admit::Refused { index, .. } => assert_eq!(index, 1),
            other => panic!("{other:?}"),
        }
        // The tenant scope was not charged for the refused request: 4 more fit.
        let only_tenant = &scopes[..1];
        for _ in 0..4 {
            assert!(matches!(
                m.admit("c", only_tenant, Some(1e6)),
                Admit::Admitted(_)
            ));
        }
        assert!(matches!(
            m.admit("d", only_tenant, Some(1e6)),
            Admit::Refused { .. }
        ));
    }
}
