//! Windows of observations as category counts, and how far apart two windows are: the
//! population stability index per feature, the cosine shift of embedding centroids.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Observation;

/// Additive smoothing per category: a category one window lacks does not make the index
/// infinite, and identical windows still score exactly 0.
const SMOOTHING: f64 = 0.5;

/// Counts of one window of observations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Observations counted.
    pub n: u64,
    /// Per feature, observations per category.
    pub features: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per policy rule, observations on which it decided.
    pub rules: BTreeMap<String, u64>,
    /// Sum of the sampled prompt embeddings, and how many.
    pub embedding_sum: Vec<f64>,
    /// Sampled embeddings summed.
    pub embeddings: u64,
}

impl Counts {
    /// Counts `o` in (`sign` 1) or out (`sign` -1) of the window.
    pub fn apply(&mut self, o: &Observation, sign: i64) {
        let step = |c: &mut u64| *c = c.saturating_add_signed(sign);
        step(&mut self.n);
        for (feature, category) in &o.categories {
            let per = self.features.entry((*feature).to_string()).or_default();
            let c = per.entry(category.clone()).or_default();
            step(c);
            if *c == 0 {
                per.remove(category);
            }
        }
        for rule in &o.rules {
            let c = self.rules.entry(rule.clone()).or_default();
            step(c);
            if *c == 0 {
                self.rules.remove(rule);
            }
        }
        if let Some(v) = &o.embedding {
            if self.embedding_sum.len() != v.len() {
                self.embedding_sum = vec![0.0; v.len()];
                self.embeddings = 0;
            }
            for (s, x) in self.embedding_sum.iter_mut().zip(v) {
                *s += sign as f64 * f64::from(*x);
            }
            step(&mut self.embeddings);
        }
    }
}

/// The population stability index of two distributions given as category counts over
/// `n_ref` and `n_cur` observations: sum over categories of (cur% - ref%) * ln(cur% / ref%).
pub fn psi(
    reference: &BTreeMap<String, u64>,
    n_ref: u64,
    current: &BTreeMap<String, u64>,
    n_cur: u64,
) -> f64 {
    let categories: BTreeSet<&String> = reference.keys().chain(current.keys()).collect();
    let k = categories.len() as f64;
    if k == 0.0 {
        return 0.0;
    }
    let share = |counts: &BTreeMap<String, u64>, n: u64, c: &String| {
        (counts.get(c).copied().unwrap_or(0) as f64 + SMOOTHING) / (n as f64 + SMOOTHING * k)
    };
    categories
        .into_iter()
        .map(|c| {
            let (r, q) = (share(reference, n_ref, c), share(current, n_cur, c));
            (q - r) * (q / r).ln()
        })
        .sum()
}

/// One feature compared across the two windows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    /// `prompt_tokens`, `script`, `rule:<id>`, ...
    pub feature: String,
    /// Its population stability index.
    pub psi: f64,
    /// Share of the reference window per category.
    pub reference: Vec<(String, f64)>,
    /// Share of the current window per category.
    pub current: Vec<(String, f64)>,
}

fn shares(counts: &BTreeMap<String, u64>, order: &[String], n: u64) -> Vec<(String, f64)> {
    order
        .iter()
        .map(|c| {
            let v = counts.get(c).copied().unwrap_or(0) as f64 / n.max(1) as f64;
            (c.clone(), v)
        })
        .collect()
}

/// Every feature of either window compared, features in name order, categories in the
/// order [`super::features::order`] gives.
pub fn compare(reference: &Counts, current: &Counts) -> Vec<FeatureDrift> {
    let empty = BTreeMap::new();
    let names: BTreeSet<&String> = reference
        .features
        .keys()
        .chain(current.features.keys())
        .collect();
    let mut out: Vec<FeatureDrift> = names
        .into_iter()
        .map(|name| {
            let r = reference.features.get(name).unwrap_or(&empty);
            let c = current.features.get(name).unwrap_or(&empty);
            // Optional features (retrieval, tools) count only requests that had them.
            let (nr, nc) = (r.values().sum(), c.values().sum());
            let order = super::features::order(name, r.keys().chain(c.keys()));
            FeatureDrift {
                feature: name.clone(),
                psi: psi(r, nr, c, nc),
                reference: shares(r, &order, nr),
                current: shares(c, &order, nc),
            }
        })
        .collect();
    let rules: BTreeSet<&String> = reference.rules.keys().chain(current.rules.keys()).collect();
    for rule in rules {
        // A rule's decision rate: fired or not, over every observation.
        let split = |fired: u64, n: u64| {
            BTreeMap::from([
                ("decided".to_string(), fired),
                ("not".to_string(), n.saturating_sub(fired)),
            ])
        };
        let r = split(reference.rules.get(rule).copied().unwrap_or(0), reference.n);
        let c = split(current.rules.get(rule).copied().unwrap_or(0), current.n);
        let order = vec!["decided".to_string(), "not".to_string()];
        out.push(FeatureDrift {
            feature: format!("rule:{rule}"),
            psi: psi(&r, reference.n, &c, current.n),
            reference: shares(&r, &order, reference.n),
            current: shares(&c, &order, current.n),
        });
    }
    out
}

