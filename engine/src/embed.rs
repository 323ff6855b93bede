//! Sentence embeddings with a BERT encoder (all-MiniLM-L6-v2): token, position and segment
//! embeddings, post-LayerNorm encoder layers ([`encoder`]; matrix products by the candle
//! mistral.rs 0.8.1 builds on), mean pooling over each text's tokens, L2 normalisation. That is
//! sentence-transformers' `Transformer → Pooling(mean) → Normalize` pipeline, and
//! `engine/tests/embed.rs` checks the vectors against ones it computed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::ops::Range;

use rayon::prelude::*;
use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::EngineError;

mod encoder;
mod kernels;

use encoder::{Dims, Encoder, Weights};

/// What to load: a sentence-transformers directory (config.json, model.safetensors,
/// tokenizer.json).
#[derive(Debug, Clone)]
pub struct EmbeddingSpec {
    /// Model id (API, metrics).
    pub id: String,
    /// The directory.
    pub dir: PathBuf,
    /// Longest input in tokens; longer inputs are truncated (sentence-transformers'
    /// `max_seq_length`, 256 for MiniLM).
    pub max_tokens: usize,
}

/// The vectors of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One unit-length vector per input, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read, `[CLS]` and `[SEP]` included, after truncation.
    pub tokens: usize,
}

#[derive(Debug, Deserialize)]
struct BertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    type_vocab_size: usize,
    layer_norm_eps: f64,
    #[serde(default = "gelu")]
    hidden_act: String,
}

fn gelu() -> String {
    "gelu".into()
}

/// A loaded embedding model.
pub struct Embedder {
    id: String,
    tokenizer: Tokenizer,
    encoder: Encoder,
    max_tokens: usize,
}

fn load_err(dir: &Path, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Load {
        path: dir.display().to_string(),
        reason: reason.to_string(),
    }
}

fn model_err(e: candle_core::Error) -> EngineError {
    EngineError::Model(e.to_string())
}

impl Embedder {
    /// Loads the model on the CPU (the encoder is small; generation keeps the GPU).
    pub fn load(spec: &EmbeddingSpec) -> Result<Self, EngineError> {
        let dir = &spec.dir;
        check_pipeline(dir)?;
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f)).map_err(|e| load_err(dir, format!("{f}: {e}")))
        };
        let cfg: BertConfig = serde_json::from_str(&read("config.json")?)
            .map_err(|e| load_err(dir, format!("config.json: {e}")))?;
        if cfg.hidden_act != "gelu" {
            return Err(load_err(
                dir,
                format!("hidden_act `{}` is not supported (gelu)", cfg.hidden_act),
            ));
        }
        if !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return Err(load_err(dir, "hidden_size is not a multiple of the heads"));
        }
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load_err(dir, format!("tokenizer.json: {e}")))?;
        let max_tokens = spec.max_tokens.min(cfg.max_position_embeddings).max(2);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| load_err(dir, format!("tokenizer.json: {e}")))?;
        // Texts are packed, unpadded, by the encoder.
        tokenizer.with_padding(None);
        let tensors = candle_core::safetensors::load(
            dir.join("model.safetensors"),
            &candle_core::Device::Cpu,
        )
        .map_err(|e| load_err(dir, format!("model.safetensors: {e}")))?;
        let dims = Dims {
            vocab: cfg.vocab_size,
            hidden: cfg.hidden_size,
            layers: cfg.num_hidden_layers,
            heads: cfg.num_attention_heads,
            intermediate: cfg.intermediate_size,
            positions: cfg.max_position_embeddings,
            segments: cfg.type_vocab_size,
            eps: cfg.layer_norm_eps as f32,
        };
        let encoder = Encoder::load(&mut Weights(tensors), &dims)
            .map_err(|e| load_err(dir, format!("model.safetensors: {e}")))?;
        Ok(Self {
            id: spec.id.clone(),
            tokenizer,
            encoder,
            max_tokens,
        })
    }

    /// Model id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Vector length.
    pub fn dim(&self) -> usize {
        self.encoder.dim()
    }

    /// Longest input in tokens; longer ones are truncated.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokens of `text` as the model reads it (`[CLS]`, `[SEP]`, truncation included).
    pub fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
        self.tokenizer
            .encode(text, true)
            .map(|e| e.get_ids().len())
            .map_err(|e| EngineError::Validation(format!("cannot tokenize: {e}")))
    }

    /// Embeds `texts` (blocking: call from a blocking thread). Texts are packed back to back
    /// into passes of about [`BATCH_TOKENS`] tokens, unpadded, and the passes run on rayon's
    /// pool at once.
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings, EngineError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EngineError::Validation(format!("cannot tokenize: {e}")))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let tokens = ids.iter().map(|i| i.len()).sum();
        let passes = batches(&ids);
        let vectors = passes
            .par_iter()
            .map(|pass| self.encoder.forward(&ids[pass.clone()]))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(model_err)?;
        Ok(Embeddings {
            vectors: vectors.concat(),
            tokens,
        })
    }
}

/// Tokens per forward pass. Larger passes spill the activations out of the caches
/// (measured by `bench/rag`: one 32-text batch was slower than 32 single texts).
pub const BATCH_TOKENS: usize = 1024;

/// `ids` cut into forward passes, in order: consecutive texts of at most [`BATCH_TOKENS`]
/// tokens together (a longer text goes alone). Texts are not padded, so their lengths need
/// not match.
fn batches(ids: &[&[u32]]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, text) in ids.iter().enumerate() {
        if i > start && tokens + text.len() > BATCH_TOKENS {
            out.push(start..i);
            (start, tokens) = (i, 0);
        }
        tokens += text.len();
    }
    if start < ids.len() {
        out.push(start..ids.len());
    }
    out
}

/// An entry of sentence-transformers' `modules.json`.
#[derive(Debug, Deserialize)]
struct StModule {
    #[serde(rename = "type")]
    kind: String,
}

/// Checks `modules.json` when present: the pooling must be mean pooling and the output
/// normalised, or the vectors would not match what the model was trained for.
pub fn check_pipeline(dir: &Path) -> Result<(), EngineError> {
    let Ok(text) = std::fs::read_to_string(dir.join("modules.json")) else {
        return Ok(());
    };
    let modules: Vec<StModule> =
        serde_json::from_str(&text).map_err(|e| load_err(dir, format!("modules.json: {e}")))?;
    let kinds: Vec<&str> = modules
        .iter()
        .map(|m| m.kind.rsplit('.').next().unwrap_or(""))
        .collect();
    if kinds != ["Transformer", "Pooling", "Normalize"] {
        return Err(load_err(
            dir,
            format!("modules.json: pipeline {kinds:?} is not Transformer, Pooling, Normalize"),
        ));
    }
    let pooling: HashMap<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("1_Pooling/config.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    if pooling.get("pooling_mode_mean_tokens") != Some(&serde_json::Value::Bool(true)) {
        return Err(load_err(
            dir,
            "1_Pooling/config.json: only mean pooling is supported",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_pack_texts_in_order_under_the_token_budget() {
        let lens = [300, 10, 12, 11, 700, 500, 10, 2000, 64];
        let seqs: Vec<Vec<u32>> = lens.iter().map(|&n| vec![0; n]).collect();
        let ids: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let b = batches(&ids);
        assert_eq!(b, [0..4, 4..5, 5..7, 7..8, 8..9]);
        for pass in &b {
            let tokens: usize = lens[pass.clone()].iter().sum();
            assert!(pass.len() == 1 || tokens <= BATCH_TOKENS, "{b:?}");
        }
        assert!(batches(&[]).is_empty());
    }
}
