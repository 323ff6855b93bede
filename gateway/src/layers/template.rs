//! The prompt-template layer: a request that names a template gets its rendered messages,
//! model, sampling defaults and `response_format` before anything else looks at it, so the
//! policy is chosen for the real model and the input guard checks the rendered text.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};

use crate::domain::{ChatRequest, ChatStream};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::prompts::{TemplateError, TemplateStore};

/// Layer of [`TemplateRender`]; `store` is `None` when the config has no `prompts:`.
#[derive(Clone)]
pub struct TemplateLayer {
    store: Option<Arc<TemplateStore>>,
    metrics: Arc<Metrics>,
}

impl TemplateLayer {
    /// Renders from `store`, counting renders in `metrics`.
    pub fn new(store: Option<Arc<TemplateStore>>, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics }
    }
}

impl<S> tower::Layer<S> for TemplateLayer {
    type Service = TemplateRender<S>;

    fn layer(&self, inner: S) -> TemplateRender<S> {
        TemplateRender {
            inner,
            store: self.store.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// See the module docs.
#[derive(Clone)]
pub struct TemplateRender<S> {
    inner: S,
    store: Option<Arc<TemplateStore>>,
    metrics: Arc<Metrics>,
}

impl<S> TemplateRender<S> {
    fn prepare(&self, req: &mut ChatRequest) -> Result<(), TemplateError> {
        let Some(call) = req.template.take() else {
            return Ok(());
        };
        let Some(store) = &self.store else {
            return Err(TemplateError::NotFound(format!(
                "no template `{}`: templates are not configured (`prompts:` in the config)",
                call.name
            )));
        };
        let t = store.current().resolve(&call.name, call.version)?;
        t.apply(req, &call.variables, call.model_from_template)
    }
}

impl<S> tower::Service<ChatRequest> for TemplateRender<S>
where
    S: tower::Service<ChatRequest, Response = ChatStream, Error = ApiError>,
    S::Future: Send + 'static,
{
    type Response = ChatStream;
    type Error = ApiError;
    type Future = BoxFuture<'static, Result<ChatStream, ApiError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ApiError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ChatRequest) -> Self::Future {
        let asked = req.template.as_ref().map(|t| t.name.clone());
        let outcome = self.prepare(&mut req);
        if let Some(asked) = asked {
            let result = match &outcome {
                Ok(()) => "ok",
                Err(TemplateError::NotFound(_)) => "not_found",
                Err(TemplateError::Variables { .. }) => "invalid_variables",
                Err(_) => "render_error",
            };
            // Rendered: name@version; otherwise the name as asked.
            let label = req.trail.snapshot().template.unwrap_or(asked);
            self.metrics
                .shaping
                .template_renders
                .with_label_values(&[&label, result])
                .inc();
        }
        if let Err(e) = outcome {
            return futures::future::ready(Err(ApiError::Template(e))).boxed();
        }
        self.inner.call(req).boxed()
    }
}
