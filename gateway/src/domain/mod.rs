//! The domain stack: a tower `Service<ChatRequest>` whose layers each do one job.
//!
//! Today the stack is the router in front of the backends; guardrails, templates, cache,
//! retrieval, tools and audit slot in as layers around it (DESIGN.md, request flow).

pub mod admission;
pub mod observe;
pub mod router;

use futures::stream::BoxStream;

pub use engine::{ChatMessage, FinishReason, Role, Sampling, Usage};

use crate::backends::BackendError;

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

/// A chat answer as a stream; dropping it cancels generation.
pub type ChatStream = BoxStream<'static, Result<ChatEvent, BackendError>>;
