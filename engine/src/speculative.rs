//! Speculative decoding: the per-sequence decision rule and its statistics.
//!
//! The speculative step itself runs in mistral.rs (patched, see `docs/speculative.md`): the
//! draft proposes `gamma` tokens, the target scores them in one forward pass, and the
//! [`SpeculativeSequence`] installed on each request decides which tokens to keep. With
//! temperature > 0 that is speculative sampling (Leviathan et al., 2023): draft token `x` is
//! kept with probability `min(1, p(x) / q(x))`; the first rejected one is replaced by a draw
//! from `norm(max(0, p - q))`; when all are kept a bonus token is drawn from the target. The
//! output then follows the target's distribution exactly. Greedy decoding is the same rule
//! with one-hot distributions: keep draft tokens while they equal the target's argmax.

use std::path::PathBuf;
use std::sync::Mutex;

use mistralrs::core::{CustomLogitsProcessor, SpeculativeSampling, SpeculativeStepStats};
use mistralrs::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::sampler::distribution;
use crate::Sampling;

/// A draft model attached to a target.
#[derive(Debug, Clone)]
pub struct DraftSpec {
    /// Draft GGUF file; its vocabulary must equal the target's.
    pub path: PathBuf,
    /// Tokens the draft proposes per step.
    pub gamma: usize,
    /// Whether the draft is always used or only when measured faster.
    pub mode: SpeculativeMode,
}

/// When a model with a draft uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeculativeMode {
    /// Always speculate.
    On,
    /// Measure plain and speculative decoding at start-up; speculate only when faster.
    Auto,
}

/// What the start-up measurement of `speculative: auto` found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AutoDecision {
    /// Output tokens per second of the target alone.
    pub plain_tokens_per_second: f64,
    /// Output tokens per second with the draft.
    pub speculative_tokens_per_second: f64,
    /// The draft is used: it measured at least 1.1x plain (a tie goes to plain, which can
    /// batch).
    pub use_draft: bool,
}

/// Speculative decoding as served by one model.
#[derive(Debug, Clone, Serialize)]
pub struct SpeculativeInfo {
    /// Draft GGUF file name (without its directory, which clients need not see).
    pub draft: String,
    /// Tokens proposed per step.
    pub gamma: usize,
    /// Configured mode.
    pub mode: SpeculativeMode,
    /// Whether requests run with the draft.
    pub active: bool,
    /// The measurement behind `active`, for `auto`.
    pub auto: Option<AutoDecision>,
}

/// Counters of speculative steps (one request, or summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SpeculativeStats {
    /// Speculative steps run.
    pub steps: u64,
    /// Draft tokens proposed.
    pub drafted_tokens: u64,
    /// Draft tokens the target accepted.
    pub accepted_tokens: u64,
    /// Tokens the steps produced (accepted, replacements and bonus tokens; the output stops
    /// earlier when the last step hits end of sequence, a stop sequence or `max_tokens`).
    pub emitted_tokens: u64,
    /// Time running the draft, seconds.
    pub draft_seconds: f64,
    /// Time running the target and verifying, seconds.
    pub verify_seconds: f64,
}

impl SpeculativeStats {
    /// Accepted over proposed draft tokens (0 when none were proposed).
    pub fn acceptance_rate(&self) -> f64 {
        ratio(self.accepted_tokens as f64, self.drafted_tokens as f64)
    }

    /// Mean draft tokens accepted per step.
    pub fn accepted_per_step(&self) -> f64 {
        ratio(self.accepted_tokens as f64, self.steps as f64)
    }

    /// Mean draft time per step, seconds.
    pub fn draft_seconds_per_step(&self) -> f64 {
        ratio(self.draft_seconds, self.steps as f64)
    }

    /// Mean verification time per step, seconds.
    pub fn verify_seconds_per_step(&self) -> f64 {
        ratio(self.verify_seconds, self.steps as f64)
    }

    /// Adds another set of counters (e.g. summing requests).
    pub fn merge(&mut self, other: &SpeculativeStats) {
        self.steps += other.steps;
        self.drafted_tokens += other.drafted_tokens;
        self.accepted_tokens += other.accepted_tokens;
        self.emitted_tokens += other.emitted_tokens;
        self.draft_seconds += other.draft_seconds;
        self.verify_seconds += other.verify_seconds;
    }

