//! The BERT encoder's forward pass over texts packed back to back, unpadded: only attention
//! needs to know where one text ends, so no row is spent on padding and no mask is needed.
//! Matrix products are candle's (gemm's AVX2 kernels); everything else
//! ([`super::kernels`]) runs on rayon's pool, because candle's element-wise kernels use one
//! core and a single text would leave the other idle.

use std::collections::HashMap;
use std::ops::Range;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::kernels;

/// Rows per rayon task in the row-wise steps: enough work to pay for the task.
const ROWS_PER_TASK: usize = 16;

/// The model's sizes (`config.json`).
pub(super) struct Dims {
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub positions: usize,
    pub segments: usize,
    pub eps: f32,
}

/// `x·Wᵀ + b`.
struct Dense {
    /// `W` transposed, `(in, out)`: a view of the stored `(out, in)` matrix.
    weight_t: Tensor,
    bias: Vec<f32>,
}

impl Dense {
    /// `x` (`rows × in`, row-major) times `Wᵀ`, plus the bias and, when given, a residual
    /// of the output's shape.
    fn apply(
        &self,
        x: &[f32],
        rows: usize,
        residual: Option<&[f32]>,
    ) -> candle_core::Result<Vec<f32>> {
        let inputs = x.len() / rows;
        let y = Tensor::from_slice(x, (rows, inputs), &Device::Cpu)?.matmul(&self.weight_t)?;
        let mut y = y.flatten_all()?.to_vec1::<f32>()?;
        let out = self.bias.len();
        y.par_chunks_mut(out * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(block, ys)| {
                for (i, y) in ys.chunks_mut(out).enumerate() {
                    for (y, b) in y.iter_mut().zip(&self.bias) {
                        *y += b;
                    }
                    if let Some(r) = residual {
                        let at = (block * ROWS_PER_TASK + i) * out;
                        for (y, r) in y.iter_mut().zip(&r[at..at + out]) {
                            *y += r;
                        }
                    }
                }
            });
        Ok(y)
    }
}

/// LayerNorm over each row.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn apply(&self, x: &mut [f32]) {
        let width = self.gamma.len();
        x.par_chunks_mut(width * ROWS_PER_TASK).for_each(|rows| {
            for row in rows.chunks_mut(width) {
                kernels::layer_norm(row, &self.gamma, &self.beta, self.eps);
            }
        });
    }
}

struct Layer {
    /// Query, key and value in one product: `(rows, 3·hidden)`, in that order.
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    intermediate: Dense,
    output: Dense,
    out_norm: Norm,
}

/// A loaded encoder.
pub(super) struct Encoder {
    /// `(vocab, hidden)`, row-major, as are the two below.
    word: Vec<f32>,
    position: Vec<f32>,
    /// Segment 0's row: every input is one segment.
    segment: Vec<f32>,
    norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
}

/// The tensors of `model.safetensors`, taken by name with their shapes checked.
pub(super) struct Weights(pub HashMap<String, Tensor>);

impl Weights {
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, String> {
        let t = self
            .0
            .remove(name)
            .ok_or_else(|| format!("no tensor `{name}`"))?;
        if t.dims() != shape {
            return Err(format!(
                "tensor `{name}` has shape {:?}, not {shape:?}",
                t.dims()
            ));
        }
        t.to_dtype(DType::F32)
            .map_err(|e| format!("tensor `{name}`: {e}"))
    }

    fn vec(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        self.tensor(name, shape)?
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(|e| format!("tensor `{name}`: {e}"))
    }

    fn dense(&mut self, names: &[&str], inputs: usize, outputs: usize) -> Result<Dense, String> {
        let mut weights = Vec::with_capacity(names.len());
        let mut bias = Vec::with_capacity(names.len() * outputs);
        for name in names {
            weights.push(self.tensor(&format!("{name}.weight"), &[outputs, inputs])?);
            bias.extend(self.vec(&format!("{name}.bias"), &[outputs])?);
        }
        let weight_t = Tensor::cat(&weights, 0)
            .and_then(|w| w.t())
            .map_err(|e| format!("tensor `{}`: {e}", names[0]))?;
        Ok(Dense { weight_t, bias })
    }

    fn norm(&mut self, name: &str, width: usize, eps: f32) -> Result<Norm, String> {
        Ok(Norm {
            gamma: self.vec(&format!("{name}.weight"), &[width])?,
            beta: self.vec(&format!("{name}.bias"), &[width])?,
            eps,
        })
    }
}

impl Encoder {
    /// Takes BERT's tensors (Hugging Face names) from `w`.
    pub(super) fn load(w: &mut Weights, d: &Dims) -> Result<Self, String> {
        let h = d.hidden;
        let segment = w.vec("embeddings.token_type_embeddings.weight", &[d.segments, h])?;
        let mut layers = Vec::with_capacity(d.layers);
        for i in 0..d.layers {
            let l = format!("encoder.layer.{i}");
            let a = format!("{l}.attention");
            layers.push(Layer {
                qkv: w.dense(
                    &[
                        &format!("{a}.self.query"),
                        &format!("{a}.self.key"),
                        &format!("{a}.self.value"),
                    ],
                    h,
                    h,
                )?,
                attn_out: w.dense(&[&format!("{a}.output.dense")], h, h)?,
                attn_norm: w.norm(&format!("{a}.output.LayerNorm"), h, d.eps)?,
                intermediate: w.dense(&[&format!("{l}.intermediate.dense")], h, d.intermediate)?,
                output: w.dense(&[&format!("{l}.output.dense")], d.intermediate, h)?,
                out_norm: w.norm(&format!("{l}.output.LayerNorm"), h, d.eps)?,
            });
        }
        Ok(Self {
            word: w.vec("embeddings.word_embeddings.weight", &[d.vocab, h])?,
            position: w.vec("embeddings.position_embeddings.weight", &[d.positions, h])?,
            segment: segment[..h].to_vec(),
            norm: w.norm("embeddings.LayerNorm", h, d.eps)?,
            layers,
            heads: d.heads,
            hidden: h,
        })
    }

