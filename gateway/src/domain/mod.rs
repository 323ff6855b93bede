//! The domain types: a chat request as every door (HTTP, batch, CLI) hands it to the domain
//! stack (`crate::layers`), its answer stream, and what the steps note on the way.

pub mod admission;

use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

pub use engine::{ChatMessage, Constraint, FinishReason, Role, Sampling, Usage};

use crate::policy::{Decision, Policy, Redactor};

/// A parsed, validated chat request, independent of the wire format.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// The `x-request-id` of the HTTP request.
    pub request_id: String,
    /// Requested model id.
    pub model: String,
    /// The conversation, oldest message first.
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
    /// The shape the answer must have (OpenAI `response_format`).
    pub response_format: ResponseFormat,
    /// What the engine may generate; set by the structured-output and tool layers from
    /// `response_format` and `tool_choice`. Remote backends get `response_format` instead.
    pub constraint: Constraint,
    /// Tools the model may call: the client's, and server-side ones it named.
    pub tools: Vec<ToolDef>,
    /// OpenAI `tool_choice`.
    pub tool_choice: ToolChoice,
    /// The prompt template to render, if the client named one.
    pub template: Option<TemplateCall>,
    /// The client's `Cache-Control` for the response cache.
    pub cache_control: CacheControl,
    /// What happened to the request on its way, for headers and the audit log.
    pub trail: Trail,
    /// The audit slot the HTTP layer took for this request, if any.
    pub audit_slot: crate::audit::SlotCell,
}

/// What a client allows the response cache (`Cache-Control` request header).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-cache`: do not answer from the cache (the answer may still be stored).
    pub no_cache: bool,
    /// `no-store`: do not store the answer.
    pub no_store: bool,
}

impl CacheControl {
    /// From a `Cache-Control` header value.
    pub fn parse(v: &str) -> Self {
        let mut c = Self::default();
        for d in v.split(',').map(|d| d.trim().to_ascii_lowercase()) {
            match d.as_str() {
                "no-cache" => c.no_cache = true,
                "no-store" => c.no_store = true,
                _ => {}
            }
        }
        c
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    /// Function name.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: serde_json::Value,
    /// Runs inside the gateway (configured under `tools:`); the client never sees the call.
    pub server: bool,
}

/// OpenAI `tool_choice`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ToolChoice {
    /// The model decides (OpenAI's default when tools are given).
    #[default]
    Auto,
    /// No tool calls: tools are not even shown to the model.
    None,
    /// Some tool must be called.
    Required,
    /// This function must be called.
    Named(String),
}

/// A call the model made.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// `call_...`, echoed by the client's `role: tool` message.
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments, a JSON object as text (OpenAI's shape).
    pub arguments: String,
}

/// OpenAI `response_format`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ResponseFormat {
    /// Free text.
    #[default]
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON valid under `schema`.
    JsonSchema {
        /// The schema's name, as the client gave it.
        name: String,
        /// The JSON Schema.
        schema: serde_json::Value,
    },
}

impl ResponseFormat {
    /// The schema the answer is generated under and validated against; `None` for text.
    pub fn schema(&self) -> Option<serde_json::Value> {
        match self {
            ResponseFormat::Text => None,
            ResponseFormat::JsonObject => Some(serde_json::json!({ "type": "object" })),
            ResponseFormat::JsonSchema { schema, .. } => Some(schema.clone()),
        }
    }

    /// Parses OpenAI's `response_format`; a `json_schema` must carry a schema that compiles.
    pub fn parse(v: Option<Value>) -> Result<Self, InvalidResponseFormat> {
        let bad = |m: &str| InvalidResponseFormat(format!("response_format: {m}"));
        let v = match v {
            None | Some(Value::Null) => return Ok(ResponseFormat::Text),
            Some(Value::Object(o)) => o,
            Some(_) => return Err(bad("must be an object with a `type`")),
        };
        match v.get("type").and_then(Value::as_str) {
            Some("text") => Ok(ResponseFormat::Text),
            Some("json_object") => Ok(ResponseFormat::JsonObject),
            Some("json_schema") => {
                let Some(Value::Object(js)) = v.get("json_schema") else {
                    return Err(bad(
                        "`json_schema` must be an object with `name` and `schema`",
                    ));
                };
                let name =
                    match js.get("name") {
                        Some(Value::String(n)) if valid_schema_name(n) => n.clone(),
                        Some(Value::String(_)) => return Err(bad(
                            "json_schema.name must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -",
                        )),
                        _ => return Err(bad("json_schema.name is required")),
                    };
                if let Some(strict) = js.get("strict") {
                    if !strict.is_boolean() && !strict.is_null() {
                        return Err(bad("json_schema.strict must be a boolean"));
                    }
                }
                let schema = match js.get("schema") {
                    Some(s @ Value::Object(_)) => s.clone(),
                    Some(_) => return Err(bad("json_schema.schema must be an object")),
                    None => return Err(bad("json_schema.schema is required")),
                };
                if let Err(e) = jsonschema::validator_for(&schema) {
                    return Err(bad(&format!(
                        "json_schema.schema is not a valid JSON Schema: {e}"
                    )));
                }
                Ok(ResponseFormat::JsonSchema { name, schema })
            }
            Some(other) => Err(bad(&format!(
                "type `{other}` is not supported (text, json_object, json_schema)"
            ))),
            None => Err(bad("`type` is required")),
        }
    }
}

