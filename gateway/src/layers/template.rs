//! The prompt-template layer: a request that names a template gets its rendered messages,
//! model, sampling defaults and `response_format` before anything else looks at it, so the
//! policy is chosen for the real model and the input guard checks the rendered text.

use std::sync::Arc;

use super::step::{Next, Step};
use crate::domain::ChatRequest;
use crate::error::ApiError;
use crate::layers::ChatStream;
use crate::metrics::Metrics;
use crate::prompts::{TemplateError, TemplateStore};

/// See the module docs; `store` is `None` when the config has no `prompts:`.
pub struct TemplateRender {
    store: Option<Arc<TemplateStore>>,
    metrics: Arc<Metrics>,
}

impl TemplateRender {
    /// Renders from `store`, counting renders in `metrics`.
    pub fn new(store: Option<Arc<TemplateStore>>, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics }
    }

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

impl Step for TemplateRender {
    const NAME: &'static str = "template";

    async fn call(&self, mut req: ChatRequest, next: Next) -> Result<ChatStream, ApiError> {
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
        outcome.map_err(ApiError::Template)?;
        next.run(req).await
    }
}
