//! Backend-neutral vector store API for the RAG feature.
//!
//! Every operation is scoped to a tenant: the tenant is part of the point id
//! and every read, search and delete filters on the `tenant` payload field, so
//! one tenant can never see or remove another tenant's chunks.

#[cfg(test)]
mod contract;
pub mod edge;
pub mod index;
pub mod qdrant;

pub use edge::EdgeStore;
pub use qdrant::QdrantStore;

use sha2::{Digest, Sha256};

pub use crate::config::valid_collection_name;

/// What every stored chunk carries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChunkPayload {
    /// Owner of the chunk; all queries are filtered by it.
    pub tenant: String,
    /// Document the chunk was cut from (path, URL, ...).
    pub source: String,
    /// Position of the chunk within its source.
    pub chunk: u32,
    /// Hash of the chunk text, used to skip re-embedding unchanged chunks.
    pub content_hash: String,
    /// The chunk text handed to the model.
    pub text: String,
    /// Heading path of the chunk in its source (`Guide › Install`), if it has headings.
    pub title: Option<String>,
}

/// A chunk to store: its embedding and payload.
#[derive(Debug, Clone)]
pub struct ChunkPoint {
    /// Embedding; its length must equal the collection dimension.
    pub vector: Vec<f32>,
    /// Data stored with the vector.
    pub payload: ChunkPayload,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Point id (see [`point_id`]).
    pub id: u64,
    /// Cosine similarity to the query; higher is better.
    pub score: f32,
    /// Stored payload of the chunk.
    pub payload: ChunkPayload,
}

/// Summary of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    /// Collection name.
    pub name: String,
    /// Vector dimension.
    pub dim: usize,
    /// Number of stored points (all tenants).
    pub points: usize,
    /// Vectors in an HNSW index; the others are searched exactly. The server counts in the
    /// background, so its figure lags behind writes.
    pub indexed: usize,
}

/// A stored chunk without its text and vector (for dedup and deletion).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunk {
    /// Point id.
    pub id: u64,
    /// Source document.
    pub source: String,
    /// Position within the source.
    pub chunk: u32,
    /// Hash of the chunk text.
    pub content_hash: String,
}

/// Errors of a [`VectorStore`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The collection does not exist.
    #[error("collection `{0}` does not exist")]
    NoSuchCollection(String),
    /// A vector's length differs from the collection dimension.
    #[error("collection `{collection}` expects vectors of dimension {expected}, got {got}")]
    DimensionMismatch {
        /// Collection name.
        collection: String,
        /// Dimension of the collection.
        expected: usize,
        /// Dimension supplied.
        got: usize,
    },
    /// The collection name is not 1-64 chars of `[A-Za-z0-9_-]`.
    #[error("invalid collection name `{0}`: expected 1-64 characters of [A-Za-z0-9_-]")]
    InvalidName(String),
    /// The storage engine failed.
    #[error("vector store backend error: {0}")]
    Backend(String),
    /// The store cannot serve the request right now (e.g. a worker task died).
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
}

/// Boxed future returned by [`VectorStore`] methods (keeps the trait object-safe).
pub type StoreFuture<'a, T> = futures::future::BoxFuture<'a, Result<T, StoreError>>;

/// A tenant-scoped store of embedded chunks.
pub trait VectorStore: Send + Sync {
    /// Creates the collection (cosine distance) or checks that its dimension is `dim`.
    fn ensure_collection<'a>(&'a self, name: &'a str, dim: usize) -> StoreFuture<'a, ()>;

    /// Lists all collections.
    fn collections(&self) -> StoreFuture<'_, Vec<CollectionInfo>>;

    /// Writes points and returns how many distinct points were written.
    ///
    /// Idempotent: ids come from [`point_id`], so re-ingesting a chunk overwrites it.
    fn upsert<'a>(&'a self, collection: &'a str, points: Vec<ChunkPoint>)
        -> StoreFuture<'a, usize>;

    /// Lists every chunk of `tenant`, optionally restricted to one `source`.
    fn chunks<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        source: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<StoredChunk>>;

