//! The OpenAI-compatible wire format: types, parsing and response rendering.

pub mod embeddings;
pub mod format;
pub mod parse;
pub mod rag;
pub mod render;
pub mod tools;
