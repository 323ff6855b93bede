//! Configuration: strict YAML parsing, environment overrides, validation into runtime types.
//!
//! Errors name the file, the key path and the line (`config/gatehouse.yaml:18: models[0].path: ...`).

mod env;
mod fleet;
pub mod locate;
mod observe;
mod raw;

pub use fleet::{
    check_id, AuthConfig, CacheConfig, CacheStore, ConfigKey, FailMode, Limits, OnError,
    RedisConfig, Role, TenantConfig, Tenants,
};
pub use observe::{AuditConfig, OnFull, TelemetryConfig, MIN_HMAC_KEY_BYTES};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use locate::Segment;
use raw::{
    RawBackend, RawConfig, RawDtype, RawKind, RawModel, RawRag, RawRouting, RawSpeculative,
    RawStoreKind, RawTools, RawWatchedDir,
};

/// A configuration error; `Display` gives `file:line: key: message`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The config file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key is malformed, missing, unknown or has an invalid value.
    #[error("{file}{}: {key}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The config file.
        file: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// Key path such as `models[0].path`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub source: PathBuf,
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Served models, in file order.
    pub models: Vec<ModelConfig>,
    /// Guardrail policies; `None` turns guardrails off.
    pub policies: Option<WatchedDir>,
    /// Prompt templates; `None` turns templates off.
    pub prompts: Option<WatchedDir>,
    /// Server-side tools; none when the config has no `tools:`.
    pub tools: ToolsConfig,
    /// Retrieval; `None` turns it off.
    pub rag: Option<RagConfig>,
    /// API keys, or `auth: none`.
    pub auth: AuthConfig,
    /// Tenants: policy, models and limits.
    pub tenants: Tenants,
    /// Shared state of the replicas; `None` keeps everything in this process.
    pub redis: Option<RedisConfig>,
    /// The response cache; `None` turns it off.
    pub cache: Option<CacheConfig>,
    /// The audit log; `None` turns it off.
    pub audit: Option<AuditConfig>,
    /// Tracing export.
    pub telemetry: TelemetryConfig,
}

/// `rag:` settings.
#[derive(Debug, Clone)]
pub struct RagConfig {
    /// Where the chunks are stored.
    pub store: StoreConfig,
    /// Id of the `kind: embedding` model that embeds chunks and queries.
    pub embedding_model: String,
    /// Chunk length and overlap, in the embedding model's tokens.
    pub chunk: crate::rag::chunk::ChunkSize,
}

/// `rag.store`.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// In-process Qdrant Edge keeping its shards under `data_dir`.
    Edge {
        /// Data directory (one subdirectory per collection).
        data_dir: PathBuf,
    },
    /// A Qdrant server or cluster over gRPC.
    Qdrant {
        /// gRPC URL, e.g. `http://127.0.0.1:6334`.
        url: String,
        /// API key, read from the environment variable named by `api_key_env`.
        api_key: Option<String>,
        /// Time one store call may take.
        timeout: Duration,
    },
}

/// `tools:` settings.
#[derive(Debug, Clone)]
pub struct ToolsConfig {
    /// Server-side tool executions per request before the model must answer in text.
    pub max_steps: usize,
    /// Time one execution may take.
    pub step_timeout: Duration,
    /// `calculator` is enabled.
    pub calculator: bool,
    /// `http_get` settings, when enabled.
    pub http_get: Option<HttpGetConfig>,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            max_steps: 4,
            step_timeout: Duration::from_secs(10),
            calculator: false,
            http_get: None,
        }
    }
}

/// `tools.http_get:` settings.
#[derive(Debug, Clone)]
pub struct HttpGetConfig {
    /// URL prefixes that may be fetched, normalised.
    pub allow: Vec<String>,
    /// Bytes of the body handed to the model.
    pub max_bytes: usize,
}

/// `policies:` and `prompts:` settings: a directory of files, reloaded when it changes.
#[derive(Debug, Clone)]
pub struct WatchedDir {
    /// The directory.
    pub dir: PathBuf,
    /// Reload when the directory changes.
    pub watch: bool,
    /// How often the directory is checked for changes.
    pub poll_interval: Duration,
}

