//! Files a detector reads once per process (an embedding model, a name list): every policy,
//! and every reload of it, naming the same file shares one copy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Values loaded from files, by canonical path.
pub struct LoadedOnce<T> {
    by_path: Mutex<HashMap<PathBuf, Arc<T>>>,
}

impl<T> Default for LoadedOnce<T> {
    fn default() -> Self {
        LoadedOnce {
            by_path: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> LoadedOnce<T> {
    /// The value of `path`, from `load` (given the canonical path) on first use. Blocking;
    /// the lock is held while loading, so that two policies compiled at once load once.
    pub fn get(
        &self,
        path: &Path,
        load: impl FnOnce(&Path) -> Result<T, String>,
    ) -> Result<Arc<T>, String> {
        let key = path
            .canonicalize()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut by_path = self.by_path.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = by_path.get(&key) {
            return Ok(v.clone());
        }
        let v = Arc::new(load(&key)?);
        by_path.insert(key, v.clone());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_once_per_file_and_keeps_failures_out() {
        let dir = std::env::temp_dir();
        let file = dir.join(format!("gatehouse-loaded-{}", std::process::id()));
        std::fs::write(&file, "x").expect("write");
        let cache = LoadedOnce::<usize>::default();
        assert!(cache.get(&file, |_| Err("bad".into())).is_err());
        let mut calls = 0;
        for _ in 0..3 {
            let v = cache
                .get(&file, |_| {
                    calls += 1;
                    Ok(7)
                })
                .expect("loads");
            assert_eq!(*v, 7);
        }
        assert_eq!(calls, 1);
        assert!(cache
            .get(&dir.join("no-such-file-here"), |_| Ok(1))
            .is_err());
        std::fs::remove_file(&file).ok();
    }
}
