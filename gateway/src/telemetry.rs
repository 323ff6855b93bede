//! Logs and traces: the log subscriber, OpenTelemetry spans (exported over OTLP/gRPC when
//! `telemetry.otlp_endpoint` is set), and W3C trace context in and out.
//!
//! Spans get OpenTelemetry ids whether or not they are exported, so that audit records and
//! remote upstreams always carry the request's trace id. Without an exporter only the
//! request's root span exists: the per-step spans would cost a fifth of a proxied request's
//! CPU (docs/reliability.md) and go nowhere.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{filter_fn, FilterExt, FilterFn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::audit::record::{Span as SpanRecord, Trace};
use crate::config::TelemetryConfig;

/// Default log filter; `GATEHOUSE_LOG` replaces it.
const DEFAULT_LOG: &str = "info,mistralrs_core=error,mistralrs=error,qdrant_edge=error";

/// The name of a request's root span (HTTP and gRPC): the one span that exists when traces
/// are not exported, and the only span log lines show.
pub const REQUEST_SPAN: &str = "http.request";

/// The tracer provider; [`Telemetry::shutdown`] exports what is buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "telemetry: spans not exported at shutdown");
            }
        }
    }
}

/// Logs only (CLI commands).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .try_init();
}

fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG))
}

/// Why logs and traces cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter cannot be built for the configured endpoint.
    #[error("telemetry.otlp_endpoint {endpoint}: {source}")]
    Exporter {
        /// `telemetry.otlp_endpoint`.
        endpoint: String,
        /// The exporter's error.
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// Another global subscriber is already installed.
    #[error("cannot install the tracing subscriber: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
}

/// Logs and traces for a server. Must run inside the Tokio runtime (the gRPC channel is
/// created on it). The log filter does not apply to spans: `GATEHOUSE_LOG=warn` keeps
/// tracing intact.
pub fn init(cfg: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // Without an exporter, spans only carry ids (audit records, traceparent): none is
    // recorded unless the client's trace is sampled, whose flag goes on to upstreams.
    let root = match cfg.otlp_endpoint {
        Some(_) => Sampler::TraceIdRatioBased(cfg.sample_ratio),
        None => Sampler::AlwaysOff,
    };
    let sampler = Sampler::ParentBased(Box::new(root));
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(cfg.service_name.clone())
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_resource(resource);
    if let Some(endpoint) = &cfg.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(cfg.timeout)
            .build()
            .map_err(|source| TelemetryError::Exporter {
                endpoint: endpoint.clone(),
                source,
            })?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer("gatehouse");
    let spans = span_filter(cfg.otlp_endpoint.is_some());
    // Log lines name the request span (its request id) but not each step: a step span that no
    // layer wants is never built.
    let logs = log_filter().and(filter_fn(|m| m.is_event() || m.name() == REQUEST_SPAN));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(logs),
        )
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(spans),
        )
        .try_init()?;
    if let Some(endpoint) = &cfg.otlp_endpoint {
        tracing::info!(endpoint = %endpoint, sample_ratio = cfg.sample_ratio, "exporting traces over OTLP");
    }
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// The spans given to OpenTelemetry: Gatehouse's own at INFO (dependencies' spans, hyper,
/// h2, tonic, would be noise); only the request's root span when nothing is exported.
/// Decided per call site from metadata alone, so tracing caches it and a span nobody wants
/// costs one atomic load.
fn span_filter(exporting: bool) -> FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    filter_fn(move |m| {
        let t = m.target();
        let ours = ["gateway", "gatehouse"]
            .iter()
            .any(|c| t == *c || t.strip_prefix(c).is_some_and(|r| r.starts_with("::")));
        ours && m.is_span()
            && *m.level() <= tracing::Level::INFO
            && (exporting || m.name() == REQUEST_SPAN)
    })
}

/// The trace and span of the current span, when it has OpenTelemetry ids.
pub fn current_trace() -> Option<Trace> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| Trace {
        uid: sc.trace_id().to_string(),
        span: Some(SpanRecord {
            uid: sc.span_id().to_string(),
        }),
    })
}

/// Makes `span` a child of the `traceparent` in `headers`, if there is a valid one.
pub fn set_remote_parent(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Adds `traceparent` (and `tracestate`) of the current span to an outgoing request.
pub fn inject_current(headers: &mut axum::http::HeaderMap) {
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}

struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut axum::http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(key.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "traceparent",
            axum::http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let cx = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_remote() && sc.is_sampled());
        let mut out = axum::http::HeaderMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(&mut out));
        assert_eq!(
            out["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        // Garbage is ignored, not an error.
        let mut bad = axum::http::HeaderMap::new();
        bad.insert(
            "traceparent",
            axum::http::HeaderValue::from_static("00-zz-01"),
        );
        let cx = TraceContextPropagator::new().extract(&HeaderExtractor(&bad));
        assert!(!cx.span().span_context().is_valid());
    }
}