/// `server:` settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Time allowed until response headers.
    pub request_timeout: Duration,
    /// Requests in flight before new ones get 503.
    pub max_in_flight: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
}

/// Sequences a local chat model decodes together per engine when the config does not say:
/// batched decoding measured best at 4 on 2 cores (docs/performance.md).
pub const LOCAL_BATCH: usize = 4;
/// The most sequences one local engine batches: each holds a KV cache in memory.
pub const MAX_LOCAL_BATCH: usize = 64;

/// One served model.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Model id clients send.
    pub id: String,
    /// Generations running at once.
    pub max_concurrent: usize,
    /// Requests waiting for a slot before new ones get 429.
    pub max_queue: usize,
    /// Where it runs.
    pub backend: BackendConfig,
    /// Further backends serving the same model (`base_urls:` beyond the first, or local
    /// `replicas:` beyond one); requests are spread by `routing`.
    pub replicas: Vec<BackendConfig>,
    /// How requests are spread over `backend` and `replicas`.
    pub routing: crate::routing::Policy,
}

/// Where a model runs.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// In-process mistral.rs.
    Local(LocalModelConfig),
    /// An in-process sentence-embedding model (`kind: embedding`).
    LocalEmbedding(LocalEmbeddingConfig),
    /// An OpenAI-compatible upstream.
    Remote(RemoteModelConfig),
}

/// A sentence-transformers directory loaded in-process.
#[derive(Debug, Clone)]
pub struct LocalEmbeddingConfig {
    /// config.json, model.safetensors, tokenizer.json.
    pub dir: PathBuf,
    /// Longest input in tokens; longer inputs are truncated.
    pub max_input_tokens: usize,
}

/// A GGUF file loaded in-process.
#[derive(Debug, Clone)]
pub struct LocalModelConfig {
    /// Absolute path of the GGUF file.
    pub path: PathBuf,
    /// Weights dtype.
    pub dtype: engine::DType,
    /// Draft model for speculative decoding.
    pub draft: Option<engine::DraftSpec>,
    /// Finished sequences kept for prompt-prefix reuse; 0 turns the prefix cache off.
    pub prefix_cache: usize,
}

/// Most draft tokens per step accepted in config: beyond it a miss wastes more than a step.
const MAX_GAMMA: usize = 16;
/// Draft tokens per step when `gamma` is not given.
const DEFAULT_GAMMA: usize = 4;

/// An upstream OpenAI-compatible API.
#[derive(Debug, Clone)]
pub struct RemoteModelConfig {
    /// Base URL up to and including `/v1`, without trailing slash.
    pub base_url: String,
    /// Model name sent upstream.
    pub upstream_model: String,
    /// Bearer token, read from the environment variable named in the config.
    pub api_key: Option<String>,
    /// Whole-request timeout upstream.
    pub timeout: Duration,
}

/// Default config path, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/gatehouse.yaml";

impl Config {
    /// Reads, overrides from the process environment, and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Self::from_str_with_env(&src, path, std::env::vars())
    }

    /// Parses `src` as if read from `path`, with `vars` as the environment.
    pub fn from_str_with_env(
        src: &str,
        path: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let invalid = |path: &[Segment], message: String| ConfigError::Invalid {
            file: file.clone(),
            line: locate::line_of(src, path),
            key: if path.is_empty() {
                "(root)".into()
            } else {
                locate::render(path)
            },
            message,
        };
        // Parse the file alone first, so its own mistakes are reported with serde's positions.
        let mut raw: RawConfig = deserialize(serde_yaml::Deserializer::from_str(src), &file)?;
        // One read of the environment serves both the overrides and the API keys.
        let vars: HashMap<String, String> = vars.into_iter().collect();
        let overrides = env::collect(vars.clone());
        if !overrides.is_empty() {
            let mut tree: serde_yaml::Value =
                serde_yaml::from_str(src).map_err(|e| invalid(&[], e.to_string()))?;
            for ov in &overrides {
                env::apply(&mut tree, ov).map_err(|m| invalid(&ov.path, m))?;
            }
            let vars: Vec<&str> = overrides.iter().map(|o| o.var.as_str()).collect();
            raw = deserialize(tree, &format!("{file} (with {})", vars.join(", ")))?;
        }
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut config = validate(raw, &base, &vars).map_err(|(p, m)| invalid(&p, m))?;
        config.source = path.to_path_buf();
        Ok(config)
    }

    /// The model entry with this id.
    pub fn model(&self, id: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.id == id)
    }
}

