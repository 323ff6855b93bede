//! Drift of the traffic each model and template sees (`crate::drift`).

use prometheus::{GaugeVec, IntCounter, IntGaugeVec, Opts};

use super::must;

/// Drift gauges, set by the drift monitor off the request path.
#[derive(Debug, Clone)]
pub struct DriftMetrics {
    /// Population stability index of the current window against the reference, per model,
    /// template and feature.
    pub psi: GaugeVec,
    /// 1 - cosine similarity of the windows' mean prompt embeddings, per model and template.
    pub embedding_shift: GaugeVec,
    /// Requests in each window (`reference`, `current`), per model and template.
    pub window_requests: IntGaugeVec,
    /// Observations the monitor could not keep up with.
    pub dropped: IntCounter,
}

impl DriftMetrics {
    pub(super) fn new() -> Self {
        Self {
            psi: must(GaugeVec::new(
                Opts::new(
                    "drift_psi",
                    "Population stability index of recent traffic against the reference window, per model, template and feature (docs/observability.md: drift).",
                ),
                &["model", "template", "feature"],
            )),
            embedding_shift: must(GaugeVec::new(
                Opts::new(
                    "drift_embedding_shift",
                    "1 - cosine similarity of the mean sampled prompt embedding of recent traffic and of the reference window.",
                ),
                &["model", "template"],
            )),
            window_requests: must(IntGaugeVec::new(
                Opts::new(
                    "drift_window_requests",
                    "Requests counted in the drift windows (reference, current).",
                ),
                &["model", "template", "window"],
            )),
            dropped: must(IntCounter::new(
                "drift_observations_dropped_total",
                "Requests the drift monitor did not count because its queue was full.",
            )),
        }
    }

    pub(super) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.psi.clone()),
            Box::new(self.embedding_shift.clone()),
            Box::new(self.window_requests.clone()),
            Box::new(self.dropped.clone()),
        ]
    }
}
