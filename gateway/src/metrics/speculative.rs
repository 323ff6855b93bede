//! Speculative decoding, per model.

use prometheus::{CounterVec, GaugeVec, IntCounterVec, IntGaugeVec, Opts};

use super::must;

/// Speculative decoding metrics, per model. Counters carry the totals; the gauges are the
/// lifetime means derived from them, for dashboards without PromQL.
#[derive(Debug, Clone)]
pub struct SpeculativeMetrics {
    /// Speculative steps.
    pub steps: IntCounterVec,
    /// Draft tokens proposed.
    pub drafted: IntCounterVec,
    /// Draft tokens accepted.
    pub accepted: IntCounterVec,
    /// Seconds running the draft.
    pub draft_seconds: CounterVec,
    /// Seconds running the target to verify.
    pub verify_seconds: CounterVec,
    /// Accepted over proposed draft tokens.
    pub acceptance_rate: GaugeVec,
    /// Mean accepted draft tokens per step.
    pub accepted_per_step: GaugeVec,
    /// Mean draft seconds per step.
    pub draft_seconds_per_step: GaugeVec,
    /// Mean verification seconds per step.
    pub verify_seconds_per_step: GaugeVec,
    /// 1 when the model decodes with its draft (read at scrape time).
    pub active: IntGaugeVec,
    /// Decode tokens/s measured by `speculative: auto`, by mode `plain` or `speculative`.
    pub auto_tokens_per_second: GaugeVec,
}

impl SpeculativeMetrics {
    pub(super) fn new() -> Self {
        let counter =
            |name: &str, help: &str| must(IntCounterVec::new(Opts::new(name, help), &["model"]));
        let seconds =
            |name: &str, help: &str| must(CounterVec::new(Opts::new(name, help), &["model"]));
        let gauge = |name: &str, help: &str| must(GaugeVec::new(Opts::new(name, help), &["model"]));
        Self {
            steps: counter(
                "speculative_steps_total",
                "Speculative steps (draft proposals verified).",
            ),
            drafted: counter("speculative_draft_tokens_total", "Draft tokens proposed."),
            accepted: counter(
                "speculative_accepted_tokens_total",
                "Draft tokens accepted by the target.",
            ),
            draft_seconds: seconds(
                "speculative_draft_seconds_total",
                "Time running the draft model.",
            ),
            verify_seconds: seconds(
                "speculative_verify_seconds_total",
                "Time running the target to verify drafts.",
            ),
            acceptance_rate: gauge(
                "speculative_acceptance_rate",
                "Accepted over proposed draft tokens, since start.",
            ),
            accepted_per_step: gauge(
                "speculative_accepted_tokens_per_step",
                "Mean draft tokens accepted per step, since start.",
            ),
            draft_seconds_per_step: gauge(
                "speculative_draft_seconds_per_step",
                "Mean draft time per step, since start.",
            ),
            verify_seconds_per_step: gauge(
                "speculative_verify_seconds_per_step",
                "Mean verification time per step, since start.",
            ),
            active: must(IntGaugeVec::new(
                Opts::new(
                    "speculative_active",
                    "1 when the model decodes with its draft model.",
                ),
                &["model"],
            )),
            auto_tokens_per_second: must(GaugeVec::new(
                Opts::new(
                    "speculative_auto_tokens_per_second",
                    "Decode tokens/s measured at start-up by `speculative: auto`.",
                ),
                &["model", "mode"],
            )),
        }
    }

    pub(super) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.steps.clone()),
            Box::new(self.drafted.clone()),
            Box::new(self.accepted.clone()),
            Box::new(self.draft_seconds.clone()),
            Box::new(self.verify_seconds.clone()),
            Box::new(self.acceptance_rate.clone()),
            Box::new(self.accepted_per_step.clone()),
            Box::new(self.draft_seconds_per_step.clone()),
            Box::new(self.verify_seconds_per_step.clone()),
            Box::new(self.active.clone()),
            Box::new(self.auto_tokens_per_second.clone()),
        ]
    }

    /// Adds one generation's figures and refreshes the means.
    pub fn record(&self, model: &str, s: &engine::SpeculativeStats) {
        let l = &[model];
        self.steps.with_label_values(l).inc_by(s.steps);
        self.drafted.with_label_values(l).inc_by(s.drafted_tokens);
        self.accepted.with_label_values(l).inc_by(s.accepted_tokens);
        self.draft_seconds
            .with_label_values(l)
            .inc_by(s.draft_seconds);
        self.verify_seconds
            .with_label_values(l)
            .inc_by(s.verify_seconds);
        let total = engine::SpeculativeStats {
            steps: self.steps.with_label_values(l).get(),
            drafted_tokens: self.drafted.with_label_values(l).get(),
            accepted_tokens: self.accepted.with_label_values(l).get(),
            emitted_tokens: 0,
            draft_seconds: self.draft_seconds.with_label_values(l).get(),
            verify_seconds: self.verify_seconds.with_label_values(l).get(),
        };
        self.acceptance_rate
            .with_label_values(l)
            .set(total.acceptance_rate());
        self.accepted_per_step
            .with_label_values(l)
            .set(total.accepted_per_step());
        self.draft_seconds_per_step
            .with_label_values(l)
            .set(total.draft_seconds_per_step());
        self.verify_seconds_per_step
            .with_label_values(l)
            .set(total.verify_seconds_per_step());
    }

    /// Publishes a model's speculative state (scrape time).
    pub fn publish(&self, model: &str, info: &engine::SpeculativeInfo) {
        self.active
            .with_label_values(&[model])
            .set(i64::from(info.active));
        if let Some(a) = info.auto {
            self.auto_tokens_per_second
                .with_label_values(&[model, "plain"])
                .set(a.plain_tokens_per_second);
            self.auto_tokens_per_second
                .with_label_values(&[model, "speculative"])
                .set(a.speculative_tokens_per_second);
        }
    }
}