fn deserialize<'de, D>(de: D, file: &str) -> Result<RawConfig, ConfigError>
where
    D: serde::Deserializer<'de, Error = serde_yaml::Error>,
{
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.location().map(|l| l.line());
        // serde_yaml appends " at line N column M"; the line is already in the prefix.
        let mut message = inner.to_string();
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        // ... and prefixes its own (shorter) path, which `key` already gives in full.
        if let Some((prefix, rest)) = message.split_once(": ") {
            if !prefix.contains(' ') {
                message = rest.to_string();
            }
        }
        ConfigError::Invalid {
            file: file.to_string(),
            line,
            key,
            message,
        }
    })
}

type Invalid = (Vec<Segment>, String);

fn key(parts: &[Segment], k: &str) -> Vec<Segment> {
    let mut p = parts.to_vec();
    p.push(Segment::Key(k.into()));
    p
}

fn validate(
    raw: RawConfig,
    base: &Path,
    vars: &HashMap<String, String>,
) -> Result<Config, Invalid> {
    let server_path = [Segment::Key("server".into())];
    let s = raw.server;
    let listen_raw = s.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen = listen_raw.parse::<SocketAddr>().map_err(|e| {
        (
            key(&server_path, "listen"),
            format!("`{listen_raw}` is not HOST:PORT with an IP host: {e}"),
        )
    })?;
    let positive = |v: Option<u64>, default: u64, name: &str| -> Result<u64, Invalid> {
        match v.unwrap_or(default) {
            0 => Err((key(&server_path, name), "must be greater than 0".into())),
            n => Ok(n),
        }
    };
    let server = ServerConfig {
        listen,
        body_limit_bytes: positive(s.body_limit_bytes, 1 << 20, "body_limit_bytes")? as usize,
        request_timeout: Duration::from_secs(positive(
            s.request_timeout_secs,
            300,
            "request_timeout_secs",
        )?),
        max_in_flight: positive(s.max_in_flight.map(|v| v as u64), 256, "max_in_flight")? as usize,
        shutdown_grace: Duration::from_secs(s.shutdown_grace_secs.unwrap_or(30)),
    };
    if raw.models.is_empty() {
        return Err((
            vec![Segment::Key("models".into())],
            "at least one model is required".into(),
        ));
    }
    let mut models = Vec::with_capacity(raw.models.len());
    for (i, m) in raw.models.into_iter().enumerate() {
        let at = [Segment::Key("models".into()), Segment::Index(i)];
        if models.iter().any(|x: &ModelConfig| x.id == m.id) {
            return Err((key(&at, "id"), format!("duplicate model id `{}`", m.id)));
        }
        models.push(validate_model(m, &at, base, vars)?);
    }
    let policies = watched_dir(raw.policies, "policies", base)?;
    let prompts = watched_dir(raw.prompts, "prompts", base)?;
    let tools = match raw.tools {
        None => ToolsConfig::default(),
        Some(t) => validate_tools(t)?,
    };
    let rag = match raw.rag {
        None => None,
        Some(r) => Some(validate_rag(r, &models, base, vars)?),
    };
    let redis = fleet::validate_redis(raw.redis, vars)?;
    let tenants = fleet::validate_tenants(raw.tenants, &models)?;
    let auth = fleet::validate_auth(raw.auth, &tenants, redis.as_ref(), vars)?;
    let cache = fleet::validate_cache(raw.cache, redis.as_ref())?;
    let audit = observe::validate_audit(raw.audit, base, vars)?;
    let telemetry = observe::validate_telemetry(raw.telemetry)?;
    Ok(Config {
        source: PathBuf::new(),
        server,
        models,
        policies,
        prompts,
        tools,
        rag,
        auth,
        tenants,
        redis,
        cache,
        audit,
        telemetry,
    })
}

