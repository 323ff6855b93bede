//! Drift monitoring: per model and template, the traffic of a reference window (the first
//! requests after start, or a pinned baseline) against the most recent requests, feature by
//! feature (prompt and completion lengths, script, finish reason, outcome, each policy
//! rule's decision rate, retrieval score, tool runs; the population stability index of
//! each) and by the mean of sampled prompt embeddings (cosine shift).
//!
//! The request path only hands a finished request's features to a bounded queue; counting,
//! embedding and the gauges happen on a task of their own. `gatehouse drift report` computes
//! the same figures from the audit log.

pub mod features;
pub mod page;
pub mod script;
pub mod stats;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::audit::record::Record;
use crate::config::DriftConfig;
use crate::metrics::DriftMetrics;
use crate::models::{ModelRegistry, ModelState};
use stats::{Counts, FeatureDrift};

/// Observations waiting for the monitor's task; past it they are dropped and counted.
const QUEUE: usize = 4096;

/// What drift is measured on, of one finished chat request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Model asked for (a configured one).
    pub model: String,
    /// Template name (`name@version` cut at `@`), empty without one.
    pub template: String,
    /// `(feature, category)` pairs.
    pub categories: features::Categories,
    /// Policy rules that decided on the request.
    pub rules: Vec<String>,
    /// The sampled prompt's embedding, once computed.
    pub embedding: Option<Vec<f32>>,
    /// The prompt text to embed, on sampled requests.
    sample: Option<String>,
}

impl Observation {
    /// The observation of a chat record (`None` for other records).
    pub fn from_record(r: &Record) -> Option<Self> {
        let (categories, rules) = features::of_record(r)?;
        Some(Self {
            model: r.unmapped.model.clone()?,
            template: template_name(r.unmapped.template.as_deref()),
            categories,
            rules,
            embedding: None,
            sample: None,
        })
    }

    /// With `text` to embed in the background.
    pub fn with_sample(mut self, text: Option<String>) -> Self {
        self.sample = text;
        self
    }

    #[cfg(test)]
    pub(crate) fn test(prompt_tokens: u64) -> Self {
        Self {
            model: "m".into(),
            categories: vec![("prompt_tokens", prompt_tokens.to_string())],
            ..Default::default()
        }
    }
}

/// `name` of `name@version`: versions come and go, the drift of a template's traffic spans
/// them.
fn template_name(t: Option<&str>) -> String {
    t.map(|t| t.split('@').next().unwrap_or(t).to_string())
        .unwrap_or_default()
}

/// A model and template's two windows.
#[derive(Debug, Clone, Default)]
struct Track {
    reference: Counts,
    /// The reference is complete (pinned, or its first requests counted).
    pinned: bool,
    current: Counts,
    recent: VecDeque<Observation>,
    /// Requests counted since start.
    observed: u64,
}

/// One model and template compared.
#[derive(Debug, Clone, Serialize)]
pub struct KeyReport {
    /// Model id.
    pub model: String,
    /// Template name, empty for requests without one.
    pub template: String,
    /// Requests in the reference window.
    pub reference_requests: u64,
    /// Requests in the current window.
    pub current_requests: u64,
    /// Requests observed in all (since start; for a report, in either range).
    pub observed: u64,
    /// Every feature compared; empty until both windows have `min_requests`.
    pub features: Vec<FeatureDrift>,
    /// Cosine shift of the mean sampled prompt embedding, when enough were sampled.
    pub embedding_shift: Option<f64>,
}

/// Compares two windows as the monitor and the report do.
pub fn compare(
    model: &str,
    template: &str,
    reference: &Counts,
    current: &Counts,
    min_requests: usize,
) -> KeyReport {
    let enough = reference.n >= min_requests as u64 && current.n >= min_requests as u64;
    KeyReport {
        model: model.to_string(),
        template: template.to_string(),
        reference_requests: reference.n,
        current_requests: current.n,
        observed: reference.n + current.n,
        features: if enough {
            stats::compare(reference, current)
        } else {
            Vec::new()
        },
        // Embeddings are sampled: a tenth of the requests' minimum is enough for a mean.
        embedding_shift: stats::embedding_shift(
            reference,
            current,
            (min_requests as u64 / 10).max(3),
        ),
    }
}

