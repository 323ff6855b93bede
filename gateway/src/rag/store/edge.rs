//! [`VectorStore`] backed by the in-process Qdrant Edge engine (`qdrant-edge` 0.7.0).
//!
//! Layout: one `EdgeShard` per collection in `<data_dir>/<collection>/`. The
//! engine is synchronous; this file is the async layer, `collection.rs` holds
//! the engine calls.

mod collection;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures::FutureExt as _;
use qdrant_edge::{
    Distance, EdgeConfig, EdgeOptimizersConfig, EdgeShard, EdgeSparseVectorParams,
    EdgeVectorParams, HnswIndexConfig, Modifier, PointId, PointStruct, PointStructPersisted,
    SparseVector, Vector, Vectors,
};

use self::collection::{backend, tenant_filter, Collection};
use super::{
    index, keyword_text, point_id, valid_collection_name, ChunkPoint, CollectionInfo, Hit,
    StoreError, StoreFuture, StoredChunk, VectorStore,
};
use crate::rag::keywords;

/// Name of the single dense vector of every collection.
pub const VECTOR_NAME: &str = "dense";
/// Entries whose presence marks a directory as a shard (names used by qdrant-edge 0.7.0).
const SHARD_MARKERS: [&str; 2] = ["edge_config.json", "segments"];

/// Vector store keeping one Qdrant Edge shard per collection on local disk.
///
/// Methods must be called from within a Tokio runtime: every engine call runs
/// on the blocking thread pool. Only one `EdgeStore` may have a directory open
/// at a time (the engine locks each shard's WAL).
pub struct EdgeStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    /// Held while open: a second opener (another gatehouse on the same data dir) would
    /// corrupt the shards, so it gets a clear error instead.
    _lock: std::fs::File,
    collections: RwLock<HashMap<String, Arc<Collection>>>,
    /// Serializes collection creation so two callers cannot both create one shard.
    create: Mutex<()>,
}

impl EdgeStore {
    /// Opens (creating if needed) `data_dir` and loads every collection stored there.
    ///
    /// Blocks on disk I/O; call it at startup or inside `spawn_blocking`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| io_error(data_dir, e))?;
        let lock = lock(data_dir)?;
        let mut collections = HashMap::new();
        for entry in std::fs::read_dir(data_dir).map_err(|e| io_error(data_dir, e))? {
            let path = entry.map_err(|e| io_error(data_dir, e))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !valid_collection_name(name) || !is_shard_dir(&path) {
                continue;
            }
            // Fail rather than skip: serving without a collection would look like data loss.
            let shard = EdgeShard::load(&path, None).map_err(backend)?;
            collections.insert(name.to_owned(), Arc::new(Collection::new(name, shard)?));
        }
        let collections = RwLock::new(collections);
        let root = data_dir.to_owned();
        let inner = Arc::new(Inner {
            root,
            _lock: lock,
            collections,
            create: Mutex::new(()),
        });
        Ok(Self { inner })
    }

    fn collection(&self, name: &str) -> Result<Arc<Collection>, StoreError> {
        let found = self.inner.get(name)?;
        found.ok_or_else(|| StoreError::NoSuchCollection(name.to_owned()))
    }
}

/// Takes the exclusive lock of `data_dir` (`.lock` in it).
fn lock(data_dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = data_dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "{} is in use by another process (a running gatehouse server?): \
             stop it, or go through its HTTP API (/v1/rag/...)",
            data_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error(&path, e)),
    }
}

impl Inner {
    fn get(&self, name: &str) -> Result<Option<Arc<Collection>>, StoreError> {
        if !valid_collection_name(name) {
            return Err(StoreError::InvalidName(name.to_owned()));
        }
        let map = self
            .collections
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(name).cloned())
    }

    fn ensure(&self, name: &str, dim: usize) -> Result<(), StoreError> {
        let _creating = self.create.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = self.get(name)? {
            return existing.check_dim(name, dim);
        }
        let path = self.root.join(name);
        std::fs::create_dir_all(&path).map_err(|e| io_error(&path, e))?;
        // A shard left by an interrupted creation is adopted, not recreated:
        // `EdgeShard::new` refuses a directory that already holds segments.
        let shard = if is_shard_dir(&path) {
            EdgeShard::load(&path, None)
        } else {
            EdgeShard::new(&path, shard_config(dim))
        };
        let collection = Collection::new(name, shard.map_err(backend)?)?;
        collection.check_dim(name, dim)?;
        collection.create_indexes()?;
        let mut map = self
            .collections
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.insert(name.to_owned(), Arc::new(collection));
        Ok(())
    }

    fn infos(&self) -> Result<Vec<CollectionInfo>, StoreError> {
        let snapshot: Vec<_> = {
            let map = self
                .collections
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            map.iter()
                .map(|(n, c)| (n.clone(), Arc::clone(c)))
                .collect()
        };
        let mut infos = Vec::with_capacity(snapshot.len());
        for (name, c) in snapshot {
            infos.push(CollectionInfo {
                name,
                dim: c.dim,
                points: c.count(None)?,
                indexed: c.shard.info().indexed_vectors_count,
            });
        }
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }
}

impl VectorStore for EdgeStore {
    fn ensure_collection<'a>(&'a self, name: &'a str, dim: usize) -> StoreFuture<'a, ()> {
        let inner = Arc::clone(&self.inner);
        let name = name.to_owned();
        async move {
            if !valid_collection_name(&name) {
                return Err(StoreError::InvalidName(name));
            }
            if dim == 0 {
                return Err(StoreError::Backend(
                    "vector dimension must be at least 1".into(),
                ));
            }
            blocking(move || inner.ensure(&name, dim)).await
        }
        .boxed()
    }

