//! The retrieval layer: when the request's policy has `retrieval:`, the latest user message
//! is embedded, the nearest chunks of the caller's tenant are fetched (within a timeout),
//! each goes through the policy's input rules (indirect prompt injection, secrets in
//! documents), and the survivors reach the model through the `rag-context` template with
//! numbered citations. The citations go on the trail, for the response and the audit log.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde_json::json;

use crate::domain::{ChatMessage, ChatRequest, Citation, RetrievalRun, Role};
use crate::error::ApiError;
use crate::layers::guard::guard_text;
use crate::layers::step::{Next, Step};
use crate::layers::ChatStream;
use crate::metrics::Metrics;
use crate::policy::retrieval::{OnBlocked, OnMissing, Retrieval, DEFAULT_TEMPLATE};
use crate::policy::rules::estimate_tokens;
use crate::policy::Stage;
use crate::prompts::{Template, TemplateStore};
use crate::rag::store::Hit;
use crate::rag::{Rag, DEFAULT_TENANT};

/// The shipped `rag-context` template, used when the prompts directory has none.
const BUILTIN_TEMPLATE: &str = include_str!("../../../../prompts/rag-context.yaml");

fn builtin_template() -> Arc<Template> {
    static T: OnceLock<Arc<Template>> = OnceLock::new();
    T.get_or_init(|| {
        let t = crate::prompts::parse(std::path::Path::new("rag-context.yaml"), BUILTIN_TEMPLATE)
            .expect("prompts/rag-context.yaml is valid (tested)");
        Arc::new(t)
    })
    .clone()
}

/// See the module docs; `rag` is `None` when the config has no `rag:`.
pub struct Retrieve {
    rag: Option<Arc<Rag>>,
    templates: Option<Arc<TemplateStore>>,
    metrics: Arc<Metrics>,
}

impl Retrieve {
    /// Retrieves from `rag`, placing chunks with a template from `templates` (or the
    /// built-in `rag-context`).
    pub fn new(
        rag: Option<Arc<Rag>>,
        templates: Option<Arc<TemplateStore>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            rag,
            templates,
            metrics,
        }
    }
}

impl Step for Retrieve {
    const NAME: &'static str = "retrieval";

    async fn call(&self, mut req: ChatRequest, next: Next) -> Result<ChatStream, ApiError> {
        if let Some(settings) = req.guard.policy().and_then(|p| p.retrieval.clone()) {
            self.augment(&settings, &mut req).await?;
        }
        next.run(req).await
    }
}

/// Why retrieval gave nothing to the model.
enum Missing {
    Empty,
    Failed(SearchError),
}

/// Why the search itself failed.
#[derive(Debug, thiserror::Error)]
enum SearchError {
    #[error("retrieval is not configured on this server (no `rag:` section)")]
    NotConfigured,
    #[error(transparent)]
    Rag(#[from] crate::rag::RagError),
    #[error("retrieval took longer than {} ms", .0.as_millis())]
    Timeout(std::time::Duration),
}

impl Retrieve {
    async fn augment(&self, r: &Retrieval, req: &mut ChatRequest) -> Result<(), ApiError> {
        let Some(last_user) = req.messages.iter().rposition(|m| m.role == Role::User) else {
            return Ok(()); // nothing asked: nothing to ground
        };
        let question = req.messages[last_user].content.clone();
        let tenant = req
            .caller
            .tenant
            .clone()
            .unwrap_or_else(|| DEFAULT_TENANT.to_string());
        let started = Instant::now();
        let mut run = RetrievalRun {
            collection: r.collection.clone(),
            tenant: tenant.clone(),
            status: "ok",
            citations: Vec::new(),
            dropped: Vec::new(),
            error: None,
            elapsed_ms: 0,
        };
        let found = self.search(r, &tenant, &question).await;
        run.elapsed_ms = started.elapsed().as_millis() as u64;
        let outcome = match found {
            Err(e) => Err(Missing::Failed(e)),
            Ok(hits) => {
                let kept = self.screen(r, req, hits, &mut run);
                let kept = match kept {
                    Ok(k) => k,
                    Err(e) => {
                        run.status = "blocked";
                        self.metrics
                            .shaping
                            .retrievals
                            .with_label_values(&["blocked"])
                            .inc();
                        req.trail.update(|t| t.retrieval = Some(run));
                        return Err(e);
                    }
                };
                if kept.is_empty() {
                    Err(Missing::Empty)
                } else {
                    Ok(kept)
                }
            }
        };
        let kept = match outcome {
            Ok(kept) => kept,
            Err(missing) => {
                let (status, policy, refusal) = match missing {
                    Missing::Empty => (
                        "empty",
                        r.on_empty,
                        ApiError::NoRelevantContext(r.collection.clone()),
                    ),
                    Missing::Failed(e) => {
                        let m = e.to_string();
                        tracing::warn!(collection = %r.collection, error = %m, "retrieval failed");
                        run.error = Some(m.clone());
                        ("error", r.on_error, ApiError::RetrievalUnavailable(m))
                    }
                };
                run.status = status;
                self.metrics
                    .shaping
                    .retrievals
                    .with_label_values(&[status])
                    .inc();
                req.trail.update(|t| t.retrieval = Some(run));
                return match policy {
                    OnMissing::Answer => Ok(()),
                    OnMissing::Refuse => Err(refusal),
                };
            }
        };
        let template = self.template(&r.template)?;
        let chunks: Vec<_> = kept
            .iter()
            .enumerate()
            .map(|(i, (h, text))| {
                json!({ "id": i + 1, "source": h.payload.source, "title": h.payload.title, "text": text })
            })
            .collect();
        let rendered = template.render(&json!({ "question": question, "chunks": chunks }))?;
        if let Some(user) = rendered.user {
            req.messages[last_user].content = user;
        }
        if let Some(system) = rendered.system {
            req.messages.insert(
                last_user,
                ChatMessage {
                    role: Role::System,
                    content: system,
                },
            );
        }
        run.citations = kept
            .iter()
            .enumerate()
            .map(|(i, (h, _))| Citation {
                id: i + 1,
                source: h.payload.source.clone(),
                chunk: h.payload.chunk,
                score: h.score,
                point_id: h.id,
            })
            .collect();
        self.metrics
            .shaping
            .retrievals
            .with_label_values(&["ok"])
            .inc();
        req.trail.update(|t| t.retrieval = Some(run));
        Ok(())
    }

