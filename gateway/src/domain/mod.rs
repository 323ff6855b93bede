//! The domain stack: a tower `Service<ChatRequest>` whose layers each do one job.
//!
//! Today the stack is policy resolve → input guard → output guard → router
//! (`crate::layers`); templates, cache, retrieval, tools and audit slot in as further layers
//! (DESIGN.md, request flow).

pub mod admission;
pub mod observe;
pub mod router;

use std::sync::{Arc, Mutex, OnceLock};

use futures::stream::BoxStream;

pub use engine::{ChatMessage, FinishReason, Role, Sampling, Usage};

use crate::backends::BackendError;
use crate::error::ApiError;
use crate::policy::{Decision, Policy, Redactor};

/// A parsed, validated chat request, independent of the wire format.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The `x-request-id` of the HTTP request.
    pub request_id: String,
    /// Requested model id.
    pub model: String,
    /// Conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling settings.
    pub sampling: Sampling,
    /// The client asked for SSE.
    pub stream: bool,
    /// The client asked for a usage chunk at the end of the stream.
    pub include_usage: bool,
    /// Who asked, for policy selection.
    pub caller: Caller,
    /// Guardrail state of this request.
    pub guard: GuardContext,
}

/// Who sent a request and where, as far as the HTTP stack knows.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Route path, `/v1/chat/completions`.
    pub route: String,
    /// `sha256:<hex>` of the bearer token, if one was sent.
    pub api_key: Option<String>,
    /// Tenant id, once an authentication layer resolves one.
    pub tenant: Option<String>,
}

/// Per-request guardrail state, shared by the layers and read back by the HTTP handler
/// (headers) and the audit log. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct GuardContext(Arc<GuardState>);

#[derive(Debug, Default)]
struct GuardState {
    policy: OnceLock<(Arc<Policy>, String)>,
    decisions: Mutex<Vec<Decision>>,
    redactor: Arc<Mutex<Redactor>>,
}

impl GuardContext {
    /// Fixes the policy (and the policies' version) this request runs under; once.
    pub fn set_policy(&self, policy: Arc<Policy>, version: String) {
        let _ = self.0.policy.set((policy, version));
    }

    /// The policy in force; `None` when guardrails are off or none applies.
    pub fn policy(&self) -> Option<&Arc<Policy>> {
        self.0.policy.get().map(|(p, _)| p)
    }

    /// The policies' version this request runs under.
    pub fn version(&self) -> Option<&str> {
        self.0.policy.get().map(|(_, v)| v.as_str())
    }

    /// Placeholders, shared by input and output so a value keeps its placeholder.
    pub fn redactor(&self) -> Arc<Mutex<Redactor>> {
        self.0.redactor.clone()
    }

    /// Adds decisions.
    pub fn record(&self, mut d: Vec<Decision>) {
        if !d.is_empty() {
            self.0
                .decisions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .append(&mut d);
        }
    }

    /// A copy of the decisions so far, input then output.
    pub fn decisions(&self) -> Vec<Decision> {
        self.0
            .decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One event of a chat answer; the last one of a successful answer is `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// More assistant text.
    Delta(String),
    /// The end.
    Done {
        /// Why it ended.
        finish_reason: FinishReason,
        /// Token counts.
        usage: Usage,
    },
}

/// A backend's answer as a stream; dropping it cancels generation.
pub type BackendStream = BoxStream<'static, Result<ChatEvent, BackendError>>;

/// A chat answer as the domain layers pass it on: backend errors, and guardrail blocks in
/// the middle of a stream. Dropping it cancels generation.
pub type ChatStream = BoxStream<'static, Result<ChatEvent, ApiError>>;
