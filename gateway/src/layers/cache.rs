//! The response cache layer, after the input guard and before retrieval (DESIGN.md): a hit
//! replays the stored answer (as a stream when the client streams); a miss passes on and
//! stores the answer once it completes. Only whole answers are stored: a stream that fails,
//! is blocked by an output rule or is dropped by the client leaves nothing behind.

use std::sync::Arc;

use futures::StreamExt;

use crate::cache::{cache_key, cacheable, CachedEvent, CachedRetrieval, Entry, ResponseCache};
use crate::config::FailMode;
use crate::domain::{ChatEvent, ChatRequest, RetrievalRun, ToolCall, Usage};
use crate::error::ApiError;
use crate::layers::step::{Next, Step};
use crate::layers::ChatStream;
use crate::metrics::Metrics;

/// See the module docs; `None` turns it off.
pub struct Cache {
    cache: Option<Arc<ResponseCache>>,
    metrics: Arc<Metrics>,
}

impl Cache {
    /// Caches in `cache`.
    pub fn new(cache: Option<Arc<ResponseCache>>, metrics: Arc<Metrics>) -> Self {
        Self { cache, metrics }
    }

    fn count(&self, result: &str) {
        self.metrics.fleet.cache.with_label_values(&[result]).inc();
    }
}

impl Step for Cache {
    const NAME: &'static str = "cache";

    async fn call(&self, req: ChatRequest, next: Next) -> Result<ChatStream, ApiError> {
        let Some(cache) = self.cache.clone() else {
            return next.run(req).await;
        };
        if cacheable(&req, cache.config()).is_err() {
            req.trail.update(|t| t.cache = Some("bypass"));
            self.count("bypass");
            return next.run(req).await;
        }
        let key = cache_key(&req);
        let control = req.cache_control;
        if !control.no_cache {
            match cache.get(&key).await {
                Ok(Some(entry)) => {
                    self.count("hit");
                    req.trail.update(|t| {
                        t.cache = Some("hit");
                        t.retrieval = entry.retrieval.clone().map(retrieval_run);
                    });
                    return Ok(replay(entry));
                }
                Ok(None) => {}
                Err(e) => {
                    self.count("error");
                    if cache.on_error() == FailMode::Closed {
                        return Err(ApiError::CacheUnavailable(e.to_string()));
                    }
                    // Served without the cache; storing would fail the same way.
                    req.trail.update(|t| t.cache = Some("bypass"));
                    return next.run(req).await;
                }
            }
        }
        let result = if control.no_cache { "bypass" } else { "miss" };
        self.count(result);
        req.trail.update(|t| t.cache = Some(result));
        let trail = req.trail.clone();
        let answer = next.run(req).await?;
        if control.no_store {
            return Ok(answer);
        }
        Ok(record(answer, move |mut entry| {
            entry.retrieval = trail.snapshot().retrieval.map(|r| CachedRetrieval {
                collection: r.collection,
                tenant: r.tenant,
                status: r.status.to_string(),
                citations: r.citations,
            });
            async move {
                // Bounded by the store's own timeout (`redis.timeout_ms`).
                if let Err(e) = cache.put(&key, &entry).await {
                    tracing::debug!(error = %e, "response not cached");
                }
            }
        }))
    }
}

/// The stored answer as a stream of events.
fn replay(entry: Entry) -> ChatStream {
    let mut events: Vec<Result<ChatEvent, ApiError>> = entry
        .events
        .into_iter()
        .map(|e| {
            Ok(match e {
                CachedEvent::Delta(t) => ChatEvent::Delta(t),
                CachedEvent::ToolCall {
                    id,
                    name,
                    arguments,
                } => ChatEvent::ToolCall(ToolCall {
                    id,
                    name,
                    arguments,
                }),
            })
        })
        .collect();
    events.push(Ok(ChatEvent::Done {
        finish_reason: entry.finish_reason,
        usage: Usage {
            prompt_tokens: entry.prompt_tokens,
            completion_tokens: entry.completion_tokens,
            speculative: None,
        },
    }));
    futures::stream::iter(events).boxed()
}

fn retrieval_run(r: CachedRetrieval) -> RetrievalRun {
    RetrievalRun {
        collection: r.collection,
        tenant: r.tenant,
        status: match r.status.as_str() {
            "empty" => "empty",
            "error" => "error",
            _ => "ok",
        },
        citations: r.citations,
        dropped: Vec::new(),
        error: None,
        elapsed_ms: 0,
    }
}

