//! What shapes requests and answers: templates, structured output, tools.

use prometheus::{IntCounterVec, Opts};

use super::must;

/// What shapes requests and answers: templates, structured output, tools.
#[derive(Debug, Clone)]
pub struct ShapingMetrics {
    /// Template renders by template (`name@version`, or the name asked for) and result.
    pub template_renders: IntCounterVec,
    /// Template reloads by result (`ok`, `rejected`).
    pub template_reloads: IntCounterVec,
    /// Structured answers by response format and result (`valid`, `invalid`).
    pub structured: IntCounterVec,
    /// Server-side tool executions by tool and status (`ok`, `error`, `timeout`).
    pub tool_runs: IntCounterVec,
    /// Retrievals by status (`ok`, `empty`, `error`, `blocked`).
    pub retrievals: IntCounterVec,
}

impl ShapingMetrics {
    pub(super) fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            must(IntCounterVec::new(Opts::new(name, help), labels))
        };
        Self {
            template_renders: counter(
                "template_renders_total",
                "Prompt template renders by template and result (ok, not_found, invalid_variables, render_error).",
                &["template", "result"],
            ),
            template_reloads: counter(
                "template_reloads_total",
                "Template reloads by result: ok, or rejected (the old templates stay).",
                &["result"],
            ),
            structured: counter(
                "structured_output_total",
                "Answers under a response_format by format and result (valid, invalid).",
                &["format", "result"],
            ),
            tool_runs: counter(
                "tool_runs_total",
                "Server-side tool executions by tool and status (ok, error, timeout).",
                &["tool", "status"],
            ),
            retrievals: counter(
                "retrievals_total",
                "Retrievals by status: ok, empty (no usable chunk), error (failed or timed out), blocked (a chunk refused the request).",
                &["status"],
            ),
        }
    }

    pub(super) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.template_renders.clone()),
            Box::new(self.template_reloads.clone()),
            Box::new(self.structured.clone()),
            Box::new(self.tool_runs.clone()),
            Box::new(self.retrievals.clone()),
        ]
    }
}
