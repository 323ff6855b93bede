//! Guardrail metrics.

use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use super::must;

/// Guardrail metrics.
#[derive(Debug, Clone)]
pub struct PolicyMetrics {
    /// Rule decisions by policy, rule, stage and action.
    pub decisions: IntCounterVec,
    /// Reload attempts by result (`ok`, `rejected`).
    pub reloads: IntCounterVec,
    /// 1 for the policies' version in force.
    pub version: IntGaugeVec,
}

impl PolicyMetrics {
    pub(super) fn new() -> Self {
        Self {
            decisions: must(IntCounterVec::new(
                Opts::new(
                    "policy_decisions_total",
                    "Guardrail rule decisions by policy, rule, stage and action.",
                ),
                &["policy", "rule", "stage", "action"],
            )),
            reloads: must(IntCounterVec::new(
                Opts::new(
                    "policy_reloads_total",
                    "Policy reloads by result: ok, or rejected (the old version stays).",
                ),
                &["result"],
            )),
            version: must(IntGaugeVec::new(
                Opts::new(
                    "policy_version_info",
                    "1 for the policies' version in force.",
                ),
                &["version"],
            )),
        }
    }

    pub(super) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.decisions.clone()),
            Box::new(self.reloads.clone()),
            Box::new(self.version.clone()),
        ]
    }

    /// Counts decisions.
    pub fn record(&self, decisions: &[crate::policy::Decision]) {
        for d in decisions {
            self.decisions
                .with_label_values(&[&*d.policy, &*d.rule, d.stage.as_str(), d.action.as_str()])
                .inc();
        }
    }

    /// Marks `version` as the one in force.
    pub fn set_version(&self, version: &str) {
        self.version.reset();
        self.version.with_label_values(&[version]).set(1);
    }
}
