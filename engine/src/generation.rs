//! A generation's stream: engine responses become text deltas (stop sequences applied) and
//! a final `Finished`; dropping the stream cancels the sequence.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use mistralrs::core::Response;
use tokio::sync::mpsc;

use crate::speculative::SpeculativeSequence;
use crate::stop::StopMatcher;
use crate::{EngineError, FinishReason, GenerationEvent, Usage};

type Out = mpsc::UnboundedSender<Result<GenerationEvent, EngineError>>;

/// A model's live sequences and the tokens their KV caches hold, summed over them.
#[derive(Debug, Default)]
pub(crate) struct LiveCounts {
    pub sequences: AtomicUsize,
    pub kv_tokens: AtomicUsize,
}

/// One sequence's share of [`LiveCounts`], given back when the sequence ends (dropped).
pub(crate) struct Live {
    counts: Arc<LiveCounts>,
    tokens: usize,
}

impl Live {
    pub(crate) fn new(counts: Arc<LiveCounts>) -> Self {
        counts.sequences.fetch_add(1, Ordering::Relaxed);
        Self { counts, tokens: 0 }
    }

    /// The sequence now holds `tokens` (engine patch 0007 reports them on every chunk).
    fn hold(&mut self, tokens: usize) {
        let kv = &self.counts.kv_tokens;
        if tokens >= self.tokens {
            kv.fetch_add(tokens - self.tokens, Ordering::Relaxed);
        } else {
            kv.fetch_sub(self.tokens - tokens, Ordering::Relaxed);
        }
        self.tokens = tokens;
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.counts
            .kv_tokens
            .fetch_sub(self.tokens, Ordering::Relaxed);
        self.counts.sequences.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Moves engine responses to the consumer, applying stop sequences. Returns (dropping the
/// engine receiver, which cancels the sequence) when the consumer goes away.
pub(crate) async fn forward(
    mut rx: mpsc::Receiver<Response>,
    out: Out,
    mut stop: StopMatcher,
    hook: Option<Arc<SpeculativeSequence>>,
    mut live: Live,
) {
    let speculative = || hook.as_ref().map(|h| h.stats());
    let mut tokens = 0u64;
    let mut stopped = false;
    loop {
        let resp = tokio::select! {
            r = rx.recv() => r,
            _ = out.closed() => return,
        };
        let Some(resp) = resp else {
            // Closed without a finish chunk: the last token ended in an incomplete UTF-8
            // sequence (mistral.rs sends nothing then). Prompt size is unknown here.
            let tail = stop.flush();
            if !tail.is_empty() && !stopped {
                let _ = out.send(Ok(GenerationEvent::Delta(tail)));
            }
            let usage = Usage {
                prompt_tokens: 0,
                completion_tokens: tokens,
                speculative: speculative(),
            };
            let _ = out.send(Ok(GenerationEvent::Finished {
                reason: FinishReason::Stop,
                usage,
            }));
            return;
        };
        match resp {
            Response::Chunk(chunk) => {
                tokens += 1;
                if let Some(u) = &chunk.usage {
                    live.hold(u.total_tokens);
                }
                let Some(choice) = chunk.choices.into_iter().next() else {
                    continue;
                };
                if !stopped {
                    if let Some(text) = choice.delta.content.as_deref() {
                        let pushed = stop.push(text);
                        stopped = pushed.stopped;
                        if !pushed.emit.is_empty()
                            && out.send(Ok(GenerationEvent::Delta(pushed.emit))).is_err()
                        {
                            return;
                        }
                    }
                }
                if let Some(reason) = choice.finish_reason {
                    let reason = match reason.as_str() {
                        "length" => FinishReason::Length,
                        "error" => {
                            let _ = out.send(Err(EngineError::Model("generation failed".into())));
                            return;
                        }
                        _ => FinishReason::Stop,
                    };
                    if !stopped {
                        let tail = stop.flush();
                        if !tail.is_empty() {
                            let _ = out.send(Ok(GenerationEvent::Delta(tail)));
                        }
                    }
                    let usage = chunk
                        .usage
                        .map(|u| Usage {
                            prompt_tokens: u.prompt_tokens as u64,
                            completion_tokens: u.completion_tokens as u64,
                            speculative: speculative(),
                        })
                        .unwrap_or(Usage {
                            prompt_tokens: 0,
                            completion_tokens: tokens,
                            speculative: speculative(),
                        });
                    let reason = if stopped { FinishReason::Stop } else { reason };
                    let _ = out.send(Ok(GenerationEvent::Finished { reason, usage }));
                    return;
                }
            }
            Response::ModelError(msg, _) => {
                let _ = out.send(Err(EngineError::Model(msg)));
                return;
            }
            Response::ValidationError(e) => {
                let _ = out.send(Err(EngineError::Validation(e.to_string())));
                return;
            }
            Response::InternalError(e) => {
                let _ = out.send(Err(EngineError::Internal(e.to_string())));
                return;
            }
            _ => {
                let _ = out.send(Err(EngineError::Internal(
                    "unexpected engine response kind".into(),
                )));
                return;
            }
        }
    }
}

/// A generation in progress: text deltas, then `Finished`. Dropping it cancels generation.
pub struct Generation {
    rx: mpsc::UnboundedReceiver<Result<GenerationEvent, EngineError>>,
}

impl Generation {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<Result<GenerationEvent, EngineError>>) -> Self {
        Self { rx }
    }

    /// Runs the generation to its end: the whole text and its usage.
    pub async fn run_to_end(mut self) -> Result<(String, Usage), EngineError> {
        let mut text = String::new();
        while let Some(event) = self.next().await {
            match event? {
                GenerationEvent::Delta(t) => text.push_str(&t),
                GenerationEvent::Finished { usage, .. } => return Ok((text, usage)),
            }
        }
        Err(EngineError::EngineGone)
    }
}

impl Stream for Generation {
    type Item = Result<GenerationEvent, EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_counts_follow_each_sequence_and_are_given_back() {
        let counts = Arc::new(LiveCounts::default());
        let mut a = Live::new(counts.clone());
        let mut b = Live::new(counts.clone());
        a.hold(100);
        b.hold(40);
        a.hold(101);
        assert_eq!(counts.sequences.load(Ordering::Relaxed), 2);
        assert_eq!(counts.kv_tokens.load(Ordering::Relaxed), 141);
        // A sequence can shrink (a rejected speculative draft is rolled back).
        a.hold(90);
        assert_eq!(counts.kv_tokens.load(Ordering::Relaxed), 130);
        drop(a);
        assert_eq!(counts.sequences.load(Ordering::Relaxed), 1);
        assert_eq!(counts.kv_tokens.load(Ordering::Relaxed), 40);
        drop(b);
        assert_eq!(counts.sequences.load(Ordering::Relaxed), 0);
        assert_eq!(counts.kv_tokens.load(Ordering::Relaxed), 0);
    }
}