/// 1 - cosine similarity of the two windows' mean embeddings; `None` below `min` sampled
/// embeddings in either.
pub fn embedding_shift(reference: &Counts, current: &Counts, min: u64) -> Option<f64> {
    if reference.embeddings < min.max(1)
        || current.embeddings < min.max(1)
        || reference.embedding_sum.len() != current.embedding_sum.len()
    {
        return None;
    }
    let dot: f64 = reference
        .embedding_sum
        .iter()
        .zip(&current.embedding_sum)
        .map(|(a, b)| a * b)
        .sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let denom = norm(&reference.embedding_sum) * norm(&current.embedding_sum);
    (denom > 0.0).then(|| 1.0 - dot / denom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn identical_distributions_score_zero_and_shifts_score_high() {
        let a = counts(&[("latin", 90), ("cyrillic", 10)]);
        assert_eq!(psi(&a, 100, &a, 100), 0.0);
        // Same shares, other sizes: still (nearly) zero.
        let b = counts(&[("latin", 45), ("cyrillic", 5)]);
        assert!(psi(&a, 100, &b, 50) < 0.01);
        let c = counts(&[("latin", 10), ("cyrillic", 90)]);
        assert!(psi(&a, 100, &c, 100) > 2.0);
        // A category only one side has is finite.
        let d = counts(&[("han", 100)]);
        assert!(psi(&a, 100, &d, 100).is_finite());
    }

    #[test]
    fn a_rule_firing_ten_times_as_often_crosses_the_usual_threshold() {
        let mut r = Counts {
            n: 1000,
            ..Default::default()
        };
        r.rules.insert("pii".into(), 10);
        let mut c = r.clone();
        c.rules.insert("pii".into(), 100);
        let d = compare(&r, &c);
        assert_eq!(d[0].feature, "rule:pii");
        assert!(d[0].psi > 0.2, "{}", d[0].psi);
        assert!(compare(&r, &r)[0].psi == 0.0);
    }

    #[test]
    fn embedding_shift_is_zero_for_the_same_direction() {
        let a = Counts {
            embedding_sum: vec![1.0, 0.0],
            embeddings: 10,
            ..Default::default()
        };
        let mut b = a.clone();
        b.embedding_sum = vec![5.0, 0.0];
        assert!(embedding_shift(&a, &b, 5).unwrap().abs() < 1e-12);
        b.embedding_sum = vec![0.0, 3.0];
        assert!((embedding_shift(&a, &b, 5).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(embedding_shift(&a, &b, 11), None);
    }

    proptest! {
        #[test]
        fn psi_is_finite_and_never_negative(
            r in proptest::collection::btree_map("[a-d]", 0u64..50, 0..4),
            c in proptest::collection::btree_map("[a-d]", 0u64..50, 0..4),
        ) {
            let (nr, nc) = (r.values().sum(), c.values().sum());
            let v = psi(&r, nr, &c, nc);
            prop_assert!(v.is_finite() && v >= -1e-12, "{v}");
        }

        #[test]
        fn counting_out_undoes_counting_in(lens in proptest::collection::vec(0u64..5000, 1..20)) {
            let mut w = Counts::default();
            let obs: Vec<Observation> = lens.iter().map(|l| Observation::test(*l)).collect();
            for o in &obs { w.apply(o, 1); }
            for o in &obs { w.apply(o, -1); }
            prop_assert_eq!(w.n, 0);
            prop_assert!(w.features.values().all(|f| f.is_empty()));
        }
    }
}