/// A `response_format` that cannot be served; the message names the field.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct InvalidResponseFormat(pub String);

fn valid_schema_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A template named by the client: `model: "template:NAME[@VERSION]"` or the `template`
/// extension field, with its `variables`.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateCall {
    /// Template name.
    pub name: String,
    /// A pinned version; the latest when `None`.
    pub version: Option<u32>,
    /// Variables, validated against the template's schema before rendering.
    pub variables: serde_json::Value,
    /// The model came from the template (`model: "template:..."`), not from the client.
    pub model_from_template: bool,
}

/// Facts recorded while a request passes the layers (template used, tool runs), shared
/// with the HTTP handler and the audit log. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Trail(Arc<Mutex<TrailState>>);

/// What [`Trail`] holds.
#[derive(Debug, Clone, Default)]
pub struct TrailState {
    /// `name@version` of the rendered template.
    pub template: Option<String>,
    /// Server-side tool runs, in order.
    pub tool_runs: Vec<ToolRun>,
    /// What retrieval did, when the policy asks for it.
    pub retrieval: Option<RetrievalRun>,
    /// What the response cache did: `hit`, `miss` or `bypass` (not cacheable, or asked not
    /// to); `None` when the cache is off.
    pub cache: Option<&'static str>,
    /// The backend of a pooled model that served the request.
    pub backend: Option<String>,
    /// The messages after input redaction, when the policy's `audit.store_prompts` asks.
    pub audit_prompt: Option<Vec<crate::audit::record::MessageRecord>>,
    /// The script of the prompt's letters, noted when drift monitoring is on.
    pub prompt_script: Option<&'static str>,
    /// The prompt's text (after input redaction) for the drift monitor's embedding, on the
    /// requests it samples.
    pub drift_sample: Option<String>,
}

/// What the retrieval layer did for a request.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RetrievalRun {
    /// Collection searched.
    pub collection: String,
    /// Tenant whose chunks were searched.
    pub tenant: String,
    /// `ok`, `empty` (nothing usable found) or `error` (answered without context).
    pub status: &'static str,
    /// Chunks given to the model, in citation order.
    pub citations: Vec<Citation>,
    /// Point ids of chunks an input rule blocked (left out).
    pub dropped: Vec<u64>,
    /// Why retrieval failed, when it did.
    pub error: Option<String>,
    /// Wall-clock milliseconds of embedding and search.
    pub elapsed_ms: u64,
}

/// A chunk given to the model, as the client sees it (`citations` on the response).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Citation {
    /// The number the context shows (`[1]`).
    pub id: usize,
    /// Source document.
    pub source: String,
    /// Chunk position within the source.
    pub chunk: u32,
    /// Cosine similarity to the question.
    pub score: f32,
    /// Point id in the store, for the audit log.
    #[serde(skip)]
    pub point_id: u64,
}

/// One execution of a server-side tool, for headers and the audit log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ToolRun {
    /// Tool name.
    pub name: String,
    /// The call id the model's call got.
    pub call_id: String,
    /// Arguments as the model gave them (after the tool_arguments policy stage).
    pub arguments: String,
    /// `ok`, `error` (the tool failed; the model saw the error) or `timeout`.
    pub status: String,
    /// Bytes of the result handed back to the model.
    pub result_bytes: usize,
    /// Wall-clock milliseconds.
    pub elapsed_ms: u64,
}

impl Trail {
    /// Changes the trail.
    pub fn update(&self, f: impl FnOnce(&mut TrailState)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// A copy of what was recorded.
    pub fn snapshot(&self) -> TrailState {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Who sent a request and where, as far as the HTTP stack knows.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Route path, `/v1/chat/completions`.
    pub route: String,
    /// `sha256:<hex>` of the bearer token, if one was sent.
    pub api_key: Option<String>,
    /// Tenant id of the key; `None` under `auth: none`.
    pub tenant: Option<String>,
    /// The authenticated key, its tenant's settings and limits; `None` under `auth: none`.
    pub principal: Option<Arc<crate::auth::Principal>>,
}

impl Caller {
    /// Refuses a model the caller's tenant may not use.
    pub fn require_model(&self, model: &str) -> Result<(), ModelNotAllowed> {
        match &self.principal {
            Some(p) if !p.settings.allows(model) => Err(ModelNotAllowed {
                model: model.to_string(),
                tenant: p.tenant.clone(),
            }),
            _ => Ok(()),
        }
    }
}

/// A tenant asked for a model it may not use (HTTP 403 `model_not_allowed`).
#[derive(Debug, Clone)]
pub struct ModelNotAllowed {
    /// Model id.
    pub model: String,
    /// Tenant id.
    pub tenant: String,
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
    /// A complete tool call, arguments validated and through the policy.
    ToolCall(ToolCall),
    /// The end.
    Done {
        /// Why it ended.
        finish_reason: FinishReason,
        /// Token counts.
        usage: Usage,
    },
}
