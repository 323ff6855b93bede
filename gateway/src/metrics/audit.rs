//! The audit log's writer and queue.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

use super::must;

/// The audit log's writer and queue.
#[derive(Debug, Clone)]
pub struct AuditMetrics {
    /// Records on disk by kind (`chat`, `http`, `checkpoint`, `lifecycle`).
    pub records: IntCounterVec,
    /// Records lost by reason (`queue full`, ...).
    pub dropped: IntCounterVec,
    /// Requests refused with 503 because the queue was full (`fail_closed`).
    pub refused: IntCounter,
    /// Failed writes (each retried).
    pub write_errors: IntCounter,
    /// Records queued or reserved and not yet on disk.
    pub queue_depth: IntGauge,
    /// Checkpoints written.
    pub checkpoints: IntCounter,
    /// Time to append and fsync one batch.
    pub write_seconds: Histogram,
}

impl Default for AuditMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AuditMetrics {
    /// Unregistered; [`Metrics::with_audit`] registers them.
    pub fn new() -> Self {
        Self {
            records: must(IntCounterVec::new(
                Opts::new(
                    "audit_records_total",
                    "Audit records written (on disk) by kind: chat, http, checkpoint, lifecycle.",
                ),
                &["kind"],
            )),
            dropped: must(IntCounterVec::new(
                Opts::new(
                    "audit_dropped_total",
                    "Audit records lost, by reason (queue full under on_full: drop, written after shutdown).",
                ),
                &["reason"],
            )),
            refused: must(IntCounter::new(
                "audit_refused_total",
                "Requests refused with 503 audit_unavailable because the audit queue was full (on_full: fail_closed).",
            )),
            write_errors: must(IntCounter::new(
                "audit_write_errors_total",
                "Failed audit writes; each is retried while the queue holds the records.",
            )),
            queue_depth: must(IntGauge::new(
                "audit_queue_depth",
                "Audit records queued or reserved and not yet on disk.",
            )),
            checkpoints: must(IntCounter::new(
                "audit_checkpoints_total",
                "Signed audit checkpoints written.",
            )),
            write_seconds: must(Histogram::with_opts(
                HistogramOpts::new(
                    "audit_write_seconds",
                    "Time to append and fsync one batch of audit records.",
                )
                .buckets(vec![
                    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ]),
            )),
        }
    }

    pub(super) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.records.clone()),
            Box::new(self.dropped.clone()),
            Box::new(self.refused.clone()),
            Box::new(self.write_errors.clone()),
            Box::new(self.queue_depth.clone()),
            Box::new(self.checkpoints.clone()),
            Box::new(self.write_seconds.clone()),
        ]
    }
}
