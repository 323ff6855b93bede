//! Engine-level request and result types, free of HTTP and of mistral.rs types.

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The human or calling program.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The name chat templates expect.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Author.
    pub role: Role,
    /// Text.
    pub content: String,
}

/// Sampling settings; `None` means the engine default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// 0 is greedy.
    pub temperature: Option<f64>,
    /// Nucleus sampling mass.
    pub top_p: Option<f64>,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Most tokens to generate.
    pub max_tokens: Option<usize>,
    /// Text that ends generation; not included in the output.
    pub stop: Vec<String>,
    /// Seed for reproducible sampling.
    pub seed: Option<u64>,
    /// Generate exactly `max_tokens`: end-of-sequence tokens are never picked. For
    /// benchmarks (a fixed amount of decoding); not exposed over HTTP.
    #[serde(default)]
    pub ignore_eos: bool,
}

impl Sampling {
    /// Greedy decoding: temperature 0 (or unset with top_k 1).
    pub fn is_greedy(&self) -> bool {
        self.temperature.is_some_and(|t| t <= 0.0) || self.top_k == Some(1)
    }
}

/// What the model may generate, enforced token by token (llguidance grammars in mistral.rs).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Constraint {
    /// Free text.
    #[default]
    None,
    /// JSON valid under this JSON Schema.
    JsonSchema(serde_json::Value),
    /// A Lark grammar, llguidance dialect (`%json {...}` embeds a schema).
    Lark(String),
}

impl Constraint {
    /// No constraint.
    pub fn is_none(&self) -> bool {
        matches!(self, Constraint::None)
    }
}

/// Token counts of one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the rendered prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Speculative decoding figures, when the model ran with a draft.
    pub speculative: Option<crate::SpeculativeStats>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End of sequence or a stop sequence.
    Stop,
    /// `max_tokens` or the context length was reached.
    Length,
    /// The answer is a tool call (set by the gateway's tool layer, never by the engine).
    ToolCalls,
}

impl FinishReason {
    /// OpenAI's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

/// One event of a generation stream.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// More text.
    Delta(String),
    /// The end, with counts. Always the last event of a stream that did not fail.
    Finished {
        /// Why it ended.
        reason: FinishReason,
        /// Token counts.
        usage: Usage,
    },
}

/// Weights dtype for CPU inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float: fastest on x86-64-v3 CPUs as measured (docs/performance.md).
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
    /// mistral.rs picks (F16 on CPU in 0.8.1).
    Auto,
}
