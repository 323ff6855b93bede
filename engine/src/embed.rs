//! Sentence embeddings with a BERT encoder (all-MiniLM-L6-v2) written on candle, the candle
//! mistral.rs 0.8.1 builds on: token, position and segment embeddings, post-LayerNorm
//! encoder layers, mean pooling over the attention mask, L2 normalisation. That is
//! sentence-transformers' `Transformer → Pooling(mean) → Normalize` pipeline, and
//! `engine/tests/embed.rs` checks the vectors against ones it computed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use rayon::prelude::*;
use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::EngineError;

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

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

/// A loaded embedding model.
pub struct Embedder {
    id: String,
    tokenizer: Tokenizer,
    word: Embedding,
    position: Embedding,
    segment: Embedding,
    norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    max_tokens: usize,
    device: Device,
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
        // Batches are padded here, to their own longest input.
        tokenizer.with_padding(None);
        let device = Device::Cpu;
        let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &device)
            .map_err(|e| load_err(dir, format!("model.safetensors: {e}")))?;
        let vb = VarBuilder::from_tensors(weights, DType::F32, &device);
        let build = || -> candle_core::Result<_> {
            let h = cfg.hidden_size;
            let e = vb.pp("embeddings");
            let ln = |vb: VarBuilder| candle_nn::layer_norm(h, cfg.layer_norm_eps, vb);
            let word = candle_nn::embedding(cfg.vocab_size, h, e.pp("word_embeddings"))?;
            let position =
                candle_nn::embedding(cfg.max_position_embeddings, h, e.pp("position_embeddings"))?;
            let segment =
                candle_nn::embedding(cfg.type_vocab_size, h, e.pp("token_type_embeddings"))?;
            let norm = ln(e.pp("LayerNorm"))?;
            let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
            for i in 0..cfg.num_hidden_layers {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                layers.push(Layer {
                    query: candle_nn::linear(h, h, a.pp("self.query"))?,
                    key: candle_nn::linear(h, h, a.pp("self.key"))?,
                    value: candle_nn::linear(h, h, a.pp("self.value"))?,
                    attn_out: candle_nn::linear(h, h, a.pp("output.dense"))?,
                    attn_norm: ln(a.pp("output.LayerNorm"))?,
                    intermediate: candle_nn::linear(
                        h,
                        cfg.intermediate_size,
                        l.pp("intermediate.dense"),
                    )?,
                    output: candle_nn::linear(cfg.intermediate_size, h, l.pp("output.dense"))?,
                    out_norm: ln(l.pp("output.LayerNorm"))?,
                });
            }
            Ok((word, position, segment, norm, layers))
        };
        let (word, position, segment, norm, layers) =
            build().map_err(|e| load_err(dir, format!("model.safetensors: {e}")))?;
        Ok(Self {
            id: spec.id.clone(),
            tokenizer,
            word,
            position,
            segment,
            norm,
            layers,
            heads: cfg.num_attention_heads,
            hidden: cfg.hidden_size,
            max_tokens,
            device,
        })
    }

    /// Model id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Vector length.
    pub fn dim(&self) -> usize {
        self.hidden
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

    /// Embeds `texts` (blocking: call from a blocking thread). Inputs are grouped by token
    /// count into small batches ([`BATCH_TOKENS`]), so little is padded, and the batches run
    /// on rayon's pool at once: candle's element-wise kernels are single-threaded, so one
    /// batch at a time would leave all but one core idle outside the matmuls.
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings, EngineError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EngineError::Validation(format!("cannot tokenize: {e}")))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let tokens = ids.iter().map(|i| i.len()).sum();
        let groups = batches(&ids);
        let vectors = groups
            .par_iter()
            .map(|b| {
                let batch: Vec<&[u32]> = b.iter().map(|&i| ids[i]).collect();
                self.forward_batch(&batch).map(|v| (b, v))
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(model_err)?;
        let mut out = vec![Vec::new(); texts.len()];
        for (batch, vs) in vectors {
            for (&i, v) in batch.iter().zip(vs) {
                out[i] = v;
            }
        }
        Ok(Embeddings {
            vectors: out,
            tokens,
        })
    }

    /// One forward pass over `ids`, padded to the longest.
    fn forward_batch(&self, ids: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let len = ids.iter().map(|i| i.len()).max().unwrap_or(0);
        let mut flat = Vec::with_capacity(ids.len() * len);
        let mut mask = Vec::with_capacity(ids.len() * len);
        for i in ids {
            flat.extend_from_slice(i);
            flat.extend(std::iter::repeat_n(0, len - i.len()));
            mask.extend(std::iter::repeat_n(1f32, i.len()));
            mask.extend(std::iter::repeat_n(0f32, len - i.len()));
        }
        self.forward(&flat, &mask, ids.len(), len)
    }

    fn forward(
        &self,
        ids: &[u32],
        mask: &[f32],
        batch: usize,
        len: usize,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let dev = &self.device;
        let ids = Tensor::from_slice(ids, (batch, len), dev)?;
        let positions = Tensor::arange(0u32, len as u32, dev)?.unsqueeze(0)?;
        let segments = ids.zeros_like()?;
        let x = self
            .word
            .forward(&ids)?
            .broadcast_add(&self.position.forward(&positions)?)?
            .add(&self.segment.forward(&segments)?)?;
        let mut x = self.norm.forward(&x)?;
        let mask = Tensor::from_slice(mask, (batch, len), dev)?;
        // Padding gets -inf-like scores, so real tokens never attend to it.
        let bias = ((mask.ones_like()? - &mask)? * -1e9f64)?.reshape((batch, 1, 1, len))?;
        let head_dim = self.hidden / self.heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, len, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        for l in &self.layers {
            let q = split(l.query.forward(&x)?)?;
            let k = split(l.key.forward(&x)?)?;
            let v = split(l.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((batch, len, self.hidden))?;
            let attn = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + &x)?)?;
            // BERT's GELU is the erf form.
            let ff = l.intermediate.forward(&attn)?.gelu_erf()?;
            x = l.out_norm.forward(&(l.output.forward(&ff)? + &attn)?)?;
        }
        // Mean over real tokens, then unit length.
        let m = mask.unsqueeze(2)?;
        let summed = x.broadcast_mul(&m)?.sum(1)?;
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        mean.broadcast_div(&norm)?.to_vec2::<f32>()
    }
}

