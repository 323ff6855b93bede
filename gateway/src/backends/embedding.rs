//! An in-process sentence-embedding model served by the engine crate.

use std::sync::Arc;

use super::BackendError;

/// A loaded embedding model.
pub struct EmbeddingBackend {
    model: Arc<engine::Embedder>,
}

impl EmbeddingBackend {
    /// Wraps a loaded model.
    pub fn new(model: Arc<engine::Embedder>) -> Self {
        Self { model }
    }

    /// The engine model.
    pub fn model(&self) -> &Arc<engine::Embedder> {
        &self.model
    }

    /// Embeds `texts` in order, off the async workers.
    pub async fn embed(&self, texts: Vec<String>) -> Result<engine::Embeddings, BackendError> {
        let model = self.model.clone();
        // The engine cuts the inputs into forward passes itself.
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            model.embed(&refs)
        })
        .await
        .map_err(|e| BackendError::Engine(engine::EngineError::Internal(e.to_string())))?
        .map_err(BackendError::Engine)
    }
}
