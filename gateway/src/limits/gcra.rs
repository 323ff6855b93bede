//! The limit algorithm, in plain Rust: the in-process limiter runs it, and the Redis Lua
//! script (`limits/admit.lua`) is the same arithmetic, tested against it.
//!
//! Requests: GCRA with a theoretical arrival time (TAT) advanced by one emission interval
//! (`60 s / requests_per_minute`) per request; a request is admitted while the TAT stays
//! within `burst` intervals of now. Tokens: the same with a minute's worth of tokens as the
//! tolerance, checked before a request (it must not already be in debt) and charged after it
//! with the tokens it really used. Concurrency: a count of leases.

use std::time::Duration;

use crate::config::RateLimits;

/// A minute, in the microseconds the state is kept in.
pub const MINUTE_US: f64 = 60_000_000.0;

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// `requests_per_minute`.
    Requests,
    /// `tokens_per_minute`.
    Tokens,
    /// `concurrent`.
    Concurrent,
}

impl LimitKind {
    /// Metric label and header word.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
            LimitKind::Concurrent => "concurrent",
        }
    }
}

/// A scope's limits in the algorithm's units; zero means no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// Microseconds between requests at the sustained rate.
    pub req_interval_us: f64,
    /// Requests admitted at once.
    pub burst: u32,
    /// Microseconds per token.
    pub tok_interval_us: f64,
    /// Leases at once.
    pub concurrent: u32,
    /// As configured, for headers.
    pub requests_per_minute: u64,
    /// As configured, for headers.
    pub tokens_per_minute: u64,
}

impl Spec {
    /// From configured limits.
    pub fn from_limits(l: &RateLimits) -> Self {
        let rpm = u64::from(l.requests_per_minute.unwrap_or(0));
        let tpm = l.tokens_per_minute.unwrap_or(0);
        Self {
            req_interval_us: if rpm == 0 {
                0.0
            } else {
                MINUTE_US / rpm as f64
            },
            burst: l.effective_burst(),
            tok_interval_us: if tpm == 0 {
                0.0
            } else {
                MINUTE_US / tpm as f64
            },
            concurrent: l.concurrent.unwrap_or(0),
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
        }
    }

    /// The configured value of `kind`.
    pub fn limit_of(&self, kind: LimitKind) -> u64 {
        match kind {
            LimitKind::Requests => self.requests_per_minute,
            LimitKind::Tokens => self.tokens_per_minute,
            LimitKind::Concurrent => u64::from(self.concurrent),
        }
    }
}

/// A refusal: which limit, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Check {
    /// The limit.
    pub limit: LimitKind,
    /// Until a retry can succeed.
    pub retry_after: Duration,
}

/// What is left of a limit after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Requests (or tokens) that could still be sent right now.
    pub remaining: u64,
    /// Until the limit is fully replenished.
    pub reset: Duration,
}

/// The windows of one scope after admission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Windows {
    /// Requests window, when the scope limits requests.
    pub requests: Option<Window>,
    /// Tokens window, when the scope limits tokens.
    pub tokens: Option<Window>,
}

/// The outcome of admitting a request against several scopes.
#[derive(Debug, Clone, PartialEq)]
pub enum Admit {
    /// Counted in every scope; windows in scope order.
    Admitted(Vec<Windows>),
    /// Nothing counted; `index` is the first scope that refused.
    Refused {
        /// Scope position.
        index: usize,
        /// The limit that refused, and when a retry can succeed.
        check: Check,
    },
}

/// The state of one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct State {
    /// Requests TAT, microseconds.
    pub req_tat: f64,
    /// Tokens TAT, microseconds.
    pub tok_tat: f64,
    /// Leases held.
    pub in_flight: u32,
}

fn us(v: f64) -> Duration {
    Duration::from_micros(v.max(0.0).ceil() as u64)
}

/// Whether `spec` admits one more request now, without changing `state`.
pub fn check(spec: &Spec, state: &State, now: f64) -> Result<(), Check> {
    if spec.req_interval_us > 0.0 {
        let tat = state.req_tat.max(now);
        let allow_at = tat + spec.req_interval_us - f64::from(spec.burst) * spec.req_interval_us;
        if now < allow_at {
            return Err(Check {
                limit: LimitKind::Requests,
                retry_after: us(allow_at - now),
            });
        }
    }
    if spec.tok_interval_us > 0.0 {
        let tat = state.tok_tat.max(now);
        if tat - now >= MINUTE_US {
            return Err(Check {
                limit: LimitKind::Tokens,
                retry_after: us(tat - now - MINUTE_US + spec.tok_interval_us),
            });
        }
    }
    if spec.concurrent > 0 && state.in_flight >= spec.concurrent {
        return Err(Check {
            limit: LimitKind::Concurrent,
            // A slot frees when some request ends; a second is a reasonable first retry.
            retry_after: Duration::from_secs(1),
        });
    }
    Ok(())
}

