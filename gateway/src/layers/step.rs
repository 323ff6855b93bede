//! One abstraction for the domain stack's layers: a [`Step`] is an async function of the
//! request and the rest of the stack ([`Next`]); [`StepLayer`] makes it a tower layer and
//! runs it in its own tracing span, so a step's file holds only its logic. (Not to be
//! confused with `policy::Stage`, the point of the flow a guardrail rule applies at.)

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;
use tracing::Instrument;

use crate::domain::ChatRequest;
use crate::error::ApiError;
use crate::layers::ChatStream;

/// A step of the domain stack (DESIGN.md, request flow).
pub trait Step: Send + Sync + 'static {
    /// The step's span name, as OpenTelemetry shows it.
    const NAME: &'static str;

    /// Handles `req`, usually by changing it, calling `next` and wrapping its answer.
    fn call(
        &self,
        req: ChatRequest,
        next: Next,
    ) -> impl Future<Output = Result<ChatStream, ApiError>> + Send;
}

/// What a step can sit on: a cloneable service of the domain stack.
pub trait ChatService:
    tower::Service<ChatRequest, Response = ChatStream, Error = ApiError, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> ChatService for S where
    S: tower::Service<ChatRequest, Response = ChatStream, Error = ApiError, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The rest of the stack below a step. Cloning it is cheap; a step may run it several
/// times (the tool loop does).
#[derive(Clone)]
pub struct Next(BoxCloneSyncService<ChatRequest, ChatStream, ApiError>);

impl Next {
    /// Wraps `service` as the rest of the stack.
    pub fn new(service: impl ChatService) -> Self {
        Self(BoxCloneSyncService::new(service))
    }

    /// Passes `req` on, once the rest of the stack is ready for it.
    pub async fn run(self, req: ChatRequest) -> Result<ChatStream, ApiError> {
        self.0.oneshot(req).await
    }
}

/// The tower layer of a [`Step`].
pub struct StepLayer<T>(Arc<T>);

impl<T> Clone for StepLayer<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// `step` as a tower layer.
pub fn step<T: Step>(step: T) -> StepLayer<T> {
    StepLayer(Arc::new(step))
}

impl<T: Step, S: ChatService> tower::Layer<S> for StepLayer<T> {
    type Service = StepService<T>;

    fn layer(&self, inner: S) -> StepService<T> {
        StepService {
            step: self.0.clone(),
            next: Next::new(inner),
        }
    }
}

/// A [`Step`] over the rest of its stack.
pub struct StepService<T> {
    step: Arc<T>,
    next: Next,
}

impl<T> Clone for StepService<T> {
    fn clone(&self) -> Self {
        Self {
            step: self.step.clone(),
            next: self.next.clone(),
        }
    }
}

impl<T: Step> tower::Service<ChatRequest> for StepService<T> {
    type Response = ChatStream;
    type Error = ApiError;
    type Future = BoxFuture<'static, Result<ChatStream, ApiError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ApiError>> {
        // `Next::run` waits for readiness when the step decides to go on; backpressure
        // itself is per model, at admission.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        let span = layer_span(T::NAME, &req);
        let step = self.step.clone();
        let next = self.next.clone();
        // The whole step runs in its span, `next` included, so spans nest as steps do.
        async move { step.call(req, next).await }
            .instrument(span)
            .boxed()
    }
}

/// The span of one domain step (or of the router) for `req`.
pub fn layer_span(name: &'static str, req: &ChatRequest) -> tracing::Span {
    tracing::info_span!(
        "gatehouse.layer",
        otel.name = name,
        gatehouse.model = %req.model,
    )
}