    /// Embeds the question and searches, all within the policy's timeout.
    async fn search(
        &self,
        r: &Retrieval,
        tenant: &str,
        question: &str,
    ) -> Result<Vec<Hit>, SearchError> {
        let rag = self.rag.as_ref().ok_or(SearchError::NotConfigured)?;
        let search = rag.search(
            &r.collection,
            tenant,
            question,
            r.mode,
            r.top_k,
            r.score_threshold,
        );
        match tokio::time::timeout(r.timeout, search).await {
            Ok(found) => Ok(found?),
            Err(_) => Err(SearchError::Timeout(r.timeout)),
        }
    }

    /// The hits that pass the input rules and fit the context budget, with their text as it
    /// may reach the model (redacted).
    fn screen(
        &self,
        r: &Retrieval,
        req: &ChatRequest,
        hits: Vec<Hit>,
        run: &mut RetrievalRun,
    ) -> Result<Vec<(Hit, String)>, ApiError> {
        let mut kept = Vec::new();
        let mut budget = r.max_context_tokens;
        for h in hits {
            let text = match guard_text(
                req,
                &self.metrics,
                Stage::Input,
                None,
                h.payload.text.clone(),
            ) {
                Ok(t) => t,
                Err(e) => match r.on_blocked {
                    OnBlocked::Refuse => return Err(e),
                    OnBlocked::Drop => {
                        run.dropped.push(h.id);
                        continue;
                    }
                },
            };
            let cost = estimate_tokens(&text);
            // Lower-ranked chunks may still fit after a long one is left out.
            if cost > budget {
                continue;
            }
            budget -= cost;
            kept.push((h, text));
        }
        Ok(kept)
    }

    fn template(&self, name: &str) -> Result<Arc<Template>, ApiError> {
        if let Some(store) = &self.templates {
            if let Some(t) = store.current().get(name, None) {
                return Ok(t.clone());
            }
        }
        if name == DEFAULT_TEMPLATE {
            return Ok(builtin_template());
        }
        Err(ApiError::Template(crate::prompts::TemplateError::NotFound(
            format!("the policy's retrieval template `{name}` is not loaded"),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_template_renders_numbered_chunks() {
        let t = builtin_template();
        let r = t
            .render(&json!({
                "question": "When is the deadline?",
                "chunks": [
                    {"id": 1, "source": "tax.md", "title": "Taxes", "text": "The 31st of January."},
                    {"id": 2, "source": "misc.txt", "title": null, "text": "Other."}
                ]
            }))
            .unwrap();
        let system = r.system.unwrap();
        assert!(
            system.contains("[1] tax.md (Taxes):\nThe 31st of January."),
            "{system}"
        );
        assert!(system.contains("[2] misc.txt:\nOther."), "{system}");
        assert_eq!(r.user.as_deref(), Some("When is the deadline?"));
    }
}
