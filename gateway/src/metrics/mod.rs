//! Prometheus metrics, rendered at `GET /metrics`: the server's own here, each area's in
//! its file.

mod audit;
mod drift;
mod fleet;
mod gpu;
mod policy;
mod shaping;
mod speculative;

pub use audit::AuditMetrics;
pub use drift::DriftMetrics;
pub use fleet::FleetMetrics;
pub use gpu::GpuMetrics;
pub use policy::PolicyMetrics;
pub use shaping::ShapingMetrics;
pub use speculative::SpeculativeMetrics;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
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
    /// Bytes of weight files a loaded local model holds, per model (read at scrape time).
    pub weights_bytes: IntGaugeVec,
    /// Tokens the engine's KV cache can hold at once (context length x sequences), per model.
    pub kv_capacity_tokens: IntGaugeVec,
    /// Tokens live sequences hold in the engine's KV cache, per model.
    pub kv_tokens: IntGaugeVec,
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
    /// Drift of traffic per model and template.
    pub drift: DriftMetrics,
    /// GPU memory and utilisation (NVML builds).
    pub gpu: GpuMetrics,
    /// Every metric's name, for checks such as the Grafana dashboard's.
    names: Vec<String>,
}

pub(crate) fn must<T>(r: prometheus::Result<T>) -> T {
    r.expect("metric definitions are static and valid")
}

/// The process's CPU seconds, resident and virtual memory, open and maximum file
/// descriptors, threads and start time (`gatehouse_process_*`), read from `/proc` at scrape
/// time; nothing on other systems.
fn process_collector() -> Vec<Box<dyn prometheus::core::Collector>> {
    #[cfg(target_os = "linux")]
    {
        vec![Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )]
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
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
        let weights_bytes = must(IntGaugeVec::new(
            Opts::new(
                "model_weights_bytes",
                "Bytes of the weight files a loaded local model holds (its draft's included).",
            ),
            &["model"],
        ));
        let kv_capacity_tokens = must(IntGaugeVec::new(
            Opts::new(
                "model_kv_cache_capacity_tokens",
                "Tokens a local model's KV cache holds at most: context length times sequences run at once.",
            ),
            &["model"],
        ));
        let kv_tokens = must(IntGaugeVec::new(
            Opts::new(
                "model_kv_cache_tokens",
                "Tokens held in a local model's KV cache by its live sequences (prefix cache not counted).",
            ),
            &["model"],
        ));
        let speculative = SpeculativeMetrics::new();
        let policy = PolicyMetrics::new();
        let shaping = ShapingMetrics::new();
        let fleet = FleetMetrics::new();
        let drift = DriftMetrics::new();
        let gpu = GpuMetrics::new();
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
            Box::new(weights_bytes.clone()),
            Box::new(kv_capacity_tokens.clone()),
            Box::new(kv_tokens.clone()),
        ]
        .into_iter()
        .chain(speculative.collectors())
        .chain(policy.collectors())
        .chain(shaping.collectors())
        .chain(fleet.collectors())
        .chain(audit.collectors())
        .chain(drift.collectors())
        .chain(gpu.collectors())
        .chain(process_collector())
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
            weights_bytes,
            kv_capacity_tokens,
            kv_tokens,
            speculative,
            policy,
            shaping,
            fleet,
            audit,
            drift,
            gpu,
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
