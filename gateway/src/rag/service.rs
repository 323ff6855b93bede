//! The configured retrieval service: a vector store and the embedding model that fills it,
//! shared by the CLI, the HTTP endpoints and the retrieval layer.

use std::path::PathBuf;
use std::sync::Arc;

use futures::FutureExt as _;

use super::documents::SourceError;
use super::ingest::{self, Document, IngestError, IngestReport, Target};
use super::store::{EdgeStore, Hit, StoreError, VectorStore};
use crate::backends::embedding::EmbeddingBackend;
use crate::backends::Backend;
use crate::config::{RagConfig, SearchMode, StoreConfig};
use crate::models::{ModelRegistry, ModelState};

/// Errors of retrieval and ingestion.
#[derive(Debug, thiserror::Error)]
pub enum RagError {
    /// The vector store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A document could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The embedding model is still loading.
    #[error("the embedding model `{0}` is still loading; retry when /readyz answers 200")]
    EmbedderLoading(String),
    /// The embedding model failed to load, or is not one.
    #[error("the embedding model `{model}` is unavailable: {reason}")]
    EmbedderUnavailable {
        /// Model id.
        model: String,
        /// Why it cannot be used (not loaded, queue full, ...).
        reason: String,
    },
    /// The embedding model's queue is full.
    #[error("the embedding model `{0}` is overloaded; retry later")]
    EmbedderOverloaded(String),
    /// Embedding failed.
    #[error("embedding failed: {0}")]
    Embedding(String),
}

impl From<IngestError> for RagError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Source(e) => RagError::Source(e),
            IngestError::Store(e) => RagError::Store(e),
            IngestError::Embedding(m) => RagError::Embedding(m),
        }
    }
}

/// Opens the store `config` names: the edge data directory (locked while open), or a
/// client of the Qdrant server.
///
/// Blocks on disk I/O for the edge store; call it at startup.
pub fn open_store(config: &RagConfig) -> Result<Arc<dyn VectorStore>, StoreError> {
    match &config.store {
        StoreConfig::Edge { data_dir } => Ok(Arc::new(EdgeStore::open(data_dir)?)),
        StoreConfig::Qdrant {
            url,
            api_key,
            timeout,
        } => Ok(Arc::new(super::store::QdrantStore::connect(
            url,
            api_key.clone(),
            *timeout,
        )?)),
    }
}

/// Where the embedding model comes from.
enum Embedder {
    /// The server's model registry: loaded in the background, admitted through its queue.
    Registry(Arc<ModelRegistry>),
    /// Loaded by the caller (the CLI).
    Loaded(Arc<EmbeddingBackend>),
}

/// What an ingestion reads.
enum Job<'a> {
    Paths(&'a [PathBuf], &'a (dyn Fn(usize, usize) + Sync)),
    Documents(&'a [Document]),
}

/// Retrieval over one store with one embedding model.
pub struct Rag {
    config: RagConfig,
    store: Arc<dyn VectorStore>,
    embedder: Embedder,
}

impl Rag {
    /// Retrieval whose embedding model is served by `models` (the server).
    pub fn with_registry(
        config: RagConfig,
        store: Arc<dyn VectorStore>,
        models: Arc<ModelRegistry>,
    ) -> Self {
        Self {
            config,
            store,
            embedder: Embedder::Registry(models),
        }
    }

    /// Retrieval with an embedding model already loaded (the CLI).
    pub fn with_model(
        config: RagConfig,
        store: Arc<dyn VectorStore>,
        model: Arc<EmbeddingBackend>,
    ) -> Self {
        Self {
            config,
            store,
            embedder: Embedder::Loaded(model),
        }
    }

    /// The `rag:` settings.
    pub fn config(&self) -> &RagConfig {
        &self.config
    }

    /// The vector store.
    pub fn store(&self) -> &dyn VectorStore {
        self.store.as_ref()
    }

