//! An in-process sentence-embedding model served by the engine crate.

use std::sync::Arc;

use super::BackendError;

/// Inputs embedded per forward pass: larger batches pad every input to the longest one.
const BATCH: usize = 32;

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
        tokio::task::spawn_blocking(move || {
            let mut out = engine::Embeddings {
                vectors: Vec::with_capacity(texts.len()),
                tokens: 0,
            };
            // Similar lengths together waste less padding; order is restored after.
            let mut order: Vec<usize> = (0..texts.len()).collect();
            order.sort_by_key(|&i| texts[i].len());
            let mut vectors = vec![Vec::new(); texts.len()];
            for chunk in order.chunks(BATCH) {
                let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
                let e = model.embed(&batch)?;
                out.tokens += e.tokens;
                for (&i, v) in chunk.iter().zip(e.vectors) {
                    vectors[i] = v;
                }
            }
            out.vectors = vectors;
            Ok(out)
        })
        .await
        .map_err(|e| BackendError::Engine(engine::EngineError::Internal(e.to_string())))?
        .map_err(BackendError::Engine)
    }
}
