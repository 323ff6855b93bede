//! Guardrail policies: YAML files validated against `policies/policy.schema.json`, compiled
//! into [`Policy`] values, evaluated on message text, on streamed output and on tool
//! arguments.
//!
//! - [`load`] reads and compiles files, with errors that name file, line, column and key;
//! - [`rules`] holds the compiled rule kinds and scans a text for hits;
//! - [`evaluate`] turns hits into [`Decision`]s and redacted text;
//! - [`stream`] does the same on a growing text, holding back only what a match could span;
//! - [`set`] selects the policy of a request and swaps versions on reload;
//! - [`cases`] runs the test cases written next to the policies.

pub mod cases;
mod compile;
pub mod detect;
pub mod evaluate;
pub mod load;
mod raw;
pub mod retrieval;
pub mod rules;
pub mod schema;
pub mod set;
pub mod stream;
pub mod watch;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde::Serialize;

pub use evaluate::{Evaluation, Redactor};
pub use load::PolicyError;
pub use rules::{Policy, Rule, RuleKind};
pub use set::{PolicySet, PolicyStore, Subject};

/// Where a rule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Every message of the request, before the model sees it.
    Input,
    /// The generated text, streamed or not.
    Output,
    /// Arguments of tool calls the model makes.
    ToolArguments,
}

impl Stage {
    /// All stages, in request order.
    pub const ALL: [Stage; 3] = [Stage::Input, Stage::Output, Stage::ToolArguments];

    /// The name used in YAML, headers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Input => "input",
            Stage::Output => "output",
            Stage::ToolArguments => "tool_arguments",
        }
    }

    /// Inverse of [`Stage::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// What happens when a rule fires; ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Allowed; recorded for the audit log only.
    Log,
    /// Allowed; reported in a response header and to the audit log.
    Warn,
    /// Allowed with the matched text replaced by a typed placeholder such as `[EMAIL_1]`.
    Redact,
    /// The request or answer is refused with `policy_violation`.
    Block,
}

impl Action {
    /// The name used in YAML, headers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Log => "log",
            Action::Warn => "warn",
            Action::Redact => "redact",
            Action::Block => "block",
        }
    }

    /// Inverse of [`Action::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Action::Log, Action::Warn, Action::Redact, Action::Block]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// How serious a rule's finding is, for reviewers and alerting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational; never alerts.
    Low,
    /// The default.
    Medium,
    /// Needs attention.
    High,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// The name used in YAML and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One rule firing on one span. Carries offsets and the entity type, never the matched text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Policy id.
    #[serde(serialize_with = "arc_str")]
    pub policy: Arc<str>,
    /// Rule id.
    #[serde(serialize_with = "arc_str")]
    pub rule: Arc<str>,
    /// Rule kind.
    pub kind: RuleKind,
    /// Stage it ran in.
    pub stage: Stage,
    /// What was done.
    pub action: Action,
    /// The rule's severity.
    pub severity: Severity,
    /// What was found: `email`, `aws_access_key`, `instruction_override`, a limit name...
    pub entity: String,
    /// Index of the message (input stage), or of the tool call (tool arguments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<usize>,
    /// Byte offset of the span in the text it was found in (before redaction).
    pub start: usize,
    /// Byte offset just past the span.
    pub end: usize,
    /// The detector's score, for scored kinds (prompt injection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// The placeholder that replaced the span, for `redact`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// Extra detail that never contains the matched text (a limit's value, a schema path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

// serde's `rc` feature would change serde's features for every crate in the build.
fn arc_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

/// The strongest action among `decisions`, `None` when there are none (allowed).
pub fn strongest(decisions: &[Decision]) -> Option<Action> {
    decisions.iter().map(|d| d.action).max()
}

/// A request refused by a `block` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocked {
    /// The decision that blocked it.
    pub decision: Decision,
    /// `true` for limits (the request is too large: 400), `false` for content (403).
    pub is_limit: bool,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.decision;
        write!(
            f,
            "blocked by policy `{}` rule `{}` ({} found in {})",
            d.policy,
            d.rule,
            d.entity,
            d.stage.as_str()
        )?;
        if let Some(detail) = &d.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}
