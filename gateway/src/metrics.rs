//! Prometheus metrics, rendered at `GET /metrics`.

use prometheus::{
    CounterVec, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// All metrics of one server.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route, model and status.
    pub requests: IntCounterVec,
    /// Request duration (until the last body byte) by route, model and status.
    pub latency: HistogramVec,
    /// Time from request start to the first generated text.
    pub ttft: HistogramVec,
    /// Output tokens per second of decoding, per generation.
    pub tokens_per_second: HistogramVec,
    /// Generated tokens.
    pub output_tokens: IntCounterVec,
    /// Requests in flight.
    pub in_flight: IntGauge,
    /// Requests waiting for a generation slot, per model (read at scrape time).
    pub queue_depth: IntGaugeVec,
    /// Generations running in the engine, per model.
    pub running: IntGaugeVec,
    /// Generations stopped because the client went away, per model.
    pub cancelled: IntCounterVec,
    /// Sequences alive inside the local engine, per model (read at scrape time).
    pub engine_sequences: IntGaugeVec,
    /// Speculative decoding, per model.
    pub speculative: SpeculativeMetrics,
    /// Guardrail policies.
    pub policy: PolicyMetrics,
    /// Templates, structured output and tools.
    pub shaping: ShapingMetrics,
    /// Auth, rate limits, the response cache, routing and Redis.
    pub fleet: FleetMetrics,
    /// The audit log.
    pub audit: AuditMetrics,
    /// Every metric's name, for checks such as the Grafana dashboard's.
    names: Vec<String>,
}

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

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
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

/// What replicas share: auth, rate limits, the response cache, routing, Redis.
#[derive(Debug, Clone)]
pub struct FleetMetrics {
    /// Refused authentications by reason (`missing`, `invalid`, `unavailable`, `forbidden`).
    pub auth_failures: IntCounterVec,
    /// Requests refused by a rate limit, by scope (`tenant`, `key`) and limit (`requests`,
    /// `tokens`, `concurrent`).
    pub rate_limited: IntCounterVec,
    /// Response cache lookups by result (`hit`, `miss`, `bypass`, `error`).
    pub cache: IntCounterVec,
    /// Failed Redis calls by feature (`auth`, `rate_limits`, `cache`, `routing`).
    pub redis_errors: IntCounterVec,
    /// 1 while the last Redis call succeeded, 0 after a failure.
    pub redis_up: IntGauge,
    /// Routed requests by model, backend and reason (`affinity`, `spill`, `only`).
    pub routed: IntCounterVec,
}

impl FleetMetrics {
    fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            must(IntCounterVec::new(Opts::new(name, help), labels))
        };
        Self {
            auth_failures: counter(
                "auth_failures_total",
                "Refused authentications by reason: missing, invalid, unavailable (Redis down, fail_closed), forbidden.",
                &["reason"],
            ),
            rate_limited: counter(
                "rate_limited_total",
                "Requests refused with 429 by scope (tenant, key) and limit (requests, tokens, concurrent).",
                &["scope", "limit"],
            ),
            cache: counter(
                "cache_requests_total",
                "Response cache lookups by result: hit, miss, bypass (not cacheable), error (store failed).",
                &["result"],
            ),
            redis_errors: counter(
                "redis_errors_total",
                "Failed or timed-out Redis calls by feature.",
                &["feature"],
            ),
            redis_up: must(IntGauge::new(
                "redis_up",
                "1 while the last Redis call succeeded, 0 after a failure.",
            )),
            routed: counter(
                "routed_requests_total",
                "Requests routed to a backend replica by model, backend and reason (affinity, spill, only).",
                &["model", "backend", "reason"],
            ),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.auth_failures.clone()),
            Box::new(self.rate_limited.clone()),
            Box::new(self.cache.clone()),
            Box::new(self.redis_errors.clone()),
            Box::new(self.redis_up.clone()),
            Box::new(self.routed.clone()),
        ]
    }
}

/// What shapes requests and answers: templates, structured output, tools.
#[derive(Debug, Clone)]
pub struct ShapingMetrics {
    /// Template renders by template (`name@version`, or the name asked for) and result.
    pub template_renders: IntCounterVec,
    /// Template reloads by result (`ok`, `rejected`).
    pub template_reloads: IntCounterVec,
    /// Structured answers by response format and result (`valid`, `invalid`).
    pub structured: IntCounterVec,
    /// Server-side tool executions by tool and status (`ok`, `error`, `timeout`).
    pub tool_runs: IntCounterVec,
    /// Retrievals by status (`ok`, `empty`, `error`, `blocked`).
    pub retrievals: IntCounterVec,
}

