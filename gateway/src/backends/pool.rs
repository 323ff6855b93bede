//! A model served by several backends (local replicas or remote upstreams), routed by
//! prompt prefix ([`crate::routing`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use redis::AsyncCommands;

use super::{Backend, BackendError, BackendStream};
use crate::config::{FailMode, RoutingPolicy};
use crate::domain::{ChatEvent, ChatRequest};
use crate::kv::{Feature, Kv};
use crate::metrics::Metrics;
use crate::routing::{self, Load, LocalMap, Reason};

/// How long a backend that could not be reached is skipped.
const DOWN_FOR: Duration = Duration::from_secs(5);

/// One backend of a pool.
pub struct Member {
    /// Stable id: the upstream's base URL, or `local/N`.
    pub id: String,
    /// The backend.
    pub backend: Backend,
    in_flight: Arc<AtomicUsize>,
    down_until: Mutex<Option<Instant>>,
}

impl Member {
    /// A member with nothing in flight.
    pub fn new(id: String, backend: Backend) -> Self {
        Self {
            id,
            backend,
            in_flight: Arc::new(AtomicUsize::new(0)),
            down_until: Mutex::new(None),
        }
    }

    fn load(&self) -> Load {
        let down = self
            .down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| Instant::now() < t);
        Load {
            in_flight: self.in_flight.load(Ordering::SeqCst),
            down,
        }
    }

    fn mark_down(&self) {
        *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + DOWN_FOR);
    }
}

/// Where the prefix→backend map lives.
enum Map {
    Local(LocalMap),
    Redis(Kv, FailMode),
}

/// The backends of one model and how requests are spread over them.
pub struct Pool {
    model: String,
    members: Vec<Member>,
    policy: RoutingPolicy,
    map: Map,
    next: AtomicUsize,
    metrics: Arc<Metrics>,
}

impl Pool {
    /// A pool of `members` for `model`; the map goes to Redis when `kv` is given.
    pub fn new(
        model: String,
        members: Vec<Member>,
        policy: RoutingPolicy,
        kv: Option<(Kv, FailMode)>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            model,
            members,
            policy,
            map: match kv {
                Some((kv, mode)) => Map::Redis(kv, mode),
                None => Map::Local(LocalMap::default()),
            },
            next: AtomicUsize::new(0),
            metrics,
        }
    }

    /// The members, in config order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Candidates for `req`, best first, with the reason of the first.
    async fn candidates(&self, req: &ChatRequest) -> Result<(Vec<usize>, Reason), BackendError> {
        let loads: Vec<Load> = self.members.iter().map(Member::load).collect();
        let all: Vec<usize> = (0..self.members.len()).collect();
        let rest = |first: usize| -> Vec<usize> {
            std::iter::once(first)
                .chain(all.iter().copied().filter(|&i| i != first))
                .collect()
        };
        match self.policy {
            RoutingPolicy::RoundRobin => {
                let n = self.members.len();
                let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
                let order: Vec<usize> = (0..n)
                    .map(|k| (start + k) % n)
                    .filter(|&i| !loads[i].down)
                    .collect();
                Ok((
                    if order.is_empty() { all.clone() } else { order },
                    Reason::Balance,
                ))
            }
            RoutingPolicy::LeastLoaded => Ok((
                rest(routing::least_loaded(&loads).unwrap_or(0)),
                Reason::Balance,
            )),
            RoutingPolicy::Affinity => {
                let prefix = routing::prefix_hash(req);
                let ids: Vec<&str> = self.members.iter().map(|m| m.id.as_str()).collect();
                let order = routing::rank(&prefix, &ids);
                let mapped = self.mapped(&prefix).await?;
                let preferred = mapped
                    .as_deref()
                    .and_then(|id| ids.iter().position(|x| *x == id));
                let Some((first, reason)) = routing::choose(&order, preferred, &loads) else {
                    return Ok((order, Reason::Spill));
                };
                // Record where a new prefix lands, or move it off a backend that is gone or
                // down; a spill off a busy one leaves the map alone (its cache stays warm).
                if preferred.is_none_or(|p| loads[p].down) {
                    self.remember(&prefix, &self.members[first].id);
                }
                let mut out = vec![first];
                out.extend(order.iter().copied().filter(|&i| i != first));
                Ok((out, reason))
            }
        }
    }

    async fn mapped(&self, prefix: &str) -> Result<Option<String>, BackendError> {
        match &self.map {
            Map::Local(m) => Ok(m.get(prefix)),
            Map::Redis(kv, mode) => {
                let k = kv.key(&["route", &self.model, prefix]);
                let ttl = routing::MAP_TTL.as_secs();
                let got: Result<Option<String>, _> = kv
                    .run(Feature::Routing, |mut c| async move {
                        // GETEX refreshes the TTL of a prefix in use.
                        redis::cmd("GETEX")
                            .arg(k)
                            .arg("EX")
                            .arg(ttl)
                            .query_async(&mut c)
                            .await
                    })
                    .await;
                match (got, mode) {
                    (Ok(v), _) => Ok(v),
                    (Err(_), FailMode::Open) => Ok(None),
                    (Err(e), FailMode::Closed) => Err(BackendError::Unavailable(format!(
                        "routing needs Redis: {e}"
                    ))),
                }
            }
        }
    }

    fn remember(&self, prefix: &str, id: &str) {
        match &self.map {
            Map::Local(m) => m.set(prefix, id),
            Map::Redis(kv, _) => {
                let (kv, k, id) = (
                    kv.clone(),
                    kv.key(&["route", &self.model, prefix]),
                    id.to_string(),
                );
                // Off the request path: a lost write only costs one colder cache.
                tokio::spawn(async move {
                    let _ = kv
                        .run(Feature::Routing, |mut c| async move {
                            c.set_ex::<_, _, ()>(k, id, routing::MAP_TTL.as_secs())
                                .await
                        })
                        .await;
                });
            }
        }
    }

    /// Starts `req` on the chosen backend; a backend that cannot be reached is marked down
    /// and the next candidate tried (nothing was streamed yet).
    pub async fn chat(&self, req: &ChatRequest) -> Result<BackendStream, BackendError> {
        let (order, reason) = self.candidates(req).await?;
        let mut last = None;
        for (n, &i) in order.iter().enumerate() {
            let m = &self.members[i];
            if n > 0 && m.load().down {
                continue;
            }
            m.in_flight.fetch_add(1, Ordering::SeqCst);
            let slot = InFlight(m.in_flight.clone());
            match m.backend.chat(req).await {
                Ok(stream) => {
                    let reason = if n == 0 { reason } else { Reason::Spill };
                    self.metrics
                        .fleet
                        .routed
                        .with_label_values(&[&self.model, &m.id, reason.as_str()])
                        .inc();
                    req.trail.update(|t| t.backend = Some(m.id.clone()));
                    return Ok(Box::pin(Counted {
                        inner: stream,
                        _slot: slot,
                    }));
                }
                Err(e @ (BackendError::Unreachable(_) | BackendError::UpstreamTimeout)) => {
                    tracing::warn!(model = %self.model, backend = %m.id, error = %e, "backend down; trying the next");
                    m.mark_down();
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| BackendError::Unreachable("no backend is up".into())))
    }
}

/// Decrements a member's in-flight count when the answer ends or is dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Counted {
    inner: BackendStream,
    _slot: InFlight,
}

impl Stream for Counted {
    type Item = Result<ChatEvent, BackendError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}