fn validate_rag(
    r: RawRag,
    models: &[ModelConfig],
    base: &Path,
    vars: &HashMap<String, String>,
) -> Result<RagConfig, Invalid> {
    let at = [Segment::Key("rag".into())];
    let not_for = |present: bool, k: &str, store: &str| -> Result<(), Invalid> {
        if present {
            Err((key(&at, k), format!("not allowed for store {store}")))
        } else {
            Ok(())
        }
    };
    let store = match r.store.unwrap_or(RawStoreKind::Edge) {
        RawStoreKind::Edge => {
            not_for(r.url.is_some(), "url", "edge")?;
            not_for(r.api_key_env.is_some(), "api_key_env", "edge")?;
            not_for(r.timeout_ms.is_some(), "timeout_ms", "edge")?;
            let dir = r.data_dir.as_deref().unwrap_or("../data/rag");
            StoreConfig::Edge {
                data_dir: base.join(dir),
            }
        }
        RawStoreKind::Qdrant => {
            not_for(r.data_dir.is_some(), "data_dir", "qdrant")?;
            let url = r
                .url
                .ok_or_else(|| (key(&at, "url"), "required for store qdrant".into()))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err((
                    key(&at, "url"),
                    format!("`{url}` must start with http:// or https:// (Qdrant's gRPC port, usually 6334)"),
                ));
            }
            let api_key = match r.api_key_env {
                None => None,
                Some(var) => Some(vars.get(&var).cloned().ok_or_else(|| {
                    (
                        key(&at, "api_key_env"),
                        format!("environment variable {var} is not set"),
                    )
                })?),
            };
            let timeout = match r.timeout_ms.unwrap_or(5000) {
                0 => return Err((key(&at, "timeout_ms"), "must be greater than 0".into())),
                ms => Duration::from_millis(ms),
            };
            StoreConfig::Qdrant {
                url,
                api_key,
                timeout,
            }
        }
    };
    let embedders: Vec<&ModelConfig> = models
        .iter()
        .filter(|m| matches!(m.backend, BackendConfig::LocalEmbedding(_)))
        .collect();
    let (embedding_model, max_input) = match (&r.embedding_model, embedders.as_slice()) {
        (Some(id), _) => match models.iter().find(|m| &m.id == id) {
            Some(ModelConfig {
                backend: BackendConfig::LocalEmbedding(e),
                ..
            }) => (id.clone(), e.max_input_tokens),
            Some(_) => {
                return Err((
                    key(&at, "embedding_model"),
                    format!("`{id}` is not a `kind: embedding` model"),
                ))
            }
            None => {
                return Err((
                    key(&at, "embedding_model"),
                    format!("no model `{id}` under models:"),
                ))
            }
        },
        (None, [only]) => match &only.backend {
            BackendConfig::LocalEmbedding(e) => (only.id.clone(), e.max_input_tokens),
            _ => unreachable!("filtered to embedding models"),
        },
        (None, []) => {
            return Err((
                key(&at, "embedding_model"),
                "retrieval needs a `kind: embedding` model under models:".into(),
            ))
        }
        (None, _) => {
            return Err((
                key(&at, "embedding_model"),
                "several embedding models are configured: name one".into(),
            ))
        }
    };
    let d = crate::rag::chunk::ChunkSize::default();
    // Token counts saturate at the model's limit (inputs are truncated), so a chunk must be
    // shorter than it for an overlong paragraph to be seen and cut.
    let below = max_input.saturating_sub(1);
    let max_tokens = r.chunk_tokens.unwrap_or(d.max_tokens.min(below));
    if !(16..=below).contains(&max_tokens) {
        return Err((
            key(&at, "chunk_tokens"),
            format!(
                "must be between 16 and {below} (below `{embedding_model}`'s max_input_tokens)"
            ),
        ));
    }
    let overlap_tokens = r
        .overlap_tokens
        .unwrap_or(d.overlap_tokens.min(max_tokens / 4));
    if overlap_tokens > max_tokens / 2 {
        return Err((
            key(&at, "overlap_tokens"),
            format!("must be at most half of chunk_tokens ({})", max_tokens / 2),
        ));
    }
    Ok(RagConfig {
        store,
        embedding_model,
        chunk: crate::rag::chunk::ChunkSize {
            max_tokens,
            overlap_tokens,
        },
    })
}

