//! The served models: their configuration, admission control and loading state.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::backends::embedding::EmbeddingBackend;
use crate::backends::local::LocalBackend;
use crate::backends::remote::RemoteBackend;
use crate::backends::Backend;
use crate::config::{BackendConfig, Config, ModelConfig};
use crate::domain::admission::Admission;

/// Where a model is in its life.
#[derive(Clone)]
pub enum ModelState {
    /// Weights are loading.
    Loading,
    /// Serving.
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
}

impl ModelRegistry {
    /// Slots for every configured model; remote ones are ready at once, local ones loading.
    pub fn new(config: &Config) -> Self {
        let slots: Vec<Arc<ModelSlot>> = config
            .models
            .iter()
            .map(|m| {
                let state = match &m.backend {
                    BackendConfig::Local(_) | BackendConfig::LocalEmbedding(_) => {
                        ModelState::Loading
                    }
                    BackendConfig::Remote(r) => match RemoteBackend::new(r.clone()) {
                        Ok(b) => ModelState::Ready(Arc::new(Backend::Remote(b))),
                        Err(e) => ModelState::Failed(e.to_string()),
                    },
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
        Self { slots, by_id }
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
            let state = match load_backend(&slot.config).await {
                Ok(b) => ModelState::Ready(Arc::new(b)),
                Err(e) => ModelState::Failed(e),
            };
            on_progress(&slot.config.id, &state);
            slot.set(state);
        }
    }
}

/// Builds the backend of one model, loading weights for a local one.
pub async fn load_backend(config: &ModelConfig) -> Result<Backend, String> {
    match &config.backend {
        BackendConfig::Local(local) => {
            let spec = engine::ModelSpec {
                id: config.id.clone(),
                path: local.path.clone(),
                dtype: local.dtype,
                max_concurrent: config.max_concurrent,
                draft: local.draft.clone(),
            };
            let model = engine::LocalModel::load(spec)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Backend::Local(LocalBackend::new(Arc::new(model))))
        }
        BackendConfig::LocalEmbedding(e) => {
            let spec = engine::EmbeddingSpec {
                id: config.id.clone(),
                dir: e.dir.clone(),
                max_tokens: e.max_input_tokens,
            };
            let model = tokio::task::spawn_blocking(move || engine::Embedder::load(&spec))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            Ok(Backend::Embedding(EmbeddingBackend::new(Arc::new(model))))
        }
        BackendConfig::Remote(r) => RemoteBackend::new(r.clone())
            .map(Backend::Remote)
            .map_err(|e| e.to_string()),
    }
}
