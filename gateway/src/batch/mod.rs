//! Batch inference: every record of a file through a template and the same domain stack as
//! the HTTP API (template, policies, structured output), with bounded concurrency,
//! progress, resumable output and a summary.

pub mod input;
pub mod output;
pub mod progress;

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::api::render::{collect, Meta};
use crate::app::{Services, Stores};
use crate::config::Config;
use crate::domain::{Caller, ChatRequest, ResponseFormat, TemplateCall};
use crate::error::ApiError;
use crate::layers::Domain;
use crate::models::ModelState;
use crate::prompts::Template;
use input::{parse_line, Record};
use output::Output;
use progress::{Counts, Progress};

/// What to run.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// `NAME` or `NAME@VERSION`; the version is fixed at the start for the whole run.
    pub template: String,
    /// JSON Lines or plain text, one record per line.
    pub input: PathBuf,
    /// JSON Lines results.
    pub output: PathBuf,
    /// Model; the template's when `None`.
    pub model: Option<String>,
    /// Records in flight; the model's `max_concurrent` when `None`.
    pub concurrency: Option<usize>,
    /// Variable that a plain-text line fills.
    pub var_name: String,
    /// Start over instead of skipping the ids the output already has.
    pub restart: bool,
    /// Draw progress in place (a terminal) rather than as periodic lines.
    pub tty: bool,
}

/// Errors that stop a batch before or while it runs (a record's own failure does not).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The input could not be read.
    #[error("cannot read {path}: {message}")]
    Input {
        /// The file.
        path: String,
        /// The read or parse error.
        message: String,
    },
    /// The output could not be written.
    #[error("cannot write {path}: {message}")]
    Output {
        /// The file.
        path: String,
        /// The write error.
        message: String,
    },
    /// The template, model or configuration cannot serve the batch.
    #[error("{0}")]
    Setup(String),
}

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many records ended ok, blocked or failed.
    pub counts: Counts,
    /// Records in the input.
    pub total: usize,
    /// Wall-clock seconds of the records' run (model loading excluded).
    pub seconds: f64,
}

fn template_of(stores: &Stores, spec: &str) -> Result<Arc<Template>, BatchError> {
    let (name, version) = crate::api::format::template_ref(spec).map_err(BatchError::Setup)?;
    let store = stores.templates.as_ref().ok_or_else(|| {
        BatchError::Setup("templates are not configured (`prompts:` in the config)".into())
    })?;
    store
        .current()
        .resolve(&name, version)
        .map_err(|e| BatchError::Setup(e.to_string()))
}

fn read_records(opts: &BatchOptions) -> Result<Vec<Record>, BatchError> {
    let err = |e: std::io::Error| BatchError::Input {
        path: opts.input.display().to_string(),
        message: e.to_string(),
    };
    let file = std::fs::File::open(&opts.input).map_err(err)?;
    let mut records = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(err)?;
        if let Some(r) = parse_line(i + 1, &line, &opts.var_name) {
            if !seen.insert(r.id.clone()) {
                return Err(BatchError::Input {
                    path: opts.input.display().to_string(),
                    message: format!("line {}: duplicate id `{}`", r.line, r.id),
                });
            }
            records.push(r);
        }
    }
    Ok(records)
}

