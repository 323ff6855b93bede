//! Fitting the classifier: L2-regularised logistic regression by full-batch Adam, with
//! multiple-instance rounds. A benign text must score low in every window, so each of its
//! windows is a negative; an attack only needs one window to score high, so the first round
//! takes all its windows (weighted 1/n) and later rounds its best window alone. Classes are
//! weighted to equal total weight.

/// One labelled text as windows' embeddings.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Unit-length embeddings of the text's windows.
    pub windows: Vec<Vec<f32>>,
    /// Whether the text is an attack.
    pub attack: bool,
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Multiple-instance rounds (1: every attack window is a positive).
    pub rounds: usize,
    /// Adam steps per round.
    pub steps: usize,
    /// Adam learning rate.
    pub learning_rate: f32,
    /// L2 penalty on the weights (not the bias).
    pub l2: f32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rounds: 3,
            steps: 600,
            learning_rate: 0.05,
            l2: 1e-4,
        }
    }
}

/// A fitted linear model.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// One weight per dimension.
    pub weights: Vec<f32>,
    /// The bias.
    pub bias: f32,
}

impl Fitted {
    /// Probability of the window `v`.
    pub fn probability(&self, v: &[f32]) -> f32 {
        probability(&self.weights, self.bias, v)
    }

    /// A text's score: its best window's probability (0 without windows).
    pub fn score<'a>(&self, windows: impl IntoIterator<Item = &'a [f32]>) -> f32 {
        windows
            .into_iter()
            .map(|v| self.probability(v))
            .fold(0.0, f32::max)
    }
}

/// `sigmoid(w · v + b)`: the model the trainer fits and the classifier applies.
pub fn probability(weights: &[f32], bias: f32, v: &[f32]) -> f32 {
    let z = bias + weights.iter().zip(v).map(|(w, x)| w * x).sum::<f32>();
    1.0 / (1.0 + (-z).exp())
}

/// Fits the model to `samples` (all windows of length `dim`).
pub fn fit(samples: &[Sample], dim: usize, opts: Options) -> Fitted {
    let mut model = Fitted {
        weights: vec![0.0; dim],
        bias: 0.0,
    };
    for round in 0..opts.rounds.max(1) {
        // (window, label, weight)
        let mut rows: Vec<(&[f32], f32, f32)> = Vec::new();
        for s in samples.iter().filter(|s| !s.windows.is_empty()) {
            if !s.attack {
                rows.extend(s.windows.iter().map(|v| (v.as_slice(), 0.0, 1.0)));
            } else if round == 0 {
                let w = 1.0 / s.windows.len() as f32;
                rows.extend(s.windows.iter().map(|v| (v.as_slice(), 1.0, w)));
            } else {
                let best = s
                    .windows
                    .iter()
                    .max_by(|a, b| model.probability(a).total_cmp(&model.probability(b)))
                    .expect("not empty");
                rows.push((best.as_slice(), 1.0, 1.0));
            }
        }
        balance(&mut rows);
        adam(&mut model, &rows, opts);
    }
    model
}

/// Scales weights so that each class sums to half the rows.
fn balance(rows: &mut [(&[f32], f32, f32)]) {
    let total = |label: f32, rows: &[(&[f32], f32, f32)]| -> f32 {
        rows.iter().filter(|r| r.1 == label).map(|r| r.2).sum()
    };
    let (pos, neg) = (total(1.0, rows), total(0.0, rows));
    let half = rows.len() as f32 / 2.0;
    for r in rows.iter_mut() {
        let class = if r.1 == 1.0 { pos } else { neg };
        if class > 0.0 {
            r.2 *= half / class;
        }
    }
}

/// Minimises the weighted mean log-loss plus `l2/2 |w|²` with Adam.
fn adam(model: &mut Fitted, rows: &[(&[f32], f32, f32)], opts: Options) {
    let dim = model.weights.len();
    let n: f32 = rows.iter().map(|r| r.2).sum::<f32>().max(f32::MIN_POSITIVE);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut m = vec![0.0f32; dim + 1];
    let mut v = vec![0.0f32; dim + 1];
    let mut grad = vec![0.0f32; dim + 1];
    for t in 1..=opts.steps {
        grad.iter_mut().for_each(|g| *g = 0.0);
        for (x, y, w) in rows {
            let err = (model.probability(x) - y) * w / n;
            for (g, xi) in grad.iter_mut().zip(x.iter()) {
                *g += err * xi;
            }
            grad[dim] += err;
        }
        for (g, wi) in grad.iter_mut().zip(&model.weights) {
            *g += opts.l2 * wi;
        }
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        for i in 0..=dim {
            m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
            v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
            let step = opts.learning_rate * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
            if i < dim {
                model.weights[i] -= step;
            } else {
                model.bias -= step;
            }
        }
    }
}

/// The lowest threshold at which at most `max_fpr` of `benign` scores reach it (scores are
/// compared with `>=`), given every benign text's score.
pub fn threshold_for(benign: &[f32], max_fpr: f64) -> f32 {
    let mut sorted: Vec<f32> = benign.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let allowed = (max_fpr * sorted.len() as f64).floor() as usize;
    match sorted.get(allowed) {
        // Just above the first benign score that must stay under the threshold.
        Some(&s) => next_up(s).min(1.0),
        None => 0.5,
    }
}

fn next_up(x: f32) -> f32 {
    f32::from_bits(x.to_bits() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: [f32; 2]) -> Vec<f32> {
        let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
        vec![v[0] / n, v[1] / n]
    }

    #[test]
    fn separable_data_is_separated_by_its_best_window() {
        // Attacks have one window near (1, 0) among benign-looking ones near (0, 1).
        let mut samples = Vec::new();
        for i in 0..20 {
            let j = i as f32 / 100.0;
            samples.push(Sample {
                windows: vec![unit([j, 1.0]), unit([1.0, j]), unit([j, 1.0])],
                attack: true,
            });
            samples.push(Sample {
                windows: vec![unit([j, 1.0]), unit([0.2 + j, 1.0])],
                attack: false,
            });
        }
        let m = fit(&samples, 2, Options::default());
        for s in &samples {
            let score = m.score(s.windows.iter().map(Vec::as_slice));
            assert_eq!(score > 0.5, s.attack, "{score} {:?}", s.windows);
        }
    }

    #[test]
    fn threshold_keeps_false_positives_at_or_under_the_target() {
        let benign: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let t = threshold_for(&benign, 0.02);
        let fp = benign.iter().filter(|&&s| s >= t).count();
        assert_eq!(fp, 2, "{t}");
        assert!(threshold_for(&benign, 0.0) > 0.99);
    }
}
