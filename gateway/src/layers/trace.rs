//! A `tracing` span around each domain layer. The inner layer is called inside the span, so
//! spans nest as the layers do: http.request → audit → template → policy → guard.input → ...
//! → router, and the engine's span (with TTFT and tokens) under the router's.

use std::task::{Context, Poll};

use tracing::instrument::{Instrument, Instrumented};

use crate::domain::ChatRequest;

/// Puts the wrapped layer's work in a span named `name` (the OpenTelemetry span name).
#[derive(Debug, Clone, Copy)]
pub struct SpanLayer(pub &'static str);

impl<S> tower::Layer<S> for SpanLayer {
    type Service = Spanned<S>;

    fn layer(&self, inner: S) -> Spanned<S> {
        Spanned {
            inner,
            name: self.0,
        }
    }
}

/// See [`SpanLayer`].
#[derive(Debug, Clone)]
pub struct Spanned<S> {
    inner: S,
    name: &'static str,
}

impl<S> tower::Service<ChatRequest> for Spanned<S>
where
    S: tower::Service<ChatRequest>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let span = tracing::info_span!(
            "gatehouse.layer",
            otel.name = self.name,
            gatehouse.model = %req.model,
        );
        // Layers call their inner service before returning their future: enter the span
        // for that too, so the inner layer's span is this one's child.
        let fut = span.in_scope(|| self.inner.call(req));
        fut.instrument(span)
    }
}