/// Passes `answer` on, collecting it; once it completes, `store` gets the whole answer and
/// is awaited before the final event goes out, so a client that repeats the request after
/// receiving the answer finds it in the cache. Failed or dropped answers are not stored.
fn record<F, Fut>(answer: ChatStream, store: F) -> ChatStream
where
    F: FnOnce(Entry) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    struct State<F> {
        answer: ChatStream,
        events: Vec<CachedEvent>,
        failed: bool,
        store: Option<F>,
    }
    let state = State {
        answer,
        events: Vec::new(),
        failed: false,
        store: Some(store),
    };
    futures::stream::unfold(state, |mut s| async move {
        let e = s.answer.next().await?;
        match &e {
            Ok(ChatEvent::Delta(t)) => match s.events.last_mut() {
                // Consecutive deltas are merged: the replay need not keep token boundaries.
                Some(CachedEvent::Delta(prev)) => prev.push_str(t),
                _ => s.events.push(CachedEvent::Delta(t.clone())),
            },
            Ok(ChatEvent::ToolCall(c)) => s.events.push(c.into()),
            Ok(ChatEvent::Done {
                finish_reason,
                usage,
            }) => {
                if let (false, Some(store)) = (s.failed, s.store.take()) {
                    store(Entry {
                        events: std::mem::take(&mut s.events),
                        finish_reason: *finish_reason,
                        prompt_tokens: usage.prompt_tokens,
                        completion_tokens: usage.completion_tokens,
                        retrieval: None,
                    })
                    .await;
                }
            }
            Err(_) => s.failed = true,
        }
        Some((e, s))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FinishReason;

    fn done() -> ChatEvent {
        ChatEvent::Done {
            finish_reason: FinishReason::Stop,
            usage: Usage {
                prompt_tokens: 3,
                completion_tokens: 2,
                speculative: None,
            },
        }
    }

    #[tokio::test]
    async fn whole_answers_are_recorded_and_replayed_the_same() {
        let (tx, rx) = std::sync::mpsc::channel();
        let answer = futures::stream::iter(vec![
            Ok(ChatEvent::Delta("Hel".into())),
            Ok(ChatEvent::Delta("lo".into())),
            Ok(done()),
        ])
        .boxed();
        let seen: Vec<_> = record(answer, move |e| {
            tx.send(e).unwrap();
            std::future::ready(())
        })
        .collect()
        .await;
        let entry = rx.recv().unwrap();
        assert_eq!(entry.events, vec![CachedEvent::Delta("Hello".into())]);
        let replayed: Vec<_> = replay(entry).map(|e| e.unwrap()).collect().await;
        assert_eq!(replayed, vec![ChatEvent::Delta("Hello".into()), done()]);
        assert_eq!(seen.len(), 3);
    }

    #[tokio::test]
    async fn the_answer_is_stored_before_its_last_event_goes_out() {
        let stored = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stored.clone();
        let answer =
            futures::stream::iter(vec![Ok(ChatEvent::Delta("x".into())), Ok(done())]).boxed();
        let mut s = record(answer, move |_| async move {
            // A store that takes a while, as a Redis round trip does.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(matches!(s.next().await, Some(Ok(ChatEvent::Delta(_)))));
        assert!(!stored.load(std::sync::atomic::Ordering::SeqCst));
        assert!(matches!(s.next().await, Some(Ok(ChatEvent::Done { .. }))));
        assert!(stored.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn failed_or_dropped_answers_are_not_recorded() {
        let (tx, rx) = std::sync::mpsc::channel::<Entry>();
        let answer = futures::stream::iter(vec![
            Ok(ChatEvent::Delta("x".into())),
            Err(ApiError::Timeout),
            Ok(done()),
        ])
        .boxed();
        let _: Vec<_> = record(answer, move |e| {
            tx.send(e).unwrap();
            std::future::ready(())
        })
        .collect()
        .await;
        assert!(rx.try_recv().is_err());

        let (tx, rx) = std::sync::mpsc::channel::<Entry>();
        let answer =
            futures::stream::iter(vec![Ok(ChatEvent::Delta("x".into())), Ok(done())]).boxed();
        let mut s = record(answer, move |e| {
            tx.send(e).unwrap();
            std::future::ready(())
        });
        let _ = s.next().await;
        drop(s);
        assert!(rx.try_recv().is_err());
    }
}
