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
    pub auth: Option<RawAuth>,
    pub tenants: Option<std::collections::BTreeMap<String, RawTenant>>,
    pub redis: Option<RawRedis>,
    pub cache: Option<RawCache>,
    pub audit: Option<RawAudit>,
    pub telemetry: Option<RawTelemetry>,
    pub drift: Option<RawDrift>,
}

/// `drift:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrift {
    pub reference_requests: Option<usize>,
    pub window_requests: Option<usize>,
    pub min_requests: Option<usize>,
    pub psi_threshold: Option<f64>,
    pub baseline_file: Option<String>,
    pub embeddings: Option<RawDriftEmbeddings>,
}

/// `drift.embeddings:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDriftEmbeddings {
    pub model: String,
    pub sample_every: Option<u32>,
}

/// `audit:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub dir: String,
    pub max_file_bytes: Option<u64>,
    pub max_file_age_secs: Option<u64>,
    pub queue: Option<usize>,
    pub on_full: Option<RawOnFull>,
    pub fsync: Option<bool>,
    pub checkpoint_every: Option<u64>,
    pub checkpoint_interval_secs: Option<u64>,
    pub hmac_key_env: Option<String>,
}

/// What happens when the audit queue is full.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawOnFull {
    Drop,
    FailClosed,
}

/// `telemetry:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    pub sample_ratio: Option<f64>,
    pub timeout_ms: Option<u64>,
}

/// `auth:`: the string `none`, or a mapping with `keys:`.
#[derive(Debug)]
pub enum RawAuth {
    None(RawAuthNone),
    Keys(RawAuthKeys),
}

impl<'de> Deserialize<'de> for RawAuth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawAuth;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`none` or a mapping with `keys:`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawAuth, E> {
                match v {
                    "none" => Ok(RawAuth::None(RawAuthNone::default())),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawAuth, A::Error> {
                // Through the same MapAccess, so errors inside keep their path and line.
                RawAuthKeys::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(
                    |k| match k.none {
                        // `none:` beside `keys:` is reported by validation, which knows the line.
                        Some(n) if k.keys.is_empty() && k.redis_keys.is_none() => RawAuth::None(n),
                        _ => RawAuth::Keys(k),
                    },
                )
            }
        }
        d.deserialize_any(Visit)
    }
}

/// `auth:` as a mapping: `keys:` (and `redis_keys:`), or `none:` with its opt-ins.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthKeys {
    #[serde(default)]
    pub keys: Vec<RawKey>,
    /// Also accept keys made by `gatehouse keys create` (stored in Redis).
    pub redis_keys: Option<bool>,
    /// `none: {open_admin, allow_remote}`: no keys, with what `auth: none` keeps closed.
    pub none: Option<RawAuthNone>,
}

/// `auth.none:`: serve without keys, opening what the plain `auth: none` keeps closed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthNone {
    /// The admin endpoints answer anyone (else 403 `admin_closed`).
    pub open_admin: Option<bool>,
    /// Listening on a non-loopback address is allowed (else the config is refused).
    pub allow_remote: Option<bool>,
}

/// One key of `auth.keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub id: String,
    pub tenant: String,
    pub role: Option<RawRole>,
    pub sha256: Option<String>,
    pub key_env: Option<String>,
    /// Plaintext keys are refused with a hint; accepted here only to say so.
    pub key: Option<serde::de::IgnoredAny>,
    pub limits: Option<RawLimits>,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawRole {
    User,
    Admin,
}

/// One entry of `tenants:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    pub policy: Option<String>,
    pub models: Option<Vec<String>>,
    pub limits: Option<RawLimits>,
}

/// Rate limits and quotas of a tenant or a key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub requests_per_minute: Option<u32>,
    pub burst: Option<u32>,
    pub tokens_per_minute: Option<u64>,
    pub concurrent: Option<u32>,
}

/// `redis:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub mode: Option<RawRedisMode>,
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub urls: Option<Vec<String>>,
    pub timeout_ms: Option<u64>,
    pub prefix: Option<String>,
    pub on_error: Option<RawOnError>,
}

/// `redis.on_error:` per feature.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOnError {
    pub auth: Option<RawFailMode>,
    pub rate_limits: Option<RawFailMode>,
    pub cache: Option<RawFailMode>,
    pub routing: Option<RawFailMode>,
}

/// `redis.mode`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawRedisMode {
    Standalone,
    Cluster,
}

/// What a feature does while Redis fails.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawFailMode {
    FailOpen,
    FailClosed,
}

/// `cache:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub store: Option<RawCacheStore>,
    pub ttl_secs: Option<u64>,
    pub max_entries: Option<usize>,
    pub max_entry_bytes: Option<usize>,
    pub when: Option<RawCacheWhen>,
}

/// Where cached answers live.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawCacheStore {
    Memory,
    Redis,
}

/// Which requests are cached.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawCacheWhen {
    Deterministic,
    TemperatureZero,
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
    pub grpc_listen: Option<String>,
    pub body_limit_bytes: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    pub max_in_flight: Option<usize>,
    pub shutdown_grace_secs: Option<u64>,
    pub public_url: Option<String>,
    pub header_read_timeout_secs: Option<u64>,
    pub max_header_bytes: Option<u64>,
    pub max_connections: Option<usize>,
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

/// How a model's backends share its requests.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawRouting {
    Affinity,
    RoundRobin,
    LeastLoaded,
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
    pub prefix_cache: Option<usize>,
    pub replicas: Option<usize>,
    pub routing: Option<RawRouting>,
    // local embedding
    pub max_input_tokens: Option<usize>,
    // remote
    pub base_url: Option<String>,
    pub base_urls: Option<Vec<String>>,
    pub upstream_model: Option<String>,
    pub api_key_env: Option<String>,
    pub timeout_secs: Option<u64>,
}