    /// Deletes those of `ids` that belong to `tenant`; returns how many were deleted.
    fn delete<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        ids: Vec<u64>,
    ) -> StoreFuture<'a, usize>;

    /// Deletes every chunk of `source` owned by `tenant`; returns how many were deleted.
    fn delete_source<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        source: &'a str,
    ) -> StoreFuture<'a, usize>;

    /// Brings the collection's search index up to date after writes; called at the end of
    /// an ingestion. Blocks (off the async workers) while an index is built, so searches
    /// stay fast without indexing after every small write. A server store has nothing to
    /// do: the server indexes in the background.
    fn index<'a>(&'a self, collection: &'a str) -> StoreFuture<'a, ()>;

    /// Returns up to `top_k` chunks of `tenant` nearest to `vector`, best first,
    /// dropping those scoring below `score_threshold`.
    fn search<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        vector: Vec<f32>,
        top_k: usize,
        score_threshold: Option<f32>,
    ) -> StoreFuture<'a, Vec<Hit>>;

    /// Hybrid search: the dense neighbours of `vector` and the keyword (BM25) matches of
    /// `text` ([`crate::rag::keywords`]), fused ([`index::fusion`]); up to `top_k`, best
    /// first. Scores are fused scores, not cosines, and `score_threshold` (a cosine) only
    /// filters the dense side: an exact keyword match can still be found. A collection
    /// created before keyword vectors existed is searched dense-only.
    fn search_hybrid<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        vector: Vec<f32>,
        text: &'a str,
        top_k: usize,
        score_threshold: Option<f32>,
    ) -> StoreFuture<'a, Vec<Hit>>;
}

/// The text a chunk's keyword vector is made of: its title (a heading names what the
/// chunk is about) and its text.
pub(crate) fn keyword_text(payload: &ChunkPayload) -> String {
    match &payload.title {
        Some(title) => format!("{title}\n{}", payload.text),
        None => payload.text.clone(),
    }
}

/// The point id of a chunk: first 8 bytes (big-endian u64) of
/// `sha256(tenant \0 source \0 chunk \0 content_hash)`, with `chunk` in decimal,
/// so re-ingesting the same chunk is an overwrite, not a duplicate.
pub fn point_id(tenant: &str, source: &str, chunk: u32, content_hash: &str) -> u64 {
    let mut hasher = Sha256::new();
    // NUL separators keep ("ab","c") and ("a","bc") apart.
    for part in [tenant, source, &chunk.to_string()] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher.update(content_hash.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Points both store backends' tests write.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{ChunkPayload, ChunkPoint};

    /// A 4-dimensional point of `source`'s chunk `chunk` for `tenant`.
    pub(crate) fn point(tenant: &str, source: &str, chunk: u32, vector: [f32; 4]) -> ChunkPoint {
        ChunkPoint {
            vector: vector.to_vec(),
            payload: ChunkPayload {
                tenant: tenant.into(),
                source: source.into(),
                chunk,
                content_hash: format!("h-{source}-{chunk}"),
                text: format!("text of {source}#{chunk}"),
                title: (chunk == 0).then(|| format!("Title of {source}")),
            },
        }
    }

    /// The same corpus for both tenants, so only the tenant filter can tell them apart.
    pub(crate) fn corpus(tenant: &str) -> Vec<ChunkPoint> {
        vec![
            point(tenant, "a.md", 0, [1.0, 0.0, 0.0, 0.0]),
            point(tenant, "a.md", 1, [0.9, 0.1, 0.0, 0.0]),
            point(tenant, "a.md", 2, [0.5, 0.5, 0.0, 0.0]),
            point(tenant, "b.md", 0, [0.0, 1.0, 0.0, 0.0]),
            point(tenant, "b.md", 1, [0.0, 0.0, 1.0, 0.0]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_id_is_stable() {
        let id = point_id("acme", "docs/a.md", 3, "abc123");
        // Pinned: changing the scheme would orphan every stored chunk.
        assert_eq!(id, 0xf83e_68af_bbdd_51c9);
        assert_eq!(id, point_id("acme", "docs/a.md", 3, "abc123"));
        assert_ne!(id, point_id("globex", "docs/a.md", 3, "abc123"));
        assert_ne!(id, point_id("acme", "docs/a.md", 4, "abc123"));
        assert_ne!(point_id("ab", "c", 0, ""), point_id("a", "bc", 0, ""));
    }

    #[test]
    fn collection_names() {
        assert!(valid_collection_name("docs"));
        assert!(valid_collection_name("Team_docs-2"));
        assert!(valid_collection_name(&"a".repeat(64)));
        assert!(!valid_collection_name(""));
        assert!(!valid_collection_name(&"a".repeat(65)));
        assert!(!valid_collection_name("../etc"));
        assert!(!valid_collection_name("a b"));
        assert!(!valid_collection_name("a/b"));
        assert!(!valid_collection_name("café"));
    }
}