/// Padded tokens per forward pass. Larger batches spill the activations out of the caches
/// (measured by `bench/rag`: one 32-text batch was slower than 32 single texts).
pub const BATCH_TOKENS: usize = 1024;

/// Indices of `ids` grouped into forward passes: by token count, so that each batch pads
/// little, and at most [`BATCH_TOKENS`] padded tokens each (a longer input goes alone).
fn batches(ids: &[&[u32]]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in order {
        let len = ids[i].len();
        // Sorted ascending, so `len` is the longest of the batch so far.
        match out.last_mut() {
            Some(b) if (b.len() + 1) * len <= BATCH_TOKENS => b.push(i),
            _ => out.push(vec![i]),
        }
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
    fn batches_group_similar_lengths_under_the_token_budget() {
        let lens = [300, 10, 12, 11, 200, 500, 10, 64];
        let seqs: Vec<Vec<u32>> = lens.iter().map(|&n| vec![0; n]).collect();
        let ids: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let b = batches(&ids);
        let mut seen: Vec<usize> = b.concat();
        seen.sort();
        assert_eq!(
            seen,
            (0..lens.len()).collect::<Vec<_>>(),
            "every input once"
        );
        for batch in &b {
            let longest = batch.iter().map(|&i| lens[i]).max().unwrap();
            assert!(
                batch.len() == 1 || batch.len() * longest <= BATCH_TOKENS,
                "{b:?}"
            );
        }
        // The short ones share a pass; 500 and 300 cannot.
        assert_eq!(b[0].len(), 5, "{b:?}");
        assert_eq!(b.last(), Some(&vec![5]));
    }
}
