//! Retrieval-augmented generation: documents are chunked, embedded and stored in a vector
//! store (qdrant-edge in-process, or a Qdrant server); ingestion keeps the store in step with
//! the sources, and [`Rag`] serves ingestion and search to the CLI, the HTTP API and the
//! retrieval layer.

pub mod chunk;
pub mod documents;
pub mod ingest;
pub mod keywords;
pub mod service;
pub mod store;

pub use service::{open_store, Rag, RagError};

/// Tenant of requests and ingestions that name none (until authentication assigns one).
pub const DEFAULT_TENANT: &str = "default";
