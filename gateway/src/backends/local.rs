//! An in-process model served by the engine crate.

use std::sync::Arc;

use futures::StreamExt;

use super::{BackendError, BackendStream};
use crate::domain::{ChatEvent, ChatRequest};

/// A loaded local model.
pub struct LocalBackend {
    model: Arc<engine::LocalModel>,
}

impl LocalBackend {
    /// Wraps a loaded model.
    pub fn new(model: Arc<engine::LocalModel>) -> Self {
        Self { model }
    }

    /// The engine model, for state such as running sequences.
    pub fn model(&self) -> &Arc<engine::LocalModel> {
        &self.model
    }

    /// Starts generation; dropping the stream cancels it in the engine.
    pub fn chat(&self, req: &ChatRequest) -> Result<BackendStream, BackendError> {
        let gen = self.model.generate_constrained(
            req.messages.clone(),
            req.sampling.clone(),
            req.constraint.clone(),
        )?;
        Ok(gen
            .map(|ev| match ev {
                Ok(engine::GenerationEvent::Delta(t)) => Ok(ChatEvent::Delta(t)),
                Ok(engine::GenerationEvent::Finished { reason, usage }) => Ok(ChatEvent::Done {
                    finish_reason: reason,
                    usage,
                }),
                Err(e) => Err(BackendError::Engine(e)),
            })
            .boxed())
    }
}
