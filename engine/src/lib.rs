//! Gatehouse's engine: GGUF models loaded in-process through mistral.rs, generation streams
//! with cancellation, stop sequences, seeded sampling and speculative decoding. No HTTP.

mod embed;
mod generation;
mod model;
mod sampler;
mod speculative;
mod stop;
mod types;

pub use embed::{check_pipeline, Embedder, EmbeddingSpec, Embeddings, BATCH_TOKENS};
pub use generation::Generation;
pub use model::{LocalModel, ModelSpec, AUTO_MIN_GAIN, DEFAULT_PREFIX_CACHE};
pub use sampler::{distribution, SeededSampler};
pub use speculative::{
    verify as speculative_verify, AutoDecision, DraftSpec, SpeculativeInfo, SpeculativeMode,
    SpeculativeSequence, SpeculativeStats,
};
pub use stop::{Pushed, StopMatcher};
pub use types::*;

/// Errors of the engine area.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model file could not be loaded.
    #[error("cannot load {path}: {reason}")]
    Load {
        /// The GGUF file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The request cannot be served as given (e.g. the prompt exceeds the context).
    #[error("invalid request: {0}")]
    Validation(String),
    /// The forward pass failed.
    #[error("model error: {0}")]
    Model(String),
    /// A bug or an unexpected engine state.
    #[error("internal engine error: {0}")]
    Internal(String),
    /// The engine thread is gone.
    #[error("the engine has stopped")]
    EngineGone,
}

impl EngineError {
    /// The client's request was at fault (HTTP 400), not the server.
    pub fn is_client_error(&self) -> bool {
        matches!(self, EngineError::Validation(_))
    }
}
