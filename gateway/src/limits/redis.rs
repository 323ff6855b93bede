//! The limiter in Redis: `admit.lua` and `settle.lua`, one round trip each.

use std::sync::LazyLock;
use std::time::Duration;

use super::gcra::{Admit, Check, LimitKind, Spec, Window, Windows};
use super::LEASE_TTL;
use crate::kv::{Feature, Kv, KvError};

static ADMIT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("admit.lua")));
static SETTLE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("settle.lua")));

fn keys(kv: &Kv, name: &str) -> [String; 3] {
    ["req", "tok", "conc"].map(|part| kv.key(&["rl", name, part]))
}

/// Admits against `scopes` in Redis; `now` (microseconds) overrides Redis' clock (tests).
pub(super) async fn admit_at(
    kv: &Kv,
    lease: &str,
    scopes: &[(String, Spec)],
    now: Option<f64>,
) -> Result<Admit, KvError> {
    if scopes.is_empty() {
        return Ok(Admit::Admitted(Vec::new()));
    }
    let mut inv = ADMIT.prepare_invoke();
    for (name, _) in scopes {
        for k in keys(kv, name) {
            inv.key(k);
        }
    }
    inv.arg(now.map(|n| format!("{n:.0}")).unwrap_or_default())
        .arg(lease)
        .arg(LEASE_TTL.as_millis() as u64);
    for (_, s) in scopes {
        inv.arg(s.req_interval_us)
            .arg(s.burst)
            .arg(s.tok_interval_us)
            .arg(s.concurrent);
    }
    let out: Vec<i64> = kv
        .run(Feature::RateLimits, |mut c| async move {
            inv.invoke_async(&mut c).await
        })
        .await?;
    decode(kv, &out, scopes.len())
}

fn decode(kv: &Kv, out: &[i64], n: usize) -> Result<Admit, KvError> {
    let corrupt = |m: &str| {
        let e = KvError::Corrupt {
            key: "rate limit script".into(),
            message: m.into(),
        };
        kv.failed(Feature::RateLimits, &e);
        e
    };
    match out {
        [0, index, limit, retry] => Ok(Admit::Refused {
            index: usize::try_from(*index).map_err(|_| corrupt("negative scope"))?,
            check: Check {
                limit: match limit {
                    1 => LimitKind::Requests,
                    2 => LimitKind::Tokens,
                    _ => LimitKind::Concurrent,
                },
                retry_after: Duration::from_micros((*retry).max(0) as u64),
            },
        }),
        [1, rest @ ..] if rest.len() == n * 4 => Ok(Admit::Admitted(
            rest.chunks(4)
                .map(|c| {
                    let window = |remaining: i64, reset: i64| {
                        (remaining >= 0).then(|| Window {
                            remaining: remaining as u64,
                            reset: Duration::from_micros(reset.max(0) as u64),
                        })
                    };
                    Windows {
                        requests: window(c[0], c[1]),
                        tokens: window(c[2], c[3]),
                    }
                })
                .collect(),
        )),
        _ => Err(corrupt(&format!("unexpected reply {out:?}"))),
    }
}

pub(super) async fn admit(
    kv: &Kv,
    lease: &str,
    scopes: &[(String, Spec)],
) -> Result<Admit, KvError> {
    admit_at(kv, lease, scopes, None).await
}

/// Charges `tokens` and releases the lease in every scope.
pub(super) async fn settle_at(
    kv: &Kv,
    lease: &str,
    scopes: &[(String, Spec)],
    tokens: u64,
    now: Option<f64>,
) -> Result<(), KvError> {
    let mut inv = SETTLE.prepare_invoke();
    for (name, _) in scopes {
        let [_, tok, conc] = keys(kv, name);
        inv.key(tok).key(conc);
    }
    inv.arg(now.map(|n| format!("{n:.0}")).unwrap_or_default())
        .arg(lease)
        .arg(tokens);
    for (_, s) in scopes {
        inv.arg(s.tok_interval_us).arg(s.concurrent);
    }
    let _: i64 = kv
        .run(Feature::RateLimits, |mut c| async move {
            inv.invoke_async(&mut c).await
        })
        .await?;
    Ok(())
}

pub(super) async fn settle(
    kv: &Kv,
    lease: &str,
    scopes: &[(String, Spec)],
    tokens: u64,
) -> Result<(), KvError> {
    settle_at(kv, lease, scopes, tokens, None).await
}

#[cfg(test)]
mod tests {
    //! Against the real Redis on 127.0.0.1:6379 (as on the development and CI machines),
    //! under a prefix of their own.
    use proptest::prelude::*;

    use super::super::gcra::{Admit, Spec};
    use super::super::memory::MemoryLimiter;
    use super::*;
    use crate::config::RateLimits;

    fn kv() -> Kv {
        Kv::local_for_tests(&format!("gh-test-{}", uuid::Uuid::new_v4().simple()))
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[derive(Debug, Clone)]
    enum Op {
        Admit(usize),
        Settle(u64),
        Wait(f64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1usize..3).prop_map(Op::Admit),
            2 => (0u64..400).prop_map(Op::Settle),
            3 => (0.0f64..400_000.0).prop_map(Op::Wait),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        /// The Lua script and the Rust algorithm make the same decisions and report the same
        /// windows for any sequence of requests, settlements and pauses.
        #[test]
        fn the_script_agrees_with_the_in_process_limiter(
            rpm in 1u32..3000,
            burst in 1u32..6,
            tpm in 100u64..5000,
            conc in 1u32..4,
            ops in proptest::collection::vec(op(), 1..40),
        ) {
            let rt = rt();
            // The connection's tasks live on this case's runtime.
            let _in_rt = rt.enter();
            let kv = kv();
            let mem = MemoryLimiter::default();
            let tenant = Spec::from_limits(&RateLimits {
                requests_per_minute: Some(rpm),
                burst: Some(burst),
                tokens_per_minute: Some(tpm),
                concurrent: Some(conc),
            });
            let key = Spec::from_limits(&RateLimits { concurrent: Some(conc.saturating_sub(1).max(1)), ..RateLimits::default() });
            let all = [("{t}:t".to_string(), tenant), ("{t}:k:a".to_string(), key)];
            let mut now = 1.7e15;
            let mut leases: Vec<(String, usize)> = Vec::new();
            for (i, o) in ops.into_iter().enumerate() {
                match o {
                    Op::Admit(n) => {
                        let lease = format!("l{i}");
                        let scopes = &all[..n];
                        let r = rt.block_on(admit_at(&kv, &lease, scopes, Some(now))).expect("redis");
                        let m = mem.admit(&lease, scopes, Some(now));
                        prop_assert_eq!(&r, &m);
                        if matches!(r, Admit::Admitted(_)) {
                            leases.push((lease, n));
                        }
                    }
                    Op::Settle(tokens) => {
                        if let Some((lease, n)) = leases.pop() {
                            rt.block_on(settle_at(&kv, &lease, &all[..n], tokens, Some(now))).expect("redis");
                            mem.settle(&lease, &all[..n], tokens, Some(now));
                        }
                    }
                    // Whole microseconds, like the clock of Redis.
                    Op::Wait(us) => now += us.round(),
                }
            }
        }
    }
}