fn validate_tools(t: RawTools) -> Result<ToolsConfig, (Vec<Segment>, String)> {
    let at = [Segment::Key("tools".into())];
    let d = ToolsConfig::default();
    let max_steps = t.max_steps.unwrap_or(d.max_steps);
    if !(1..=16).contains(&max_steps) {
        return Err((key(&at, "max_steps"), "must be between 1 and 16".into()));
    }
    let step_timeout = match t.step_timeout_ms {
        None => d.step_timeout,
        Some(0) => return Err((key(&at, "step_timeout_ms"), "must be greater than 0".into())),
        Some(ms) => Duration::from_millis(ms),
    };
    let http_get = match t.http_get {
        None => None,
        Some(h) => {
            let at = key(&at, "http_get");
            if h.allow.is_empty() {
                return Err((key(&at, "allow"), "list at least one URL prefix".into()));
            }
            let mut allow = Vec::with_capacity(h.allow.len());
            for (i, p) in h.allow.iter().enumerate() {
                let mut k = key(&at, "allow");
                k.push(Segment::Index(i));
                allow.push(crate::tools::http_get::normalise_prefix(p).map_err(|e| (k, e))?);
            }
            let max_bytes = h.max_bytes.unwrap_or(65536);
            if !(1..=16 << 20).contains(&max_bytes) {
                return Err((
                    key(&at, "max_bytes"),
                    "must be between 1 and 16777216".into(),
                ));
            }
            Some(HttpGetConfig { allow, max_bytes })
        }
    };
    Ok(ToolsConfig {
        max_steps,
        step_timeout,
        calculator: t.calculator.is_some(),
        http_get,
    })
}

fn watched_dir(
    raw: Option<RawWatchedDir>,
    section: &str,
    base: &Path,
) -> Result<Option<WatchedDir>, (Vec<Segment>, String)> {
    let Some(p) = raw else { return Ok(None) };
    let at = [Segment::Key(section.into())];
    let dir = base.join(&p.dir);
    if !dir.is_dir() {
        return Err((
            key(&at, "dir"),
            format!("{} is not a directory", dir.display()),
        ));
    }
    let ms = p.poll_interval_ms.unwrap_or(1000);
    if ms == 0 {
        return Err((
            key(&at, "poll_interval_ms"),
            "must be greater than 0".into(),
        ));
    }
    Ok(Some(WatchedDir {
        dir,
        watch: p.watch.unwrap_or(true),
        poll_interval: Duration::from_millis(ms),
    }))
}

