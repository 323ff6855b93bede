//! The output guard: wraps the answer stream in a [`StreamGuard`], so streamed and
//! non-streamed answers are checked and redacted by the same code, chunk by chunk.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};

use crate::domain::{ChatEvent, ChatRequest, GuardContext};
use crate::error::ApiError;
use crate::layers::step::{Next, Step};
use crate::layers::ChatStream;
use crate::metrics::Metrics;
use crate::policy::stream::StreamGuard;
use crate::policy::{Blocked, Stage};

/// See the module docs.
pub struct OutputGuard {
    metrics: Arc<Metrics>,
}

impl OutputGuard {
    /// Counts decisions in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl Step for OutputGuard {
    const NAME: &'static str = "guard.output";

    async fn call(&self, req: ChatRequest, next: Next) -> Result<ChatStream, ApiError> {
        let guard = req.guard.clone();
        let stream = next.run(req).await?;
        let Some(policy) = guard.policy().cloned() else {
            return Ok(stream);
        };
        let s = policy.stage(Stage::Output);
        if s.scanning.is_empty() && s.schemas.is_empty() {
            return Ok(stream);
        }
        let sg = StreamGuard::new(policy, Stage::Output, guard.redactor());
        Ok(GuardedStream::new(stream, sg, guard, self.metrics.clone()).boxed())
    }
}

/// An answer stream seen through a [`StreamGuard`]: deltas come out redacted and possibly
/// regrouped; a block ends the stream with a `policy_violation` error and cancels
/// generation.
pub struct GuardedStream {
    inner: Option<ChatStream>,
    guard: StreamGuard,
    ctx: GuardContext,
    metrics: Arc<Metrics>,
    pending: VecDeque<Result<ChatEvent, ApiError>>,
}

impl GuardedStream {
    /// Guards `inner`, recording decisions in `ctx` and `metrics`.
    pub fn new(
        inner: ChatStream,
        guard: StreamGuard,
        ctx: GuardContext,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Some(inner),
            guard,
            ctx,
            metrics,
            pending: VecDeque::new(),
        }
    }

    fn flush_decisions(&mut self) {
        let d = self.guard.take_decisions();
        self.metrics.policy.record(&d);
        self.ctx.record(d);
    }

    fn handle(&mut self, item: Option<Result<ChatEvent, ApiError>>) {
        let released = match item {
            Some(Ok(ChatEvent::Delta(t))) => self.guard.push(&t).map(|s| (s, None)),
            Some(Ok(done @ ChatEvent::Done { .. })) => {
                self.inner = None;
                self.guard.finish().map(|s| (s, Some(done)))
            }
            Some(Ok(call @ ChatEvent::ToolCall(_))) => {
                // Calls are checked by the tool layer's tool_arguments stage.
                self.pending.push_back(Ok(call));
                return;
            }
            Some(Err(e)) => {
                // Held-back text was never checked in full: it is dropped with the stream.
                self.inner = None;
                self.pending.push_back(Err(e));
                return;
            }
            None => {
                self.inner = None;
                return;
            }
        };
        self.flush_decisions();
        match released {
            Ok((text, done)) => {
                if !text.is_empty() {
                    self.pending.push_back(Ok(ChatEvent::Delta(text)));
                }
                if let Some(done) = done {
                    self.pending.push_back(Ok(done));
                }
            }
            Err(b) => self.block(b),
        }
    }

    fn block(&mut self, b: Box<Blocked>) {
        // Dropping the inner stream cancels generation.
        self.inner = None;
        self.pending.push_back(Err(ApiError::PolicyViolation(b)));
    }
}

impl Stream for GuardedStream {
    type Item = Result<ChatEvent, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(ev) = this.pending.pop_front() {
                return Poll::Ready(Some(ev));
            }
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            match inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => this.handle(item),
            }
        }
    }
}