    fn add(&mut self, s: &SpeculativeStepStats) {
        self.steps += 1;
        self.drafted_tokens += s.drafted as u64;
        self.accepted_tokens += s.accepted as u64;
        self.emitted_tokens += s.emitted as u64;
        self.draft_seconds += s.draft_time.as_secs_f64();
        self.verify_seconds += s.verify_time.as_secs_f64();
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// How one request turns logits into tokens.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Greedy,
    Sample {
        temperature: f64,
        top_k: Option<usize>,
        top_p: Option<f64>,
    },
}

/// The speculative decisions and statistics of one request; installed on the engine
/// sequence as a logits processor, which the patched speculative pipeline asks for.
pub struct SpeculativeSequence {
    rule: Rule,
    rng: Mutex<StdRng>,
    stats: Mutex<SpeculativeStats>,
}

impl SpeculativeSequence {
    /// Follows the request's sampling settings; a missing seed draws one from the OS.
    pub fn new(sampling: &Sampling) -> Self {
        let rule = if sampling.temperature.is_some_and(|t| t <= 0.0) {
            Rule::Greedy
        } else {
            Rule::Sample {
                // OpenAI's default temperature is 1.
                temperature: sampling.temperature.unwrap_or(1.0),
                top_k: sampling.top_k,
                top_p: sampling.top_p,
            }
        };
        let rng = match sampling.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        Self {
            rule,
            rng: Mutex::new(rng),
            stats: Mutex::new(SpeculativeStats::default()),
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> SpeculativeStats {
        *self.stats.lock().expect("stats lock")
    }

    fn dense(&self, logits: &[f32]) -> Vec<f64> {
        match self.rule {
            Rule::Greedy => one_hot(argmax(logits), logits.len()),
            Rule::Sample {
                temperature,
                top_k,
                top_p,
            } => dense_distribution(logits, temperature, top_k, top_p),
        }
    }
}

impl CustomLogitsProcessor for SpeculativeSequence {
    /// Never called by the speculative pipeline; leaves logits as they are.
    fn apply(&self, logits: &Tensor, _context: &[u32]) -> mistralrs::Result<Tensor> {
        Ok(logits.clone())
    }

    fn speculative(&self) -> Option<&dyn SpeculativeSampling> {
        Some(self)
    }
}

impl SpeculativeSampling for SpeculativeSequence {
    fn draft(&self, draft_logits: &[f32]) -> u32 {
        match self.rule {
            Rule::Greedy => argmax(draft_logits) as u32,
            Rule::Sample { .. } => {
                let q = self.dense(draft_logits);
                let u = self.rng.lock().expect("rng lock").gen::<f64>();
                draw(&q, u) as u32
            }
        }
    }

    fn verify(
        &self,
        drafted: &[u32],
        draft_logits: &[Vec<f32>],
        target_logits: &[Vec<f32>],
    ) -> Vec<u32> {
        let q: Vec<Vec<f64>> = draft_logits.iter().map(|l| self.dense(l)).collect();
        let p: Vec<Vec<f64>> = target_logits.iter().map(|l| self.dense(l)).collect();
        let mut rng = self.rng.lock().expect("rng lock");
        verify(drafted, &q, &p, || rng.gen::<f64>())
    }

    fn record(&self, step: SpeculativeStepStats) {
        self.stats.lock().expect("stats lock").add(&step);
    }
}

/// The speculative sampling rule over dense distributions: `q[i]` is the draft's distribution
/// at position `i` (from which `drafted[i]` was drawn), `p[i]` the target's, with one more
/// target position for the bonus token. Returns the accepted draft tokens followed by one
/// token from the target. `uniform` yields draws from [0, 1).
pub fn verify(
    drafted: &[u32],
    q: &[Vec<f64>],
    p: &[Vec<f64>],
    mut uniform: impl FnMut() -> f64,
) -> Vec<u32> {
    assert_eq!(
        q.len(),
        drafted.len(),
        "one draft distribution per draft token"
    );
    assert_eq!(
        p.len(),
        drafted.len() + 1,
        "target scores every draft token plus one"
    );
    let mut out = Vec::with_capacity(drafted.len() + 1);
    for (i, &x) in drafted.iter().enumerate() {
        let (px, qx) = (p[i][x as usize], q[i][x as usize]);
        // qx > 0 because x was drawn from q; accept with probability min(1, px / qx).
        if qx > 0.0 && (px >= qx || uniform() < px / qx) {
            out.push(x);
            continue;
        }
        let residual: Vec<f64> = p[i]
            .iter()
            .zip(&q[i])
            .map(|(a, b)| (a - b).max(0.0))
            .collect();
        let total: f64 = residual.iter().sum();
        // Rejection implies p != q, so the residual has mass; guard rounding anyway.
        let token = if total > 0.0 {
            draw(&residual, uniform() * total)
        } else {
            draw(&p[i], uniform())
        };
        out.push(token as u32);
        return out;
    }
    out.push(draw(&p[drafted.len()], uniform()) as u32);
    out
}

/// Index where the running sum of `weights` first exceeds `u` (the last positive one when
/// rounding leaves `u` past the end).
fn draw(weights: &[f64], u: f64) -> usize {
    let mut acc = 0.0;
    let mut last = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            acc += w;
            last = i;
            if u < acc {
                return i;
            }
        }
    }
    last
}

/// The index mistral.rs's greedy sampler picks: the maximum, the last one on ties.
fn argmax(logits: &[f32]) -> usize {
    logits
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

fn one_hot(i: usize, n: usize) -> Vec<f64> {
    let mut v = vec![0.0; n];
    if i < n {
        v[i] = 1.0;
    }
    v
}

/// [`distribution`] as a dense vector over the vocabulary; plain softmax skips its sort.
fn dense_distribution(
    logits: &[f32],
    temperature: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
) -> Vec<f64> {
    let mut v = vec![0.0; logits.len()];
    if top_k.is_some() || top_p.is_some_and(|p| p < 1.0) {
        for (i, p) in distribution(logits, temperature, top_k, top_p) {
            v[i] = p;
        }
        return v;
    }
    let max = logits
        .iter()
        .filter(|l| l.is_finite())
        .fold(f64::NEG_INFINITY, |m, &l| m.max(l as f64 / temperature));
    if !max.is_finite() {
        return one_hot(0, logits.len());
    }
    let mut sum = 0.0;
    for (o, &l) in v.iter_mut().zip(logits) {
        if l.is_finite() {
            *o = (l as f64 / temperature - max).exp();
            sum += *o;
        }
    }
    for o in &mut v {
        *o /= sum;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn step_stats(
        drafted: usize,
        accepted: usize,
        emitted: usize,
        draft_time: Duration,
        verify_time: Duration,
    ) -> SpeculativeStepStats {
        SpeculativeStepStats {
            drafted,
            accepted,
            emitted,
            draft_time,
            verify_time,
        }
    }

    fn greedy() -> SpeculativeSequence {
        SpeculativeSequence::new(&Sampling {
            temperature: Some(0.0),
            ..Sampling::default()
        })
    }

    #[test]
    fn greedy_keeps_drafts_while_they_match_the_target_argmax() {
        let s = greedy();
        let logits = |best: usize| -> Vec<f32> {
            let mut v = vec![0.0; 5];
            v[best] = 1.0;
            v
        };
        // Target agrees on 1 and 2, then wants 4 where the draft said 3.
        let drafted = [1, 2, 3];
        let q = vec![logits(1), logits(2), logits(3)];
        let p = vec![logits(1), logits(2), logits(4), logits(0)];
        assert_eq!(s.verify(&drafted, &q, &p), vec![1, 2, 4]);
        // All agree: a bonus token from the last target position.
        let p = vec![logits(1), logits(2), logits(3), logits(0)];
        assert_eq!(s.verify(&drafted, &q, &p), vec![1, 2, 3, 0]);
        // First disagrees: only the target's token.
        let p = vec![logits(4), logits(2), logits(3), logits(0)];
        assert_eq!(s.verify(&drafted, &q, &p), vec![4]);
    }

    #[test]
    fn argmax_breaks_ties_like_mistralrs() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 2);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn dense_softmax_matches_the_sorted_distribution() {
        let logits = [0.3f32, -1.0, 2.0, f32::NEG_INFINITY, 0.0];
        let dense = dense_distribution(&logits, 0.7, None, None);
        for (i, p) in distribution(&logits, 0.7, None, None) {
            assert!((dense[i] - p).abs() < 1e-12);
        }
        assert_eq!(dense[3], 0.0);
        let cut = dense_distribution(&logits, 0.7, Some(2), None);
        assert_eq!(cut.iter().filter(|&&p| p > 0.0).count(), 2);
    }

    /// Speculative sampling must reproduce the target distribution whatever the draft is:
    /// every emitted token, at every position, follows `p` (within 4 standard errors), and
    /// the per-token acceptance rate is `sum(min(p, q))`.
    #[test]
    fn speculative_sampling_follows_the_target_distribution() {
        let p = vec![0.5, 0.3, 0.15, 0.05];
        let q = vec![0.1, 0.2, 0.3, 0.4];
        let gamma = 3;
        let mut rng = StdRng::seed_from_u64(11);
        let mut counts = [0usize; 4];
        let mut emitted = 0usize;
        let (mut proposed, mut accepted) = (0usize, 0usize);
        for _ in 0..40_000 {
            let drafted: Vec<u32> = (0..gamma).map(|_| draw(&q, rng.gen()) as u32).collect();
            let qs = vec![q.clone(); gamma];
            let ps = vec![p.clone(); gamma + 1];
            let out = verify(&drafted, &qs, &ps, || rng.gen());
            proposed += gamma;
            accepted += out.len() - 1;
            for t in out {
                counts[t as usize] += 1;
                emitted += 1;
            }
        }
        for (i, &pi) in p.iter().enumerate() {
            let freq = counts[i] as f64 / emitted as f64;
            let se = (pi * (1.0 - pi) / emitted as f64).sqrt();
            assert!((freq - pi).abs() < 4.0 * se, "token {i}: {freq} vs {pi}");
        }
        // Acceptance stops at the first rejection, so per-position acceptance is
        // conditional; position 0 is always tried: check it separately.
        let alpha: f64 = p.iter().zip(&q).map(|(a, b)| a.min(*b)).sum();
        let mut first_accepted = 0usize;
        let n = 40_000;
        for _ in 0..n {
            let d = draw(&q, rng.gen()) as u32;
            let out = verify(
                &[d],
                std::slice::from_ref(&q),
                &[p.clone(), p.clone()],
                || rng.gen(),
            );
            if out.len() == 2 {
                first_accepted += 1;
            }
        }
        let rate = first_accepted as f64 / n as f64;
        let se = (alpha * (1.0 - alpha) / n as f64).sqrt();
        assert!(
            (rate - alpha).abs() < 4.0 * se,
            "acceptance {rate} vs {alpha}"
        );
        assert!(accepted > 0 && accepted < proposed);
    }

    #[test]
    fn stats_summarise_steps() {
        let s = greedy();
        s.record(step_stats(
            4,
            3,
            4,
            Duration::from_millis(8),
            Duration::from_millis(20),
        ));
        s.record(step_stats(
            4,
            1,
            2,
            Duration::from_millis(8),
            Duration::from_millis(20),
        ));
        let st = s.stats();
        assert_eq!(
            (
                st.steps,
                st.drafted_tokens,
                st.accepted_tokens,
                st.emitted_tokens
            ),
            (2, 8, 4, 6)
        );
        assert!((st.acceptance_rate() - 0.5).abs() < 1e-12);
        assert!((st.accepted_per_step() - 2.0).abs() < 1e-12);
        assert!((st.draft_seconds_per_step() - 0.008).abs() < 1e-9);
        let mut total = st;
        total.merge(&st);
        assert_eq!((total.steps, total.emitted_tokens), (4, 12));
        assert!((total.verify_seconds - 0.08).abs() < 1e-9);
    }
}
