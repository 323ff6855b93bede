//! Semantic prompt-injection detection: a linear classifier over sentence embeddings of
//! overlapping word windows of the text (all-MiniLM-L6-v2, the model retrieval already uses).
//!
//! - [`windows`] cuts a text into windows of at most `window_words` words;
//! - [`cues`] is the cheap first pass: a window without any word of instruction vocabulary
//!   is not embedded, so ordinary text rarely pays for the model;
//! - [`classifier`] holds the weights (built in, trained by `gatehouse policy
//!   train-semantic` on public sets, see `bench/guardrails/`) and scores windows;
//! - [`models`] loads each embedding model once per process, shared by every policy;
//! - [`train`] fits the weights (logistic regression, multiple-instance rounds).
//!
//! A text's score is the highest probability over its embedded windows, so an instruction
//! hidden in the middle of a long document is scored on its own window, not diluted.

pub mod classifier;
pub mod cues;
pub mod models;
pub mod train;
pub mod windows;

pub use classifier::{Classifier, SemanticScore};
