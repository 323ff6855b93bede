//! OpenAI chat-completions wire types (the subset Gatehouse serves): what the API parses and
//! renders, and what the remote backend reads from an upstream.
#![allow(missing_docs)] // field names are OpenAI's; their docs are the API reference.

use serde::{Deserialize, Serialize};

/// `POST /v1/chat/completions` body as clients send it. Unknown fields are accepted and
/// ignored, as the OpenAI API does for forward compatibility of SDKs.
#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    /// May be empty when a template supplies the messages.
    #[serde(default)]
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Not in OpenAI's API; accepted as vLLM and llama.cpp do.
    #[serde(default)]
    pub top_k: Option<i64>,
    #[serde(default)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub max_completion_tokens: Option<i64>,
    #[serde(default)]
    pub stop: Option<StopField>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub n: Option<i64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// `{"type": "text" | "json_object" | "json_schema", ...}`; checked in `api::format`.
    #[serde(default)]
    pub response_format: Option<serde_json::Value>,
    #[serde(default)]
    pub tools: Option<Vec<WireTool>>,
    /// `"none" | "auto" | "required" | {"type": "function", "function": {"name"}}`.
    #[serde(default)]
    pub tool_choice: Option<serde_json::Value>,
    /// Accepted; Gatehouse makes at most one call per assistant turn.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// Not served: refused when asked for (`api::parse`), never ignored.
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<i64>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub logit_bias: Option<serde_json::Map<String, serde_json::Value>>,
    /// Gatehouse extension: a prompt template, `NAME` or `NAME@VERSION`.
    #[serde(default)]
    pub template: Option<String>,
    /// Gatehouse extension: the template's variables.
    #[serde(default)]
    pub variables: Option<serde_json::Value>,
}

/// `stop`: one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// One message as sent.
#[derive(Debug, Deserialize)]
pub struct WireMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<WireContent>,
    /// Calls an assistant message made.
    #[serde(default)]
    pub tool_calls: Option<Vec<WireToolCall>>,
    /// The call a `role: tool` message answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A tool offered to the model.
#[derive(Debug, Deserialize)]
pub struct WireTool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub function: Option<WireFunction>,
}

/// A function definition. Without `parameters`, a name configured under `tools:` is a
/// server-side tool.
#[derive(Debug, Deserialize)]
pub struct WireFunction {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

/// A tool call, in a request's assistant message or in a response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: WireCalledFunction,
}

fn function_type() -> String {
    "function".into()
}

/// The function a call names, with its arguments as JSON text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireCalledFunction {
    pub name: String,
    pub arguments: String,
}

/// A streamed piece of a tool call: the first chunk has `id`, `type` and the name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireToolCallDelta {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub function: WireFunctionDelta,
}

/// The function part of a [`WireToolCallDelta`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireFunctionDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub arguments: String,
}

/// `content`: a string or a list of parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum WireContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// A content part; only text parts are served.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// Token counts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Gatehouse extension: present when a draft model took part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speculative: Option<WireSpeculative>,
}

/// Speculative decoding figures of one response (Gatehouse extension to `usage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireSpeculative {
    /// Speculative steps (draft proposals verified by the target).
    pub steps: u64,
    /// Draft tokens proposed.
    pub drafted_tokens: u64,
    /// Draft tokens accepted.
    pub accepted_tokens: u64,
    /// `accepted_tokens / drafted_tokens`.
    pub acceptance_rate: f64,
    /// Mean draft tokens accepted per step.
    pub accepted_per_step: f64,
    /// Mean draft time per step, milliseconds.
    pub draft_ms_per_step: f64,
    /// Mean target verification time per step, milliseconds.
    pub verify_ms_per_step: f64,
}

/// Non-streamed response.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Option<WireUsage>,
    /// Gatehouse extension: the retrieved chunks the answer may cite.
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub citations: Option<Vec<crate::domain::Citation>>,
}

/// A non-streamed choice.
#[derive(Debug, Serialize, Deserialize)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: Option<String>,
}

/// The assistant's message.
#[derive(Debug, Serialize, Deserialize)]
pub struct AssistantMessage {
    pub role: String,
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<WireToolCall>>,
}

/// One SSE chunk.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// Present (null) on every chunk when usage was asked for, set on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<WireUsage>>,
    /// Gatehouse extension: on the finish chunk, the retrieved chunks the answer may cite.
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    pub citations: Option<Vec<crate::domain::Citation>>,
}

/// A streamed choice.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<String>,
}

/// The increment of a streamed choice.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<WireToolCallDelta>>,
}

/// `GET /v1/models` entry.
#[derive(Debug, Serialize, Deserialize)]
pub struct ModelObject {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
}

/// `GET /v1/models` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<ModelObject>,
}
