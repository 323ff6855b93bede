//! The classifier: `sigmoid(w · v + b)` over a window's unit-length embedding `v`, with the
//! weights and window sizes it was trained with, read from JSON.

use std::sync::LazyLock;

use engine::Embedder;
use serde::{Deserialize, Serialize};

use super::cues::worth_scoring;
use super::train::probability;
use super::windows::windows;

/// Format tag of the weights file.
pub const FORMAT: &str = "gatehouse-semantic-injection/1";

/// The weights Gatehouse ships, trained by `bench/guardrails/train` (its README says on what).
const BUILTIN: &str = include_str!("injection-minilm.json");

static BUILTIN_CLASSIFIER: LazyLock<Classifier> = LazyLock::new(|| {
    Classifier::from_json(BUILTIN).expect("the built-in semantic weights are valid")
});

/// A trained classifier and how to cut texts for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Classifier {
    /// [`FORMAT`].
    pub format: String,
    /// The embedding model the weights are for (its directory name).
    pub embedding_model: String,
    /// Words per window.
    pub window_words: usize,
    /// Words between window starts.
    pub stride_words: usize,
    /// Bias `b`.
    pub bias: f32,
    /// Weights `w`, one per embedding dimension.
    pub weights: Vec<f32>,
    /// Probability at which training benign texts stayed under the false-positive target;
    /// policies that don't set a threshold use it.
    pub threshold: f32,
    /// What it was trained on and how it scored (free-form, for people).
    #[serde(default)]
    pub trained: serde_json::Value,
}

/// The highest-scoring window of a text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticScore {
    /// Probability in 0..=1 that the window is an injection.
    pub score: f32,
    /// Start byte offset of the window.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
}

impl Classifier {
    /// The weights Gatehouse ships.
    pub fn builtin() -> &'static Classifier {
        &BUILTIN_CLASSIFIER
    }

    /// Parses and checks a weights file.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let c: Classifier = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if c.format != FORMAT {
            return Err(format!("format `{}`, expected `{FORMAT}`", c.format));
        }
        if c.weights.is_empty() || c.window_words == 0 || c.stride_words == 0 {
            return Err("weights, window_words and stride_words must not be empty or 0".into());
        }
        if !c
            .weights
            .iter()
            .chain([&c.bias, &c.threshold])
            .all(|x| x.is_finite())
        {
            return Err("weights must be finite numbers".into());
        }
        Ok(c)
    }

    /// Probability that the window with embedding `v` is an injection.
    pub fn probability(&self, v: &[f32]) -> f32 {
        probability(&self.weights, self.bias, v)
    }

    /// The windows of `text`, as byte ranges.
    pub fn windows(&self, text: &str) -> Vec<(usize, usize)> {
        windows(text, self.window_words, self.stride_words)
    }

    /// Scores `text` with `model` (blocking): its best window, or `None` when no window
    /// passed the first pass (`first_pass`) or the text has no words.
    pub fn score(
        &self,
        model: &Embedder,
        text: &str,
        first_pass: bool,
    ) -> Result<Option<SemanticScore>, String> {
        let ranges: Vec<(usize, usize)> = self
            .windows(text)
            .into_iter()
            .filter(|&(a, b)| !first_pass || worth_scoring(&text[a..b]))
            .collect();
        if ranges.is_empty() {
            return Ok(None);
        }
        let texts: Vec<&str> = ranges.iter().map(|&(a, b)| &text[a..b]).collect();
        let vectors = model.embed(&texts).map_err(|e| e.to_string())?.vectors;
        Ok(ranges
            .iter()
            .zip(&vectors)
            .map(|(&(start, end), v)| SemanticScore {
                score: self.probability(v),
                start,
                end,
            })
            .max_by(|a, b| a.score.total_cmp(&b.score)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_weights_fit_minilm() {
        let c = Classifier::builtin();
        assert_eq!(c.weights.len(), 384);
        assert!(c.threshold > 0.0 && c.threshold < 1.0);
        assert_eq!(c.embedding_model, "all-minilm-l6-v2");
    }

    #[test]
    fn bad_weights_are_refused_with_a_reason() {
        let ok = serde_json::to_value(Classifier::builtin()).unwrap();
        let mut v = ok.clone();
        v["format"] = "other/1".into();
        assert!(Classifier::from_json(&v.to_string())
            .unwrap_err()
            .contains("expected `gatehouse-semantic-injection/1`"));
        let mut v = ok.clone();
        v["window_words"] = 0.into();
        assert!(Classifier::from_json(&v.to_string()).is_err());
        let mut v = ok;
        v["extra"] = 1.into();
        assert!(Classifier::from_json(&v.to_string())
            .unwrap_err()
            .contains("unknown field"));
    }

    #[test]
    fn probability_is_the_logistic_of_the_margin() {
        let mut c = Classifier::builtin().clone();
        c.weights = vec![2.0, -1.0];
        c.bias = -0.5;
        let p = c.probability(&[1.0, 0.5]);
        assert!((p - 1.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-6);
    }
}
