//! Retrieval-augmented generation: documents are chunked, embedded and stored in a vector
//! store (qdrant-edge in-process); ingestion keeps the store in step with the sources.

pub mod chunk;
pub mod documents;
pub mod ingest;
pub mod store;