/// Loads the models, runs every record not yet done, and returns the summary.
pub async fn run(
    config: Config,
    stores: Stores,
    opts: BatchOptions,
) -> Result<Summary, BatchError> {
    let template = template_of(&stores, &opts.template)?;
    let model = opts
        .model
        .clone()
        .or_else(|| template.model.clone())
        .ok_or_else(|| {
            BatchError::Setup(format!(
                "template {} names no model; pass --model",
                template.id()
            ))
        })?;
    let slot_limits = config
        .model(&model)
        .map(|m| (m.max_concurrent, m.max_queue))
        .ok_or_else(|| BatchError::Setup(format!("the model `{model}` is not configured")))?;
    let records = read_records(&opts)?;
    let (mut out, prev) =
        Output::open(&opts.output, !opts.restart).map_err(|e| BatchError::Output {
            path: opts.output.display().to_string(),
            message: e.to_string(),
        })?;
    if prev.repaired_bytes > 0 {
        tracing::warn!(
            bytes = prev.repaired_bytes,
            "cut a partial last line off the output (an interrupted run)"
        );
    }
    let services = Services::new(Arc::new(config), stores);
    services.models.load_local(|_, _| {}).await;
    match services.models.get(&model).map(|s| s.state()) {
        Some(ModelState::Ready(_)) => {}
        Some(ModelState::Failed(e)) => {
            return Err(BatchError::Setup(format!(
                "the model `{model}` failed to load: {e}"
            )))
        }
        _ => {
            return Err(BatchError::Setup(format!(
                "the model `{model}` is not ready"
            )))
        }
    }
    let total = records.len();
    let todo: Vec<Record> = records
        .into_iter()
        .filter(|r| !prev.done.contains(&r.id))
        .collect();
    let mut counts = Counts {
        skipped: total - todo.len(),
        ..Default::default()
    };
    // More than the model's slots plus its queue would be refused with 429.
    let (max_concurrent, max_queue) = slot_limits;
    let concurrency = opts
        .concurrency
        .unwrap_or(max_concurrent)
        .clamp(1, max_concurrent + max_queue);
    let mut progress = Progress::new(todo.len(), opts.tty);
    let audit = services.stores.audit.clone();
    let ctx = Arc::new(RunContext {
        domain: services.domain(),
        template,
        model,
        model_from_template: opts.model.is_none(),
    });
    let mut results = futures::stream::iter(todo)
        .map(|r| {
            let ctx = ctx.clone();
            async move { ctx.one(r).await }
        })
        .buffer_unordered(concurrency);
    while let Some(result) = results.next().await {
        match result["status"].as_str() {
            Some("ok") => counts.ok += 1,
            Some("blocked") => counts.blocked += 1,
            _ => counts.failed += 1,
        }
        out.write(&result).map_err(|e| BatchError::Output {
            path: opts.output.display().to_string(),
            message: e.to_string(),
        })?;
        progress.update(&counts);
    }
    drop(results);
    if let Some(audit) = audit {
        let _ =
            tokio::task::spawn_blocking(move || audit.close(std::time::Duration::from_secs(30)))
                .await;
    }
    Ok(Summary {
        counts,
        total,
        seconds: progress.elapsed().as_secs_f64(),
    })
}

struct RunContext {
    domain: Domain,
    template: Arc<Template>,
    model: String,
    model_from_template: bool,
}

impl RunContext {
    /// Runs one record; its result line.
    async fn one(&self, r: Record) -> Value {
        let t = &self.template;
        let req = ChatRequest {
            request_id: format!("batch-{}", r.id),
            model: if self.model_from_template {
                format!("{}{}", crate::api::format::TEMPLATE_MODEL_PREFIX, t.id())
            } else {
                self.model.clone()
            },
            template: Some(TemplateCall {
                name: t.name.clone(),
                version: Some(t.version),
                variables: r.variables,
                model_from_template: self.model_from_template,
            }),
            caller: Caller {
                route: "batch".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let started = Instant::now();
        let answer = async {
            let stream = self.domain.clone().oneshot(req).await?;
            collect(Meta::new(&self.model), stream).await
        }
        .await;
        let mut line = json!({
            "id": r.id,
            "line": r.line,
            "template": t.id(),
            "model": self.model,
            "elapsed_ms": started.elapsed().as_millis() as u64,
        });
        match answer {
            Ok(c) => {
                let choice = c.choices.into_iter().next();
                let text = choice
                    .as_ref()
                    .and_then(|c| c.message.content.clone())
                    .unwrap_or_default();
                // Structured answers were validated by the stack; store them as JSON.
                let output = match t.response_format {
                    ResponseFormat::Text => Value::String(text),
                    _ => serde_json::from_str(&text).unwrap_or(Value::String(text)),
                };
                line["status"] = json!("ok");
                line["output"] = output;
                line["finish_reason"] = json!(choice.and_then(|c| c.finish_reason));
                line["usage"] = json!(c.usage);
            }
            Err(e) => {
                let status = match e {
                    ApiError::PolicyViolation(_) => "blocked",
                    _ => "failed",
                };
                line["status"] = json!(status);
                line["error"] = e.body()["error"].clone();
            }
        }
        line
    }
}
