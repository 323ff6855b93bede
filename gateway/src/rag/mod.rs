//! Retrieval-augmented generation: chunking documents for the embedding model. The vector
//! store, ingestion and the retrieval layer build on this (issue 6).

pub mod chunk;
pub mod documents;