    fn collections(&self) -> StoreFuture<'_, Vec<CollectionInfo>> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.infos()).boxed()
    }

    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        points: Vec<ChunkPoint>,
    ) -> StoreFuture<'a, usize> {
        async move {
            let c = self.collection(collection)?;
            // Validate the whole batch first so a bad point cannot leave it half-written.
            // Keyed by id: a batch repeating a chunk writes it once (last copy wins).
            let mut by_id: BTreeMap<u64, PointStructPersisted> = BTreeMap::new();
            for ChunkPoint { vector, payload } in points {
                c.check_dim(collection, vector.len())?;
                let p = &payload;
                let id = point_id(&p.tenant, &p.source, p.chunk, &p.content_hash);
                let json = serde_json::to_value(&payload).map_err(backend)?;
                let mut named = vec![(VECTOR_NAME, Vector::from(vector))];
                if c.keywords {
                    let k = keywords::document(&keyword_text(&payload));
                    let sparse = SparseVector::new(k.indices, k.values).map_err(backend)?;
                    named.push((index::KEYWORDS_NAME, Vector::from(sparse)));
                }
                let vectors = Vectors::new_named(named);
                by_id.insert(id, PointStruct::new(id, vectors, json).into());
            }
            let written = by_id.len();
            if written > 0 {
                let batch = by_id.into_values().collect();
                blocking(move || c.upsert(batch)).await?;
            }
            Ok(written)
        }
        .boxed()
    }

    fn chunks<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        source: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<StoredChunk>> {
        async move {
            let c = self.collection(collection)?;
            let filter = tenant_filter(tenant, source)?;
            blocking(move || c.list(filter)).await
        }
        .boxed()
    }

    fn delete<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        ids: Vec<u64>,
    ) -> StoreFuture<'a, usize> {
        async move {
            let c = self.collection(collection)?;
            if ids.is_empty() {
                return Ok(0);
            }
            // The tenant condition is what stops a caller deleting another tenant's ids.
            let ids = ids.into_iter().map(PointId::NumId);
            let filter = tenant_filter(tenant, None)?.with_point_ids(ids);
            blocking(move || c.delete_matching(filter)).await
        }
        .boxed()
    }

    fn delete_source<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        source: &'a str,
    ) -> StoreFuture<'a, usize> {
        async move {
            let c = self.collection(collection)?;
            let filter = tenant_filter(tenant, Some(source))?;
            blocking(move || c.delete_matching(filter)).await
        }
        .boxed()
    }

    fn index<'a>(&'a self, collection: &'a str) -> StoreFuture<'a, ()> {
        async move {
            let c = self.collection(collection)?;
            blocking(move || c.optimize()).await
        }
        .boxed()
    }

    fn search<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        vector: Vec<f32>,
        top_k: usize,
        score_threshold: Option<f32>,
    ) -> StoreFuture<'a, Vec<Hit>> {
        async move {
            let c = self.collection(collection)?;
            c.check_dim(collection, vector.len())?;
            if top_k == 0 {
                return Ok(Vec::new());
            }
            let filter = tenant_filter(tenant, None)?;
            blocking(move || c.search(vector, None, filter, top_k, score_threshold)).await
        }
        .boxed()
    }

    fn search_hybrid<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        vector: Vec<f32>,
        text: &'a str,
        top_k: usize,
        score_threshold: Option<f32>,
    ) -> StoreFuture<'a, Vec<Hit>> {
        async move {
            let c = self.collection(collection)?;
            c.check_dim(collection, vector.len())?;
            if top_k == 0 {
                return Ok(Vec::new());
            }
            let filter = tenant_filter(tenant, None)?;
            let query = keywords::query(text);
            let fusion = index::fusion(query.identifiers);
            let (indices, values) = (query.vector.indices, query.vector.values);
            let sparse = SparseVector::new(indices, values).map_err(backend)?;
            let keywords = Some((sparse, fusion));
            blocking(move || c.search(vector, keywords, filter, top_k, score_threshold)).await
        }
        .boxed()
    }
}

/// A new collection's shard: one cosine vector, the keyword vector, and the shared index
/// settings, written out rather than left to the engine's defaults.
fn shard_config(dim: usize) -> EdgeConfig {
    let hnsw = HnswIndexConfig {
        m: index::HNSW_M,
        ef_construct: index::HNSW_EF_CONSTRUCT,
        full_scan_threshold: index::FULL_SCAN_THRESHOLD_KB,
        // 0: as many threads as the machine has (the engine caps it).
        max_indexing_threads: 0,
        on_disk: Some(false),
        payload_m: None,
        inline_storage: None,
    };
    let optimizers = EdgeOptimizersConfig {
        indexing_threshold: Some(index::INDEXING_THRESHOLD_KB),
        ..EdgeOptimizersConfig::default()
    };
    let params = EdgeVectorParams::builder(dim, Distance::Cosine).build();
    // The store keeps the IDF statistics and applies them at query time (keywords.rs).
    let keywords = EdgeSparseVectorParams::builder()
        .modifier(Modifier::Idf)
        .build();
    EdgeConfig::builder()
        .vector(VECTOR_NAME, params)
        .sparse_vector(index::KEYWORDS_NAME, keywords)
        .hnsw_config(hnsw)
        .optimizers(optimizers)
        .build()
}

/// Runs blocking engine work off the async worker threads.
async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    // A JoinError here is usually a panic inside the engine (its flush panics on I/O errors).
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("storage task failed: {e}")))?
}

fn is_shard_dir(path: &Path) -> bool {
    path.is_dir() && SHARD_MARKERS.iter().any(|m| path.join(m).exists())
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
