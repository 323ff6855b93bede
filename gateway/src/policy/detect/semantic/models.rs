//! Embedding models of the semantic detector, loaded once per process and directory: every
//! policy (and every reload of it) naming the same directory shares one model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use engine::{Embedder, EmbeddingSpec};

/// Longest window in tokens (MiniLM's `max_seq_length`); windows are cut shorter in words.
const MAX_TOKENS: usize = 256;

static LOADED: LazyLock<Mutex<HashMap<PathBuf, Arc<Embedder>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The model in `dir` (a sentence-transformers directory), loaded on first use. Blocking.
pub fn load(dir: &Path) -> Result<Arc<Embedder>, String> {
    let key = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    // Held while loading, so that two policies compiled at once load the model once.
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = loaded.get(&key) {
        return Ok(m.clone());
    }
    let id = key
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let spec = EmbeddingSpec {
        id,
        dir: key.clone(),
        max_tokens: MAX_TOKENS,
    };
    let model = Arc::new(Embedder::load(&spec).map_err(|e| e.to_string())?);
    loaded.insert(key, model.clone());
    Ok(model)
}
