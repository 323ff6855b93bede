//! The OpenAI-compatible wire format: types, parsing and response rendering.

pub mod openai;
pub mod parse;
pub mod render;