fn validate_model(
    m: RawModel,
    at: &[Segment],
    base: &Path,
    vars: &HashMap<String, String>,
) -> Result<ModelConfig, Invalid> {
    if m.id.trim().is_empty() || m.id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err((
            key(at, "id"),
            "must be non-empty, without spaces or control characters".into(),
        ));
    }
    let not_for = |present: bool, k: &str, backend: &str| -> Result<(), Invalid> {
        if present {
            Err((key(at, k), format!("not allowed for {backend}")))
        } else {
            Ok(())
        }
    };
    let kind = m.kind.unwrap_or(RawKind::Chat);
    if kind == RawKind::Chat {
        not_for(
            m.max_input_tokens.is_some(),
            "max_input_tokens",
            "kind chat",
        )?;
    }
    let mut replicas: Vec<BackendConfig> = Vec::new();
    let backend = match m.backend {
        RawBackend::Local if kind == RawKind::Embedding => {
            for (present, k) in [
                (m.dtype.is_some(), "dtype"),
                (m.draft.is_some(), "draft"),
                (m.gamma.is_some(), "gamma"),
                (m.speculative.is_some(), "speculative"),
                (m.prefix_cache.is_some(), "prefix_cache"),
                (m.replicas.is_some(), "replicas"),
                (m.routing.is_some(), "routing"),
            ] {
                not_for(present, k, "kind embedding")?;
            }
            let path = m
                .path
                .ok_or_else(|| (key(at, "path"), "required for backend local".into()))?;
            let dir = base.join(&path);
            for f in ["config.json", "model.safetensors", "tokenizer.json"] {
                if !dir.join(f).is_file() {
                    return Err((
                        key(at, "path"),
                        format!(
                            "{} has no {f} (a sentence-transformers directory); run scripts/fetch-models",
                            dir.display()
                        ),
                    ));
                }
            }
            let max_input_tokens = m.max_input_tokens.unwrap_or(256);
            if !(2..=512).contains(&max_input_tokens) {
                return Err((
                    key(at, "max_input_tokens"),
                    "must be between 2 and 512".into(),
                ));
            }
            BackendConfig::LocalEmbedding(LocalEmbeddingConfig {
                dir,
                max_input_tokens,
            })
        }
        RawBackend::Remote if kind == RawKind::Embedding => {
            return Err((
                key(at, "kind"),
                "embedding models are served in-process (backend local)".into(),
            ))
        }
        RawBackend::Local => {
            not_for(m.base_url.is_some(), "base_url", "backend local")?;
            not_for(
                m.upstream_model.is_some(),
                "upstream_model",
                "backend local",
            )?;
            not_for(m.api_key_env.is_some(), "api_key_env", "backend local")?;
            not_for(m.timeout_secs.is_some(), "timeout_secs", "backend local")?;
            not_for(m.base_urls.is_some(), "base_urls", "backend local")?;
            let path = m
                .path
                .ok_or_else(|| (key(at, "path"), "required for backend local".into()))?;
            let path = model_file(base, &path, at, "path")?;
            let dtype = match m.dtype.unwrap_or(RawDtype::F32) {
                RawDtype::F32 => engine::DType::F32,
                RawDtype::F16 => engine::DType::F16,
                RawDtype::Bf16 => engine::DType::Bf16,
                RawDtype::Auto => engine::DType::Auto,
            };
            let draft = validate_draft(m.draft.as_deref(), m.gamma, m.speculative, at, base)?;
            let prefix_cache = m.prefix_cache.unwrap_or(engine::DEFAULT_PREFIX_CACHE);
            if prefix_cache > 256 {
                return Err((
                    key(at, "prefix_cache"),
                    "at most 256 cached sequences (0 turns the prefix cache off)".into(),
                ));
            }
            let n = m.replicas.unwrap_or(1);
            if !(1..=16).contains(&n) {
                return Err((key(at, "replicas"), "must be between 1 and 16".into()));
            }
            let local = LocalModelConfig {
                path,
                dtype,
                draft,
                prefix_cache,
            };
            replicas = vec![BackendConfig::Local(local.clone()); n - 1];
            BackendConfig::Local(local)
        }
        RawBackend::Remote => {
            not_for(m.path.is_some(), "path", "backend remote")?;
            not_for(m.dtype.is_some(), "dtype", "backend remote")?;
            not_for(m.draft.is_some(), "draft", "backend remote")?;
            not_for(m.gamma.is_some(), "gamma", "backend remote")?;
            not_for(m.speculative.is_some(), "speculative", "backend remote")?;
            not_for(m.prefix_cache.is_some(), "prefix_cache", "backend remote")?;
            not_for(
                m.replicas.is_some(),
                "replicas",
                "backend remote (list base_urls)",
            )?;
            let urls = match (m.base_url, m.base_urls) {
                (Some(_), Some(_)) => {
                    return Err((
                        key(at, "base_urls"),
                        "give base_url or base_urls, not both".into(),
                    ))
                }
                (None, None) => {
                    return Err((key(at, "base_url"), "required for backend remote".into()))
                }
                (Some(u), None) => vec![(u, key(at, "base_url"))],
                (None, Some(us)) if us.is_empty() => {
                    return Err((key(at, "base_urls"), "list at least one URL".into()))
                }
                (None, Some(us)) => us
                    .into_iter()
                    .enumerate()
                    .map(|(i, u)| {
                        let mut p = key(at, "base_urls");
                        p.push(Segment::Index(i));
                        (u, p)
                    })
                    .collect(),
            };
            for (i, (url, p)) in urls.iter().enumerate() {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err((
                        p.clone(),
                        format!("`{url}` must start with http:// or https://"),
                    ));
                }
                if urls[..i].iter().any(|(u, _)| u == url) {
                    return Err((p.clone(), format!("`{url}` is listed twice")));
                }
            }
            let api_key = match m.api_key_env {
                None => None,
                Some(var) => Some(vars.get(&var).cloned().ok_or_else(|| {
                    (
                        key(at, "api_key_env"),
                        format!("environment variable {var} is not set"),
                    )
                })?),
            };
            let timeout = match m.timeout_secs.unwrap_or(300) {
                0 => return Err((key(at, "timeout_secs"), "must be greater than 0".into())),
                n => Duration::from_secs(n),
            };
            let upstream_model = m.upstream_model.unwrap_or_else(|| m.id.clone());
            let mut all = urls.into_iter().map(|(url, _)| {
                BackendConfig::Remote(RemoteModelConfig {
                    base_url: url.trim_end_matches('/').to_string(),
                    upstream_model: upstream_model.clone(),
                    api_key: api_key.clone(),
                    timeout,
                })
            });
            let first = all.next().expect("at least one URL");
            replicas = all.collect();
            first
        }
    };
    let routing = match m.routing {
        None | Some(RawRouting::Affinity) => crate::routing::Policy::Affinity,
        Some(RawRouting::RoundRobin) => crate::routing::Policy::RoundRobin,
        Some(RawRouting::LeastLoaded) => crate::routing::Policy::LeastLoaded,
    };
    let local = matches!(backend, BackendConfig::Local(_));
    let engines = 1 + replicas.len();
    // Local chat models batch up to LOCAL_BATCH sequences per engine (replica); embedding
    // models serve one request at a time; remote upstreams take many.
    let max_concurrent = m.max_concurrent.unwrap_or(match &backend {
        BackendConfig::Local(_) => LOCAL_BATCH * engines,
        BackendConfig::LocalEmbedding(_) => engines,
        _ => 64,
    });
    if max_concurrent == 0 {
        return Err((key(at, "max_concurrent"), "must be greater than 0".into()));
    }
    if local && max_concurrent > MAX_LOCAL_BATCH * engines {
        return Err((
            key(at, "max_concurrent"),
            format!("local models batch at most {MAX_LOCAL_BATCH} sequences per engine (replica)"),
        ));
    }
    Ok(ModelConfig {
        id: m.id,
        max_concurrent,
        max_queue: m.max_queue.unwrap_or(32),
        backend,
        replicas,
        routing,
    })
}

