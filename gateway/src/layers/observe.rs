//! Wraps an answer stream to record time to first token, decode speed, running and
//! cancelled generations, and to hold the model's admission slot until the stream ends.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::Stream;
use tokio::sync::OwnedSemaphorePermit;

use crate::domain::ChatEvent;
use crate::error::ApiError;
use crate::layers::ChatStream;
use crate::metrics::Metrics;

/// An observed answer stream; see the module docs.
pub struct Observed {
    inner: ChatStream,
    model: String,
    start: Instant,
    first_token: Option<Instant>,
    metrics: Arc<Metrics>,
    finished: bool,
    span: tracing::Span,
    _permit: OwnedSemaphorePermit,
}

impl Observed {
    /// Starts observing; counts the generation as running.
    pub fn new(
        inner: ChatStream,
        model: String,
        start: Instant,
        metrics: Arc<Metrics>,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        metrics.running.with_label_values(&[&model]).inc();
        Self {
            inner,
            model,
            start,
            first_token: None,
            metrics,
            finished: false,
            span: tracing::Span::none(),
            _permit: permit,
        }
    }

    /// Records TTFT, tokens and cancellation on `span`, which ends with the stream.
    pub fn with_span(mut self, span: tracing::Span) -> Self {
        self.span = span;
        self
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.metrics.running.with_label_values(&[&self.model]).dec();
        }
    }
}

impl Stream for Observed {
    type Item = Result<ChatEvent, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        match &item {
            Some(Ok(ChatEvent::Delta(t))) if this.first_token.is_none() && !t.is_empty() => {
                let now = Instant::now();
                this.first_token = Some(now);
                // i64: OpenTelemetry attributes have no unsigned integers.
                this.span
                    .record("gatehouse.ttft_ms", (now - this.start).as_millis() as i64);
                this.metrics
                    .ttft
                    .with_label_values(&[&this.model])
                    .observe((now - this.start).as_secs_f64());
            }
            Some(Ok(ChatEvent::Done {
                usage,
                finish_reason,
            })) => {
                this.span
                    .record("gen_ai.usage.input_tokens", usage.prompt_tokens as i64)
                    .record("gen_ai.usage.output_tokens", usage.completion_tokens as i64)
                    .record("gen_ai.response.finish_reasons", finish_reason.as_str());
                this.metrics
                    .output_tokens
                    .with_label_values(&[&this.model])
                    .inc_by(usage.completion_tokens);
                if let Some(s) = &usage.speculative {
                    this.metrics.speculative.record(&this.model, s);
                }
                if let Some(first) = this.first_token {
                    let secs = first.elapsed().as_secs_f64();
                    // The first token's own time is prefill; speed counts the rest.
                    if usage.completion_tokens > 1 && secs > 0.0 {
                        let tps = (usage.completion_tokens - 1) as f64 / secs;
                        this.metrics
                            .tokens_per_second
                            .with_label_values(&[&this.model])
                            .observe(tps);
                    }
                }
                this.finish();
            }
            Some(Err(_)) | None => this.finish(),
            _ => {}
        }
        Poll::Ready(item)
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped before its end: the client went away; dropping `inner` cancels generation.
            self.span.record("gatehouse.cancelled", true);
            self.metrics
                .cancelled
                .with_label_values(&[&self.model])
                .inc();
            self.finish();
        }
    }
}
