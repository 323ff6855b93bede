//! The served models: their configuration, admission control and loading state.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::backends::embedding::EmbeddingBackend;
use crate::backends::local::LocalBackend;
use crate::backends::pool::{Member, Pool};
use crate::backends::remote::RemoteBackend;
use crate::backends::{Backend, BackendError};
use crate::config::{BackendConfig, Config, FailMode, ModelConfig};
use crate::domain::admission::Admission;
use crate::kv::Kv;
use crate::metrics::Metrics;

/// Where a model is in its life.
#[derive(Clone)]
pub enum ModelState {
    /// Weights are loading.
    Loading,
    /// Loaded and taking requests.
    Ready(Arc<Backend>),
    /// Loading failed; the reason is shown to clients and at `/readyz`.
    Failed(String),
}

impl ModelState {
    /// `loading`, `ready` or `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            ModelState::Loading => "loading",
            ModelState::Ready(_) => "ready",
            ModelState::Failed(_) => "failed",
        }
    }
}

/// One served model.
pub struct ModelSlot {
    /// Its configuration.
    pub config: ModelConfig,
    /// Its queue.
    pub admission: Admission,
    state: RwLock<ModelState>,
}

impl ModelSlot {
    /// Current state.
    pub fn state(&self) -> ModelState {
        self.state.read().expect("model state lock").clone()
    }

    fn set(&self, s: ModelState) {
        *self.state.write().expect("model state lock") = s;
    }
}

/// All served models, in config order.
pub struct ModelRegistry {
    slots: Vec<Arc<ModelSlot>>,
    by_id: HashMap<String, Arc<ModelSlot>>,
    /// The prefix→backend map's Redis, for pooled models.
    routing_kv: Option<(Kv, FailMode)>,
    metrics: Arc<Metrics>,
}

impl ModelRegistry {
    /// Slots for every configured model; remote ones are ready at once, local ones loading.
    /// Pooled models keep their prefix→backend map in `routing_kv` when given.
    pub fn new(config: &Config, routing_kv: Option<(Kv, FailMode)>, metrics: Arc<Metrics>) -> Self {
        let slots: Vec<Arc<ModelSlot>> = config
            .models
            .iter()
            .map(|m| {
                let state = match &m.backend {
                    BackendConfig::Local(_) | BackendConfig::LocalEmbedding(_) => {
                        ModelState::Loading
                    }
                    BackendConfig::Remote(_) if m.replicas.is_empty() => {
                        match remote_backend(&m.backend) {
                            Ok(b) => ModelState::Ready(Arc::new(b)),
                            Err(e) => ModelState::Failed(e.to_string()),
                        }
                    }
                    BackendConfig::Remote(_) => {
                        let members: Result<Vec<Member>, LoadError> = std::iter::once(&m.backend)
                            .chain(&m.replicas)
                            .map(|b| Ok(Member::new(member_id(b, 0), remote_backend(b)?)))
                            .collect();
                        match members {
                            Ok(members) => ModelState::Ready(Arc::new(Backend::Pool(Pool::new(
                                m.id.clone(),
                                members,
                                m.routing,
                                routing_kv.clone(),
                                metrics.clone(),
                            )))),
                            Err(e) => ModelState::Failed(e.to_string()),
                        }
                    }
                };
                Arc::new(ModelSlot {
                    config: m.clone(),
                    admission: Admission::new(m.max_concurrent, m.max_queue),
                    state: RwLock::new(state),
                })
            })
            .collect();
        let by_id = slots
            .iter()
            .map(|s| (s.config.id.clone(), s.clone()))
            .collect();
        Self {
            slots,
            by_id,
            routing_kv,
            metrics,
        }
    }

    /// The slot serving `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<ModelSlot>> {
        self.by_id.get(id)
    }

    /// All slots in config order.
    pub fn all(&self) -> &[Arc<ModelSlot>] {
        &self.slots
    }

    /// Every model is ready.
    pub fn all_ready(&self) -> bool {
        self.slots
            .iter()
            .all(|s| matches!(s.state(), ModelState::Ready(_)))
    }

    /// Loads the in-process models one after another (they compete for the same cores).
    pub async fn load_local(&self, on_progress: impl Fn(&str, &ModelState)) {
        for slot in &self.slots {
            if matches!(slot.config.backend, BackendConfig::Remote(_)) {
                continue;
            }
            let state = match self.load_slot(&slot.config).await {
                Ok(b) => ModelState::Ready(Arc::new(b)),
                Err(e) => ModelState::Failed(e.to_string()),
            };
            on_progress(&slot.config.id, &state);
            slot.set(state);
        }
    }
}

