//! What Gatehouse records beyond OCSF: the record's `unmapped` object.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What Gatehouse records beyond OCSF (`unmapped`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Details {
    /// `chat` (a chat request or batch item), `http` (any other API call, or a request
    /// refused before it was parsed), `checkpoint`, `lifecycle` (writer started, gap).
    pub kind: String,
    /// `ok`, `blocked` (a guardrail), `refused` (auth, limits, bad input...), `failed`
    /// (backend or server error), `cancelled` (the client went away).
    pub outcome: String,
    /// SHA-256 (hex) of the previous line of the log; 64 zeros for the first record.
    pub prev_hash: String,
    /// Model asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Backend of a pooled model that served it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// `name@version` of the rendered template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Policy and policies' version the request ran under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
    /// Every guardrail decision, input then output (offsets, never matched text).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<DecisionRecord>,
    /// Redacted spans by entity type.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub redactions: BTreeMap<String, u32>,
    /// What retrieval did, with the chunks cited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<RetrievalRecord>,
    /// Tool calls: server-side runs, and calls handed to the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRecord>,
    /// Response cache: `hit`, `miss`, `bypass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    /// The client asked for SSE.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Why generation ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Token counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    /// The writing system most of the prompt's letters are in (`latin`, `cyrillic`, `han`,
    /// ...; `drift::script`), for drift reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_script: Option<String>,
    /// Milliseconds from the request reaching the domain stack to the first text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// The prompt as the model saw it, after redaction; only when the policy's `audit:`
    /// section asks for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Vec<MessageRecord>>,
    /// The answer as the client got it (after output redaction); only when the policy asks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion: Option<String>,
    /// A signed checkpoint (`kind: checkpoint`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// Records dropped because the queue was full, since the previous record (`lifecycle`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
}

/// The policy a request ran under.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyRef {
    /// Policy id.
    pub id: String,
    /// `sha256:...` of the whole policy directory.
    pub version: String,
}

/// One guardrail decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecisionRecord {
    /// Policy id.
    pub policy: String,
    /// Rule id.
    pub rule: String,
    /// Rule kind (`pii`, `secrets`, `regex`...).
    pub kind: String,
    /// `input`, `output`, `tool_arguments`.
    pub stage: String,
    /// `log`, `warn`, `redact`, `block`.
    pub action: String,
    /// `low` ... `critical`.
    pub severity: String,
    /// What was found (`email`, `aws_access_key`...).
    pub entity: String,
    /// Message index (input) or tool call index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<usize>,
    /// Byte offset of the span, before redaction.
    pub start: usize,
    /// Byte offset just past the span.
    pub end: usize,
    /// Detector score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// The placeholder that replaced the span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// Extra detail (never the matched text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Retrieval of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetrievalRecord {
    /// Collection searched.
    pub collection: String,
    /// `ok`, `empty`, `error`.
    pub status: String,
    /// Chunks given to the model.
    pub citations: Vec<CitationRecord>,
    /// Point ids left out because an input rule blocked them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<u64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds of embedding and search.
    pub elapsed_ms: u64,
}

/// A chunk cited in an answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CitationRecord {
    /// Citation number.
    pub id: usize,
    /// Source document.
    pub source: String,
    /// Chunk index in the source.
    pub chunk: u32,
    /// Cosine similarity of the chunk to the question.
    pub score: f32,
    /// Point id in the vector store.
    pub point_id: u64,
}

/// A tool call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolCallRecord {
    /// Function name.
    pub name: String,
    /// Call id.
    pub call_id: String,
    /// SHA-256 (hex) of the arguments text: proves what was called without storing it.
    pub arguments_sha256: String,
    /// `ok`, `error`, `timeout` (server-side runs), `returned` (handed to the client).
    pub outcome: String,
    /// `server` or `client`.
    pub side: String,
    /// Milliseconds (server-side runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tokens {
    /// Prompt tokens.
    pub prompt: u64,
    /// Generated tokens.
    pub completion: u64,
    /// Their sum.
    pub total: u64,
}

/// A prompt message, stored after redaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageRecord {
    /// `system`, `user`, `assistant`, `tool`.
    pub role: String,
    /// Text after redaction.
    pub content: String,
}

/// A signed checkpoint: the chain up to here is vouched for by the HMAC key's holder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Checkpoint {
    /// Records since the previous checkpoint.
    pub records: u64,
    /// First 16 hex digits of SHA-256(key): which key signed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// HMAC-SHA256 (hex) of `gatehouse-audit-checkpoint:v1:{sequence}:{prev_hash}:{time}`;
    /// `None` when no key is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac: Option<String>,
}