impl ShapingMetrics {
    fn new() -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            must(IntCounterVec::new(Opts::new(name, help), labels))
        };
        Self {
            template_renders: counter(
                "template_renders_total",
                "Prompt template renders by template and result (ok, not_found, invalid_variables, render_error).",
                &["template", "result"],
            ),
            template_reloads: counter(
                "template_reloads_total",
                "Template reloads by result: ok, or rejected (the old templates stay).",
                &["result"],
            ),
            structured: counter(
                "structured_output_total",
                "Answers under a response_format by format and result (valid, invalid).",
                &["format", "result"],
            ),
            tool_runs: counter(
                "tool_runs_total",
                "Server-side tool executions by tool and status (ok, error, timeout).",
                &["tool", "status"],
            ),
            retrievals: counter(
                "retrievals_total",
                "Retrievals by status: ok, empty (no usable chunk), error (failed or timed out), blocked (a chunk refused the request).",
                &["status"],
            ),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.template_renders.clone()),
            Box::new(self.template_reloads.clone()),
            Box::new(self.structured.clone()),
            Box::new(self.tool_runs.clone()),
            Box::new(self.retrievals.clone()),
        ]
    }
}

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
    fn new() -> Self {
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

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
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
    fn new() -> Self {
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

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
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

fn must<T>(r: prometheus::Result<T>) -> T {
    r.expect("metric definitions are static and valid")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        Self::with_audit(AuditMetrics::new())
    }

    /// Like [`Metrics::new`], with the audit log's metrics made before (the log opens
    /// before the server's state exists).
    pub fn with_audit(audit: AuditMetrics) -> Self {
        let registry = Registry::new_custom(Some("gatehouse".into()), None).expect("valid prefix");
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0, 120.0,
        ];
        let requests = must(IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, model and status.",
            ),
            &["route", "model", "status"],
        ));
        let latency = must(HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request duration until the last byte.",
            )
            .buckets(buckets.clone()),
            &["route", "model", "status"],
        ));
        let ttft = must(HistogramVec::new(
            HistogramOpts::new(
                "time_to_first_token_seconds",
                "Time from request start to the first generated text.",
            )
            .buckets(buckets),
            &["model"],
        ));
        let tokens_per_second = must(HistogramVec::new(
            HistogramOpts::new(
                "output_tokens_per_second",
                "Decode speed of each generation, after its first token.",
            )
            .buckets(vec![
                1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0, 500.0, 1000.0,
            ]),
            &["model"],
        ));
        let output_tokens = must(IntCounterVec::new(
            Opts::new("output_tokens_total", "Generated tokens."),
            &["model"],
        ));
        let in_flight = must(IntGauge::new(
            "http_requests_in_flight",
            "HTTP requests in flight.",
        ));
        let queue_depth = must(IntGaugeVec::new(
            Opts::new("queue_depth", "Requests waiting for a generation slot."),
            &["model"],
        ));
        let running = must(IntGaugeVec::new(
            Opts::new("running_generations", "Generations running in a backend."),
            &["model"],
        ));
        let cancelled = must(IntCounterVec::new(
            Opts::new(
                "cancelled_generations_total",
                "Generations stopped because the client went away.",
            ),
            &["model"],
        ));
        let engine_sequences = must(IntGaugeVec::new(
            Opts::new(
                "engine_active_sequences",
                "Sequences alive inside the local engine.",
            ),
            &["model"],
        ));
        let speculative = SpeculativeMetrics::new();
        let policy = PolicyMetrics::new();
        let shaping = ShapingMetrics::new();
        let fleet = FleetMetrics::new();
        let mut names = Vec::new();
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(ttft.clone()),
            Box::new(tokens_per_second.clone()),
            Box::new(output_tokens.clone()),
            Box::new(in_flight.clone()),
            Box::new(queue_depth.clone()),
            Box::new(running.clone()),
            Box::new(cancelled.clone()),
            Box::new(engine_sequences.clone()),
        ]
        .into_iter()
        .chain(speculative.collectors())
        .chain(policy.collectors())
        .chain(shaping.collectors())
        .chain(fleet.collectors())
        .chain(audit.collectors())
        {
            names.extend(c.desc().iter().map(|d| format!("gatehouse_{}", d.fq_name)));
            must(registry.register(c));
        }
        Self {
            registry,
            requests,
            latency,
            ttft,
            tokens_per_second,
            output_tokens,
            in_flight,
            queue_depth,
            running,
            cancelled,
            engine_sequences,
            speculative,
            policy,
            shaping,
            fleet,
            audit,
            names,
        }
    }

    /// Every metric's full name (`gatehouse_...`), histograms without their suffixes.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}