/// A pinned reference: the reference windows of some models and templates, as
/// `gatehouse drift report --save-baseline` writes them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version (1).
    pub version: u32,
    /// One entry per model and template.
    pub keys: Vec<BaselineKey>,
}

/// One model and template of a [`Baseline`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineKey {
    /// Model id.
    pub model: String,
    /// Template name, empty for none.
    pub template: String,
    /// The reference counts.
    pub counts: Counts,
}

impl Baseline {
    /// Reads a baseline file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let b: Baseline = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a drift baseline: {e}", path.display()))?;
        if b.version != 1 {
            return Err(format!(
                "{}: baseline version {} (this gatehouse reads 1)",
                path.display(),
                b.version
            ));
        }
        Ok(b)
    }
}

/// The live monitor (see the module docs).
pub struct Monitor {
    config: DriftConfig,
    tx: mpsc::Sender<Observation>,
    tracks: Mutex<BTreeMap<(String, String), Track>>,
    metrics: DriftMetrics,
    requests: AtomicU64,
}

impl Monitor {
    /// A monitor of `config` over `models`' traffic; its task runs on the current tokio
    /// runtime (without one, observations are dropped and counted). A baseline file that
    /// no longer reads (it was checked with the config) is logged and left out.
    pub fn start(
        config: DriftConfig,
        models: Arc<ModelRegistry>,
        metrics: DriftMetrics,
    ) -> Arc<Self> {
        let mut tracks = BTreeMap::new();
        let baseline = config.baseline_file.as_deref().map(Baseline::load);
        match baseline {
            None => {}
            Some(Err(e)) => tracing::error!(error = %e, "drift: baseline left out"),
            Some(Ok(b)) => {
                for k in b.keys {
                    tracks.insert(
                        (k.model, k.template),
                        Track {
                            reference: k.counts,
                            pinned: true,
                            ..Default::default()
                        },
                    );
                }
            }
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let monitor = Arc::new(Self {
            config,
            tx,
            tracks: Mutex::new(tracks),
            metrics,
            requests: AtomicU64::new(0),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(run(Arc::downgrade(&monitor), rx, models));
        }
        monitor
    }

    /// Whether the next request's prompt should be embedded (1 in `sample_every`).
    pub fn samples_next(&self) -> bool {
        self.config.embeddings.as_ref().is_some_and(|e| {
            self.requests
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(u64::from(e.sample_every))
        })
    }

    /// Hands `o` to the monitor's task; never waits.
    pub fn observe(&self, o: Observation) {
        if self.tx.try_send(o).is_err() {
            self.metrics.dropped.inc();
        }
    }

    /// Every model and template seen, compared now.
    pub fn report(&self) -> Vec<KeyReport> {
        let tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
        tracks
            .iter()
            .map(|((m, t), tr)| {
                let mut r = compare(m, t, &tr.reference, &tr.current, self.config.min_requests);
                r.observed = tr.observed;
                r
            })
            .collect()
    }

    /// The PSI above which the page marks a feature as shifted.
    pub fn threshold(&self) -> f64 {
        self.config.psi_threshold
    }

    fn add(&self, o: Observation) {
        let (model, template) = (o.model.clone(), o.template.clone());
        let report = {
            let mut tracks = self.tracks.lock().unwrap_or_else(|e| e.into_inner());
            let t = tracks.entry((model.clone(), template.clone())).or_default();
            t.observed += 1;
            if !t.pinned {
                t.reference.apply(&o, 1);
                t.pinned = t.reference.n >= self.config.reference_requests as u64;
            } else {
                t.current.apply(&o, 1);
                t.recent.push_back(o);
                if t.recent.len() > self.config.window_requests {
                    let old = t.recent.pop_front().expect("non-empty");
                    t.current.apply(&old, -1);
                }
            }
            compare(
                &model,
                &template,
                &t.reference,
                &t.current,
                self.config.min_requests,
            )
        };
        self.publish(&report);
    }

    fn publish(&self, r: &KeyReport) {
        let m = &self.metrics;
        for (window, n) in [
            ("reference", r.reference_requests),
            ("current", r.current_requests),
        ] {
            m.window_requests
                .with_label_values(&[&r.model, &r.template, window])
                .set(n as i64);
        }
        for f in &r.features {
            m.psi
                .with_label_values(&[&r.model, &r.template, &f.feature])
                .set(f.psi);
        }
        if let Some(s) = r.embedding_shift {
            m.embedding_shift
                .with_label_values(&[&r.model, &r.template])
                .set(s);
        }
    }
}

/// The monitor's task: embeds sampled prompts, counts, publishes; ends with the monitor.
async fn run(
    monitor: std::sync::Weak<Monitor>,
    mut rx: mpsc::Receiver<Observation>,
    models: Arc<ModelRegistry>,
) {
    while let Some(mut o) = rx.recv().await {
        let Some(m) = monitor.upgrade() else { return };
        if models.get(&o.model).is_none() {
            // Only configured models: a client's typo must not grow the label set.
            continue;
        }
        if let (Some(text), Some(e)) = (o.sample.take(), &m.config.embeddings) {
            o.embedding = embed(&models, &e.model, text).await;
        }
        m.add(o);
    }
}

/// The embedding of `text` by `model`, if it is a ready embedding model.
async fn embed(models: &ModelRegistry, model: &str, text: String) -> Option<Vec<f32>> {
    let ModelState::Ready(b) = models.get(model)?.state() else {
        return None;
    };
    let crate::backends::Backend::Embedding(e) = b.as_ref() else {
        return None;
    };
    match e.embed(vec![text]).await {
        Ok(out) => out.vectors.into_iter().next(),
        Err(err) => {
            tracing::warn!(error = %err, "drift: prompt embedding failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(tokens: &str, script: &str) -> Observation {
        Observation {
            model: "m".into(),
            categories: vec![("prompt_tokens", tokens.into()), ("script", script.into())],
            ..Default::default()
        }
    }

    fn monitor(reference: usize, window: usize) -> Arc<Monitor> {
        let cfg = DriftConfig {
            reference_requests: reference,
            window_requests: window,
            min_requests: 10,
            ..Default::default()
        };
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let registry = Arc::new(ModelRegistry::new(
            &crate::config::Config::from_str_with_env(
                "auth: none\nmodels:\n  - id: m\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\n",
                Path::new("/x/gatehouse.yaml"),
                std::iter::empty(),
            )
            .unwrap(),
            None,
            metrics.clone(),
        ));
        Monitor::start(cfg, registry, metrics.drift.clone())
    }

    #[test]
    fn the_reference_fills_first_then_the_window_slides() {
        let m = monitor(20, 10);
        for _ in 0..20 {
            m.add(obs("64-127", "latin"));
        }
        for _ in 0..10 {
            m.add(obs("64-127", "latin"));
        }
        let r = &m.report()[0];
        assert_eq!((r.reference_requests, r.current_requests), (20, 10));
        assert!(r.features.iter().all(|f| f.psi == 0.0));
        // The window slides: ten shifted requests replace the unshifted ones.
        for _ in 0..10 {
            m.add(obs("1024-2047", "cyrillic"));
        }
        let r = &m.report()[0];
        assert_eq!(r.current_requests, 10);
        for f in &r.features {
            assert!(f.psi > 1.0, "{f:?}");
        }
        let psi = m.metrics.psi.with_label_values(&["m", "", "script"]).get();
        assert!(psi > 1.0);
    }

    #[test]
    fn templates_drift_apart_from_versions() {
        assert_eq!(template_name(Some("soc-triage@3")), "soc-triage");
        assert_eq!(template_name(None), "");
    }
}
