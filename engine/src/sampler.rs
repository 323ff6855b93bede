//! Seeded sampling as a mistral.rs logits processor.
//!
//! mistral.rs 0.8.1 has one RNG per engine, seeded with 0 and shared by every sequence, so a
//! request's `seed` cannot be honoured there. This processor draws the token itself from its
//! own per-request RNG (temperature, top-k, top-p) and returns logits where only that token
//! is finite; the engine then runs greedy (argmax) and picks it.

use std::sync::Mutex;

use mistralrs::core::CustomLogitsProcessor;
use mistralrs::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Per-request sampler; see the module docs.
pub struct SeededSampler {
    temperature: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
    rng: Mutex<StdRng>,
}

impl SeededSampler {
    /// `temperature` must be > 0; a missing seed draws one from the OS.
    pub fn new(
        temperature: f64,
        top_k: Option<usize>,
        top_p: Option<f64>,
        seed: Option<u64>,
    ) -> Self {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        Self {
            temperature,
            top_k,
            top_p,
            rng: Mutex::new(rng),
        }
    }

    /// Draws one token index from `logits`.
    pub fn pick(&self, logits: &[f32]) -> usize {
        let probs = distribution(logits, self.temperature, self.top_k, self.top_p);
        let u: f64 = self.rng.lock().expect("sampler rng").gen();
        let mut acc = 0.0;
        for &(i, p) in &probs {
            acc += p;
            if u < acc {
                return i;
            }
        }
        probs.last().map(|&(i, _)| i).unwrap_or(0)
    }
}

/// The sampling distribution over token indices after temperature, top-k and top-p, most
/// likely first, summing to 1. Non-finite logits get probability 0.
pub fn distribution(
    logits: &[f32],
    temperature: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
) -> Vec<(usize, f64)> {
    let mut idx: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, &l)| (i, l as f64 / temperature))
        .collect();
    if idx.is_empty() {
        return vec![(0, 1.0)];
    }
    idx.sort_by(|a, b| b.1.total_cmp(&a.1));
    if let Some(k) = top_k {
        idx.truncate(k.max(1));
    }
    let max = idx[0].1;
    let mut sum = 0.0;
    for e in idx.iter_mut() {
        e.1 = (e.1 - max).exp();
        sum += e.1;
    }
    for e in idx.iter_mut() {
        e.1 /= sum;
    }
    if let Some(p) = top_p.filter(|p| *p < 1.0) {
        let mut acc = 0.0;
        let keep = idx
            .iter()
            .position(|e| {
                acc += e.1;
                acc >= p
            })
            .map_or(idx.len(), |i| i + 1);
        idx.truncate(keep);
        let s: f64 = idx.iter().map(|e| e.1).sum();
        for e in idx.iter_mut() {
            e.1 /= s;
        }
    }
    idx
}

impl CustomLogitsProcessor for SeededSampler {
    fn apply(&self, logits: &Tensor, _context: &[u32]) -> mistralrs::Result<Tensor> {
        let values: Vec<f32> = logits
            .to_dtype(mistralrs::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let token = self.pick(&values);
        let mut out = vec![f32::NEG_INFINITY; values.len()];
        out[token] = 0.0;
        Tensor::from_vec(out, logits.shape(), logits.device())?.to_dtype(logits.dtype())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let a = SeededSampler::new(1.0, None, None, Some(7));
        let b = SeededSampler::new(1.0, None, None, Some(7));
        let sa: Vec<usize> = (0..64).map(|_| a.pick(&logits)).collect();
        let sb: Vec<usize> = (0..64).map(|_| b.pick(&logits)).collect();
        assert_eq!(sa, sb);
        let c = SeededSampler::new(1.0, None, None, Some(8));
        let sc: Vec<usize> = (0..64).map(|_| c.pick(&logits)).collect();
        assert_ne!(sa, sc);
    }

    #[test]
    fn top_k_and_top_p_cut_the_tail() {
        let logits = [3.0f32, 2.0, 1.0, 0.0, f32::NEG_INFINITY];
        assert_eq!(distribution(&logits, 1.0, Some(2), None).len(), 2);
        let d = distribution(&logits, 1.0, None, Some(0.5));
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(distribution(&logits, 1.0, None, None)
            .iter()
            .all(|&(i, _)| i != 4));
    }

    /// Empirical frequencies match softmax(logits / T) within 4 standard errors.
    #[test]
    fn samples_follow_the_softmax() {
        let logits = [1.0f32, 0.5, 0.0, -1.0];
        let t = 0.8;
        let s = SeededSampler::new(t, None, None, Some(1));
        let n = 40_000;
        let mut counts = [0usize; 4];
        for _ in 0..n {
            counts[s.pick(&logits)] += 1;
        }
        let z: f64 = logits.iter().map(|&l| (l as f64 / t).exp()).sum();
        for (i, &l) in logits.iter().enumerate() {
            let p = (l as f64 / t).exp() / z;
            let freq = counts[i] as f64 / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt();
            assert!(
                (freq - p).abs() < 4.0 * se,
                "token {i}: freq {freq} vs p {p}"
            );
        }
    }
}
