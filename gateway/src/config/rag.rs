//! `rag:`: where retrieval keeps its chunks and how it cuts them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::locate::Segment;
use super::raw::{RawRag, RawStoreKind};
use super::{key, BackendConfig, Invalid, ModelConfig};

/// `rag:` settings.
#[derive(Debug, Clone)]
pub struct RagConfig {
    /// Where the chunks are stored.
    pub store: StoreConfig,
    /// Id of the `kind: embedding` model that embeds chunks and queries.
    pub embedding_model: String,
    /// Chunk length and overlap, in the embedding model's tokens.
    pub chunk: ChunkSize,
}

/// How long chunks are, in the embedding model's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSize {
    /// Most tokens in a chunk (its heading path included).
    pub max_tokens: usize,
    /// Tokens of the previous chunk repeated at the start of the next, within a section.
    pub overlap_tokens: usize,
}

impl Default for ChunkSize {
    /// MiniLM reads 256 tokens; 200 leaves room for the heading path.
    fn default() -> Self {
        Self {
            max_tokens: 200,
            overlap_tokens: 40,
        }
    }
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

pub(super) fn validate_rag(
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
    let d = ChunkSize::default();
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
        chunk: ChunkSize {
            max_tokens,
            overlap_tokens,
        },
    })
}

/// Collection names: 1-64 chars of `[A-Za-z0-9_-]`.
///
/// Names become directory names, so this also rules out path traversal.
pub fn valid_collection_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// How retrieval searches a collection (`retrieval.mode` in a policy, `mode` in
/// `POST /v1/rag/search`, `gatehouse rag search --mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Nearest neighbours of the query's embedding.
    Dense,
    /// Dense and keyword (BM25) search fused: finds exact identifiers (CVE ids, hashes,
    /// hostnames) that embeddings miss (docs/rag.md, "Hybrid retrieval").
    #[default]
    Hybrid,
}

impl SearchMode {
    /// Its name in configuration and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Hybrid => "hybrid",
        }
    }
}

impl std::str::FromStr for SearchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dense" => Ok(Self::Dense),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(format!("`{other}`: expected dense or hybrid")),
        }
    }
}