impl ModelRegistry {
    /// The backend of a local model: one engine, or a pool of replicas.
    async fn load_slot(&self, config: &ModelConfig) -> Result<Backend, LoadError> {
        if config.replicas.is_empty() {
            return load_backend(config).await;
        }
        let mut members = Vec::with_capacity(1 + config.replicas.len());
        for (i, b) in std::iter::once(&config.backend)
            .chain(&config.replicas)
            .enumerate()
        {
            // The model-wide limit is shared out over the replicas' engines.
            let one = ModelConfig {
                backend: b.clone(),
                replicas: Vec::new(),
                max_concurrent: config.max_concurrent.div_ceil(1 + config.replicas.len()),
                ..config.clone()
            };
            let backend = load_backend(&one)
                .await
                .map_err(|e| LoadError::Replica(i, Box::new(e)))?;
            members.push(Member::new(member_id(b, i), backend));
        }
        Ok(Backend::Pool(Pool::new(
            config.id.clone(),
            members,
            config.routing,
            self.routing_kv.clone(),
            self.metrics.clone(),
        )))
    }
}

/// A pool member's id: the upstream URL, or `local/N`.
fn member_id(b: &BackendConfig, i: usize) -> String {
    match b {
        BackendConfig::Remote(r) => r.base_url.clone(),
        _ => format!("local/{i}"),
    }
}

/// Why a model's backend could not be built; its text is the model's `Failed` reason.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The engine refused the model files.
    #[error("{0}")]
    Engine(#[from] engine::EngineError),
    /// The upstream client could not be built.
    #[error("{0}")]
    Remote(#[from] BackendError),
    /// One replica of a pooled model failed.
    #[error("replica {0}: {1}")]
    Replica(usize, Box<LoadError>),
    /// A remote model's replica is not remote (config validation rules this out).
    #[error("not a remote backend")]
    NotRemote,
    /// The loading task panicked or was cancelled.
    #[error("loading stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn remote_backend(b: &BackendConfig) -> Result<Backend, LoadError> {
    match b {
        BackendConfig::Remote(r) => Ok(Backend::Remote(RemoteBackend::new(r.clone())?)),
        _ => Err(LoadError::NotRemote),
    }
}

/// Builds the backend of one model, loading weights for a local one.
pub async fn load_backend(config: &ModelConfig) -> Result<Backend, LoadError> {
    match &config.backend {
        BackendConfig::Local(local) => {
            let spec = engine::ModelSpec {
                id: config.id.clone(),
                path: local.path.clone(),
                dtype: local.dtype,
                max_concurrent: config.max_concurrent,
                draft: local.draft.clone(),
                prefix_cache: local.prefix_cache,
            };
            let model = engine::LocalModel::load(spec).await?;
            Ok(Backend::Local(LocalBackend::new(Arc::new(model))))
        }
        BackendConfig::LocalEmbedding(e) => {
            let spec = engine::EmbeddingSpec {
                id: config.id.clone(),
                dir: e.dir.clone(),
                max_tokens: e.max_input_tokens,
            };
            let model =
                tokio::task::spawn_blocking(move || engine::Embedder::load(&spec)).await??;
            Ok(Backend::Embedding(EmbeddingBackend::new(Arc::new(model))))
        }
        BackendConfig::Remote(r) => Ok(Backend::Remote(RemoteBackend::new(r.clone())?)),
    }
}

/// Bytes of the weight files a local model loads: its GGUF (and its draft's), or an
/// embedding model's `*.safetensors`; `None` for remote models or unreadable files.
pub fn weights_bytes(backend: &crate::config::BackendConfig) -> Option<u64> {
    use crate::config::BackendConfig;
    let size = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| m.len());
    match backend {
        BackendConfig::Local(l) => {
            let draft = l.draft.as_ref().map_or(Some(0), |d| size(&d.path));
            Some(size(&l.path)? + draft?)
        }
        BackendConfig::LocalEmbedding(e) => {
            let files = std::fs::read_dir(&e.dir).ok()?;
            Some(
                files
                    .filter_map(Result::ok)
                    .filter(|f| f.path().extension().is_some_and(|x| x == "safetensors"))
                    .filter_map(|f| size(&f.path()))
                    .sum(),
            )
        }
        BackendConfig::Remote(_) => None,
    }
}