    /// Vector length: the hidden size.
    pub(super) fn dim(&self) -> usize {
        self.hidden
    }

    /// The mean-pooled, unit-length vector of each of `texts` (token ids), in order.
    pub(super) fn forward(&self, texts: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        let mut spans = Vec::with_capacity(texts.len());
        let mut tokens = Vec::new();
        for t in texts {
            spans.push(tokens.len()..tokens.len() + t.len());
            tokens.extend(t.iter().enumerate().map(|(pos, &id)| (id as usize, pos)));
        }
        let rows = tokens.len();
        if rows == 0 {
            return Ok(vec![Vec::new(); texts.len()]);
        }
        if let Some(&(id, pos)) = tokens.iter().find(|&&(id, pos)| {
            (id + 1) * h > self.word.len() || (pos + 1) * h > self.position.len()
        }) {
            candle_core::bail!("token {id} at position {pos} is outside the model's tables");
        }
        let mut x = vec![0f32; rows * h];
        x.par_chunks_mut(h)
            .zip(tokens.par_iter())
            .with_min_len(ROWS_PER_TASK)
            .for_each(|(row, &(id, pos))| {
                let word = &self.word[id * h..(id + 1) * h];
                let position = &self.position[pos * h..(pos + 1) * h];
                for (((x, w), p), s) in row.iter_mut().zip(word).zip(position).zip(&self.segment) {
                    *x = w + p + s;
                }
            });
        self.norm.apply(&mut x);
        for l in &self.layers {
            let qkv = l.qkv.apply(&x, rows, None)?;
            let ctx = self.attention(&qkv, &spans);
            let mut attn = l.attn_out.apply(&ctx, rows, Some(&x))?;
            l.attn_norm.apply(&mut attn);
            let mut ff = l.intermediate.apply(&attn, rows, None)?;
            ff.par_chunks_mut(l.intermediate.bias.len() * ROWS_PER_TASK)
                .for_each(kernels::gelu);
            x = l.output.apply(&ff, rows, Some(&attn))?;
            l.out_norm.apply(&mut x);
        }
        Ok(spans
            .iter()
            .map(|span| {
                let mut mean = vec![0f32; h];
                for row in x[span.start * h..span.end * h].chunks(h) {
                    for (m, v) in mean.iter_mut().zip(row) {
                        *m += v;
                    }
                }
                // Mean pooling then unit length: the division by the count cancels out,
                // but sentence-transformers divides first, and so do we, for equal floats.
                let n = span.len() as f32;
                mean.iter_mut().for_each(|m| *m /= n);
                let norm = kernels::dot(&mean, &mean).sqrt().max(1e-12);
                mean.iter_mut().for_each(|m| *m /= norm);
                mean
            })
            .collect())
    }

    /// Multi-head self-attention within each text: `qkv` holds the rows of all texts
    /// (`spans`), each `[q | k | v]`; returns the context rows (`rows × hidden`).
    fn attention(&self, qkv: &[f32], spans: &[Range<usize>]) -> Vec<f32> {
        let h = self.hidden;
        let hd = h / self.heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let part = |row: usize, which: usize, head: usize| {
            let at = row * 3 * h + which * h + head * hd;
            &qkv[at..at + hd]
        };
        let tasks: Vec<(usize, usize)> = (0..spans.len())
            .flat_map(|t| (0..self.heads).map(move |head| (t, head)))
            .collect();
        let contexts: Vec<Vec<f32>> = tasks
            .par_iter()
            .map(|&(t, head)| {
                let span = spans[t].clone();
                let n = span.len();
                // Keys transposed and values packed, so the inner loops read memory in order.
                let mut keys_t = vec![0f32; hd * n];
                let mut values = Vec::with_capacity(n * hd);
                for (c, row) in span.clone().enumerate() {
                    for (d, k) in part(row, 1, head).iter().enumerate() {
                        keys_t[d * n + c] = *k;
                    }
                    values.extend_from_slice(part(row, 2, head));
                }
                let mut ctx = vec![0f32; n * hd];
                let mut p = vec![0f32; n];
                for (row, out) in span.zip(ctx.chunks_mut(hd)) {
                    kernels::scores(part(row, 0, head), &keys_t, &mut p);
                    kernels::softmax(&mut p, scale);
                    kernels::weighted_sum(&p, &values, out);
                }
                ctx
            })
            .collect();
        let mut out = vec![0f32; spans.last().map_or(0, |s| s.end) * h];
        for (&(t, head), ctx) in tasks.iter().zip(&contexts) {
            for (row, c) in spans[t].clone().zip(ctx.chunks(hd)) {
                let at = row * h + head * hd;
                out[at..at + hd].copy_from_slice(c);
            }
        }
        out
    }
}