    /// The embedding model, and the admission permit it runs under when served.
    async fn embedder(
        &self,
    ) -> Result<(EmbeddingBackend, Option<tokio::sync::OwnedSemaphorePermit>), RagError> {
        let id = &self.config.embedding_model;
        let models = match &self.embedder {
            Embedder::Loaded(m) => return Ok((EmbeddingBackend::new(m.model().clone()), None)),
            Embedder::Registry(models) => models,
        };
        let unavailable = |reason: String| RagError::EmbedderUnavailable {
            model: id.clone(),
            reason,
        };
        let slot = models
            .get(id)
            .ok_or_else(|| unavailable("not configured".into()))?;
        let backend = match slot.state() {
            ModelState::Ready(b) => b,
            ModelState::Loading => return Err(RagError::EmbedderLoading(id.clone())),
            ModelState::Failed(reason) => return Err(unavailable(reason)),
        };
        let Backend::Embedding(model) = backend.as_ref() else {
            return Err(unavailable("not a `kind: embedding` model".into()));
        };
        let permit = slot
            .admission
            .admit()
            .await
            .map_err(|_| RagError::EmbedderOverloaded(id.clone()))?;
        Ok((EmbeddingBackend::new(model.model().clone()), Some(permit)))
    }

    /// Embeds `texts` in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, RagError> {
        let (model, _permit) = self.embedder().await?;
        let out = model
            .embed(texts)
            .await
            .map_err(|e| RagError::Embedding(e.to_string()))?;
        Ok(out.vectors)
    }

    /// Ingests files and directories into `collection` for `tenant` (see [`ingest::ingest`]).
    pub async fn ingest_paths(
        &self,
        collection: &str,
        tenant: &str,
        paths: &[PathBuf],
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<IngestReport, RagError> {
        self.run_ingest(collection, tenant, Job::Paths(paths, progress))
            .await
    }

    /// Ingests documents given as text (see [`ingest::ingest_documents`]).
    pub async fn ingest_documents(
        &self,
        collection: &str,
        tenant: &str,
        docs: &[Document],
    ) -> Result<IngestReport, RagError> {
        self.run_ingest(collection, tenant, Job::Documents(docs))
            .await
    }

    async fn run_ingest(
        &self,
        collection: &str,
        tenant: &str,
        job: Job<'_>,
    ) -> Result<IngestReport, RagError> {
        // One admission for the whole ingestion: it is one client's job, not many requests.
        let (model, _permit) = self.embedder().await?;
        let engine = model.model().clone();
        let embed = move |texts: Vec<String>| {
            let m = EmbeddingBackend::new(engine.clone());
            async move {
                m.embed(texts)
                    .await
                    .map(|e| e.vectors)
                    .map_err(|e| e.to_string())
            }
            .boxed()
        };
        let counter = model.model().clone();
        // Tokenizing cannot fail on valid UTF-8; if it ever does, a rough estimate keeps
        // chunking going rather than failing the whole ingestion.
        let count = move |s: &str| {
            counter
                .count_tokens(s)
                .unwrap_or_else(|_| s.len().div_ceil(4) + 2)
        };
        let target = Target {
            store: self.store.as_ref(),
            embed: &embed,
            dim: model.model().dim(),
            collection,
            tenant,
            size: self.config.chunk,
            count: &count,
        };
        Ok(match job {
            Job::Paths(paths, progress) => ingest::ingest(&target, paths, progress).await?,
            Job::Documents(docs) => ingest::ingest_documents(&target, docs).await?,
        })
    }

    /// The `top_k` chunks of `tenant` in `collection` that best answer `query`, best first:
    /// the nearest by embedding, fused with keyword matches in hybrid `mode`
    /// ([`VectorStore::search_hybrid`]); `score_threshold` is a cosine for the dense side.
    pub async fn search(
        &self,
        collection: &str,
        tenant: &str,
        query: &str,
        mode: SearchMode,
        top_k: usize,
        score_threshold: Option<f32>,
    ) -> Result<Vec<Hit>, RagError> {
        let vector = self
            .embed(vec![query.to_string()])
            .await?
            .pop()
            .ok_or_else(|| RagError::Embedding("no vector for the query".into()))?;
        let store = self.store.as_ref();
        Ok(match mode {
            SearchMode::Dense => {
                store
                    .search(collection, tenant, vector, top_k, score_threshold)
                    .await?
            }
            SearchMode::Hybrid => {
                store
                    .search_hybrid(collection, tenant, vector, query, top_k, score_threshold)
                    .await?
            }
        })
    }
}
