//! Serde types mirroring the YAML file exactly; `validate` turns them into runtime types.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub models: Vec<RawModel>,
    pub policies: Option<RawWatchedDir>,
    pub prompts: Option<RawWatchedDir>,
    pub tools: Option<RawTools>,
    pub rag: Option<RawRag>,
}

/// `rag:`: the vector store, the embedding model and chunk sizes. Flat for line numbers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRag {
    pub store: Option<RawStoreKind>,
    // edge
    pub data_dir: Option<String>,
    // qdrant
    pub url: Option<String>,
    pub api_key_env: Option<String>,
    pub timeout_ms: Option<u64>,
    pub embedding_model: Option<String>,
    pub chunk_tokens: Option<usize>,
    pub overlap_tokens: Option<usize>,
}

/// Which vector store holds the chunks.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawStoreKind {
    Edge,
    Qdrant,
}

/// `tools:`: server-side tools and the loop's bounds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTools {
    pub max_steps: Option<usize>,
    pub step_timeout_ms: Option<u64>,
    pub calculator: Option<RawEmpty>,
    pub http_get: Option<RawHttpGet>,
}

/// A section whose presence is the setting (`calculator: {}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmpty {}

/// `tools.http_get:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpGet {
    pub allow: Vec<String>,
    pub max_bytes: Option<usize>,
}

/// `policies:` and `prompts:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatchedDir {
    pub dir: String,
    pub watch: Option<bool>,
    pub poll_interval_ms: Option<u64>,
}

/// `server:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub body_limit_bytes: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    pub max_in_flight: Option<usize>,
    pub shutdown_grace_secs: Option<u64>,
    pub admin_token_env: Option<String>,
}

/// Which backend serves a model.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawBackend {
    Local,
    Remote,
}

/// Weights dtype on CPU.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawDtype {
    F32,
    F16,
    Bf16,
    Auto,
}

/// What a model does.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawKind {
    Chat,
    Embedding,
}

/// When a model with a draft uses it.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawSpeculative {
    On,
    Auto,
}

/// One entry of `models:`. Flat rather than a tagged enum so serde keeps line numbers;
/// `validate` checks which keys fit which backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub id: String,
    pub backend: RawBackend,
    pub kind: Option<RawKind>,
    pub max_concurrent: Option<usize>,
    pub max_queue: Option<usize>,
    // local
    pub path: Option<String>,
    pub dtype: Option<RawDtype>,
    pub draft: Option<String>,
    pub gamma: Option<usize>,
    pub speculative: Option<RawSpeculative>,
    // local embedding
    pub max_input_tokens: Option<usize>,
    // remote
    pub base_url: Option<String>,
    pub upstream_model: Option<String>,
    pub api_key_env: Option<String>,
    pub timeout_secs: Option<u64>,
}
