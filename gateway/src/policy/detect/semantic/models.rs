//! Embedding models of the semantic detector, loaded once per process and directory: every
//! policy (and every reload of it) naming the same directory shares one model.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use engine::{Embedder, EmbeddingSpec};

use crate::policy::detect::loaded::LoadedOnce;

/// Longest window in tokens (MiniLM's `max_seq_length`); windows are cut shorter in words.
const MAX_TOKENS: usize = 256;

static LOADED: LazyLock<LoadedOnce<Embedder>> = LazyLock::new(LoadedOnce::default);

/// The model in `dir` (a sentence-transformers directory), loaded on first use. Blocking.
pub fn load(dir: &Path) -> Result<Arc<Embedder>, String> {
    LOADED.get(dir, |dir| {
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let spec = EmbeddingSpec {
            id,
            dir: dir.to_path_buf(),
            max_tokens: MAX_TOKENS,
        };
        Embedder::load(&spec).map_err(|e| e.to_string())
    })
}
