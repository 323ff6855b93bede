//! Notes, for the drift monitor, the script of the prompt the model will see (after
//! templates and input redaction) and, on the requests the monitor samples, its text to
//! embed. The audit layer hands both to the monitor when the answer ends.

use std::sync::Arc;

use super::step::{Next, Step};
use crate::domain::{ChatRequest, Role};
use crate::drift::Monitor;
use crate::error::ApiError;
use crate::layers::ChatStream;

/// Most characters of a prompt kept for its embedding (the model reads 256 tokens anyway).
const SAMPLE_CHARS: usize = 2000;

/// See the module docs; `None` passes through.
pub struct DriftNote {
    monitor: Option<Arc<Monitor>>,
}

impl DriftNote {
    /// Notes for `monitor`.
    pub fn new(monitor: Option<Arc<Monitor>>) -> Self {
        Self { monitor }
    }
}

impl Step for DriftNote {
    const NAME: &'static str = "drift";

    async fn call(&self, req: ChatRequest, next: Next) -> Result<ChatStream, ApiError> {
        if let Some(m) = &self.monitor {
            // What the user wrote: system prompts are the application's, not traffic.
            let user = || {
                req.messages
                    .iter()
                    .filter(|m| m.role == Role::User)
                    .map(|m| m.content.as_str())
            };
            let script = crate::drift::script::dominant(user());
            let sample = m
                .samples_next()
                .then(|| user().flat_map(str::chars).take(SAMPLE_CHARS).collect());
            req.trail.update(|t| {
                t.prompt_script = Some(script);
                t.drift_sample = sample;
            });
        }
        next.run(req).await
    }
}