/// Counts an admitted request (after [`check`] passed) and reports what is left.
pub fn commit(spec: &Spec, state: &mut State, now: f64) -> Windows {
    let mut w = Windows::default();
    if spec.req_interval_us > 0.0 {
        let tat = state.req_tat.max(now) + spec.req_interval_us;
        state.req_tat = tat;
        let span = f64::from(spec.burst) * spec.req_interval_us;
        w.requests = Some(Window {
            remaining: ((span - (tat - now)) / spec.req_interval_us)
                .floor()
                .max(0.0) as u64,
            reset: us(tat - now),
        });
    }
    if spec.tok_interval_us > 0.0 {
        let tat = state.tok_tat.max(now);
        w.tokens = Some(Window {
            remaining: ((MINUTE_US - (tat - now)) / spec.tok_interval_us)
                .floor()
                .max(0.0) as u64,
            reset: us(tat - now),
        });
    }
    if spec.concurrent > 0 {
        state.in_flight += 1;
    }
    w
}

/// Charges the tokens a request used and releases its lease.
pub fn settle(spec: &Spec, state: &mut State, now: f64, tokens: u64) {
    if spec.tok_interval_us > 0.0 && tokens > 0 {
        state.tok_tat = state.tok_tat.max(now) + tokens as f64 * spec.tok_interval_us;
    }
    if spec.concurrent > 0 {
        state.in_flight = state.in_flight.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(rpm: u32, burst: u32) -> Spec {
        Spec::from_limits(&RateLimits {
            requests_per_minute: Some(rpm),
            burst: Some(burst),
            ..RateLimits::default()
        })
    }

    fn admit(s: &Spec, st: &mut State, now: f64) -> bool {
        match check(s, st, now) {
            Ok(()) => {
                commit(s, st, now);
                true
            }
            Err(_) => false,
        }
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let s = spec(60, 3); // one per second, three at once
        let mut st = State::default();
        let now = 1e9;
        assert!(admit(&s, &mut st, now));
        assert!(admit(&s, &mut st, now));
        assert!(admit(&s, &mut st, now));
        let refused = check(&s, &st, now).unwrap_err();
        assert_eq!(refused.limit, LimitKind::Requests);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert!(!admit(&s, &mut st, now + 999_000.0));
        assert!(admit(&s, &mut st, now + 1_000_000.0));
    }

    #[test]
    fn windows_report_what_is_left() {
        let s = spec(600, 10);
        let mut st = State::default();
        let w = commit(&s, &mut st, 0.0).requests.unwrap();
        assert_eq!(w.remaining, 9);
        assert_eq!(w.reset, Duration::from_millis(100));
    }

    #[test]
    fn tokens_are_checked_before_and_charged_after() {
        let s = Spec::from_limits(&RateLimits {
            tokens_per_minute: Some(600), // 100 ms per token
            ..RateLimits::default()
        });
        let mut st = State::default();
        assert!(admit(&s, &mut st, 0.0));
        // The request used more than a minute's budget: the next one waits for it.
        settle(&s, &mut st, 0.0, 700);
        let c = check(&s, &st, 0.0).unwrap_err();
        assert_eq!(c.limit, LimitKind::Tokens);
        assert_eq!(
            c.retry_after,
            Duration::from_secs(10) + Duration::from_millis(100)
        );
        assert!(check(&s, &st, 10_100_000.0).is_ok());
        // At 30 s the debt (70 s of tokens) leaves 40 s: 20 s of budget, 200 tokens.
        let w = commit(&s, &mut st, 30_000_000.0).tokens.unwrap();
        assert_eq!(w.remaining, 200);
        assert_eq!(w.reset, Duration::from_secs(40));
    }

    #[test]
    fn concurrency_is_a_count_of_leases() {
        let s = Spec::from_limits(&RateLimits {
            concurrent: Some(2),
            ..RateLimits::default()
        });
        let mut st = State::default();
        assert!(admit(&s, &mut st, 0.0));
        assert!(admit(&s, &mut st, 0.0));
        assert_eq!(
            check(&s, &st, 0.0).unwrap_err().limit,
            LimitKind::Concurrent
        );
        settle(&s, &mut st, 0.0, 0);
        assert!(admit(&s, &mut st, 0.0));
    }

    proptest! {
        /// Over any arrival pattern, GCRA admits at most burst + elapsed/interval requests,
        /// and never refuses a request that arrives after a full interval of silence.
        #[test]
        fn admitted_never_exceed_burst_plus_rate(
            rpm in 1u32..100_000,
            burst in 1u32..50,
            gaps in proptest::collection::vec(0.0f64..2_000_000.0, 1..300),
        ) {
            let s = spec(rpm, burst);
            let mut st = State::default();
            let start = 5e12;
            let mut now = start;
            let mut admitted = 0u64;
            let mut last = None;
            for g in gaps {
                now += g;
                if let Some(l) = last {
                    if now - l >= s.req_interval_us * f64::from(burst) {
                        prop_assert!(check(&s, &st, now).is_ok());
                    }
                }
                if admit(&s, &mut st, now) {
                    admitted += 1;
                    last = Some(now);
                }
            }
            let bound = f64::from(burst) + (now - start) / s.req_interval_us;
            prop_assert!(admitted as f64 <= bound + 1e-6, "{admitted} > {bound}");
        }
    }
}