/// A model file named at key `k`, relative to the config's directory; it must exist.
fn model_file(base: &Path, rel: &str, at: &[Segment], k: &str) -> Result<PathBuf, Invalid> {
    let path = base.join(rel);
    if path.is_file() {
        Ok(path)
    } else {
        Err((
            key(at, k),
            format!(
                "{} does not exist; run scripts/fetch-models",
                path.display()
            ),
        ))
    }
}

/// `draft`, `gamma` and `speculative` of a local model.
fn validate_draft(
    draft: Option<&str>,
    gamma: Option<usize>,
    speculative: Option<RawSpeculative>,
    at: &[Segment],
    base: &Path,
) -> Result<Option<engine::DraftSpec>, Invalid> {
    let Some(draft) = draft else {
        for (present, k) in [
            (gamma.is_some(), "gamma"),
            (speculative.is_some(), "speculative"),
        ] {
            if present {
                return Err((
                    key(at, k),
                    "needs `draft:` (a draft model to speculate with)".into(),
                ));
            }
        }
        return Ok(None);
    };
    let path = model_file(base, draft, at, "draft")?;
    let gamma = gamma.unwrap_or(DEFAULT_GAMMA);
    if !(1..=MAX_GAMMA).contains(&gamma) {
        return Err((
            key(at, "gamma"),
            format!("must be between 1 and {MAX_GAMMA}"),
        ));
    }
    let mode = match speculative.unwrap_or(RawSpeculative::On) {
        RawSpeculative::On => engine::SpeculativeMode::On,
        RawSpeculative::Auto => engine::SpeculativeMode::Auto,
    };
    Ok(Some(engine::DraftSpec { path, gamma, mode }))
}

#[cfg(test)]
mod tests;
