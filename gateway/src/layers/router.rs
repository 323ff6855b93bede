//! The innermost domain service, where every stage's `next` ends: picks the model's
//! backend, admits, starts generation.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tracing::Instrument;

use futures::future::BoxFuture;
use futures::StreamExt;

use super::observe::Observed;
use super::step::layer_span;
use crate::domain::ChatRequest;
use crate::error::ApiError;
use crate::layers::ChatStream;
use crate::metrics::Metrics;
use crate::models::{ModelRegistry, ModelState};

/// `Service<ChatRequest>` answering with a [`ChatStream`].
#[derive(Clone)]
pub struct Router {
    models: Arc<ModelRegistry>,
    metrics: Arc<Metrics>,
}

impl Router {
    /// A router over `models`.
    pub fn new(models: Arc<ModelRegistry>, metrics: Arc<Metrics>) -> Self {
        Self { models, metrics }
    }
}

impl tower::Service<ChatRequest> for Router {
    type Response = ChatStream;
    type Error = ApiError;
    type Future = BoxFuture<'static, Result<ChatStream, ApiError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ApiError>> {
        // Backpressure is per model (admission), decided in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let models = self.models.clone();
        let metrics = self.metrics.clone();
        let span = layer_span("router", &req);
        let answer = async move {
            let start = Instant::now();
            // Here, after templates may have chosen the model.
            req.caller.require_model(&req.model)?;
            let slot = models
                .get(&req.model)
                .ok_or_else(|| ApiError::ModelNotFound(req.model.clone()))?;
            let backend = match slot.state() {
                ModelState::Ready(b) => b,
                ModelState::Loading => return Err(ApiError::ModelLoading(req.model.clone())),
                ModelState::Failed(reason) => {
                    return Err(ApiError::ModelUnavailable {
                        model: req.model.clone(),
                        reason,
                    });
                }
            };
            let permit = slot
                .admission
                .admit()
                .await
                .map_err(|_| ApiError::ModelOverloaded(req.model.clone()))?;
            // Lives as long as the answer streams; Observed records TTFT and tokens on it.
            let span = tracing::info_span!(
                "gatehouse.engine",
                otel.name = "engine",
                gatehouse.model = %req.model,
                gatehouse.backend = backend.kind(),
                gatehouse.ttft_ms = tracing::field::Empty,
                gen_ai.usage.input_tokens = tracing::field::Empty,
                gen_ai.usage.output_tokens = tracing::field::Empty,
                gen_ai.response.finish_reasons = tracing::field::Empty,
                gatehouse.cancelled = tracing::field::Empty,
            );
            let stream = backend
                .chat(&req)
                .instrument(span.clone())
                .await?
                .map(|r| r.map_err(ApiError::from))
                .boxed();
            Ok(Observed::new(stream, req.model, start, metrics, permit)
                .with_span(span)
                .boxed())
        };
        Box::pin(answer.instrument(span))
    }
}
