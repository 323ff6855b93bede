//! `models:`: what each served model is, where it runs and how its backends are chosen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::locate::Segment;
use super::raw::{RawBackend, RawDtype, RawKind, RawModel, RawRouting, RawSpeculative};
use super::{key, Invalid};

/// Sequences a local chat model decodes together per engine when the config does not say:
/// batched decoding measured best at 4 on 2 cores (docs/performance.md).
pub const LOCAL_BATCH: usize = 4;
/// The most sequences one local engine batches: each holds a KV cache in memory.
pub const MAX_LOCAL_BATCH: usize = 64;

/// How a model's backends are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RoutingPolicy {
    /// By prompt prefix, bounded by load (the default).
    #[default]
    Affinity,
    /// In turn.
    RoundRobin,
    /// The one with the fewest requests in flight.
    LeastLoaded,
}

impl RoutingPolicy {
    /// Config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingPolicy::Affinity => "affinity",
            RoutingPolicy::RoundRobin => "round_robin",
            RoutingPolicy::LeastLoaded => "least_loaded",
        }
    }
}

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
    pub routing: RoutingPolicy,
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

pub(super) fn validate_model(
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
                if let Err(e) = reqwest::Url::parse(url) {
                    return Err((p.clone(), format!("`{url}` is not a valid URL: {e}")));
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
        None | Some(RawRouting::Affinity) => RoutingPolicy::Affinity,
        Some(RawRouting::RoundRobin) => RoutingPolicy::RoundRobin,
        Some(RawRouting::LeastLoaded) => RoutingPolicy::LeastLoaded,
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
