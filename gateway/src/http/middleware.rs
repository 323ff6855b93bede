//! HTTP middleware: request metrics, the in-flight limit, the timeout, panics.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::error::ApiError;

/// Model label put in response extensions by handlers that know it (a configured id only,
/// so clients cannot grow the label set).
#[derive(Debug, Clone)]
pub struct ModelLabel(pub String);

/// A response body that drops `guard` when the body ends or the client goes away.
struct Guarded<G> {
    inner: Body,
    guard: Option<G>,
}

impl<G: Unpin> http_body::Body for Guarded<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = res {
            self.guard.take();
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Keeps `guard` alive until the response body ends (or the client goes away).
pub(super) fn guard_body<G: Send + Unpin + 'static>(resp: Response, guard: G) -> Response {
    let (parts, body) = resp.into_parts();
    Response::from_parts(
        parts,
        Body::new(Guarded {
            inner: body,
            guard: Some(guard),
        }),
    )
}

/// Status label of a request whose client went away before the response started (nginx's
/// "client closed request").
pub const CLIENT_CLOSED: &str = "499";

/// Records count, latency (to the last byte) and in-flight requests by route, model, status.
/// A request dropped before its response (the client went away while it waited) is counted
/// with status 499 and leaves the in-flight gauge like any other.
pub async fn metrics(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());

    struct Done {
        state: Arc<AppState>,
        labels: [String; 3],
        start: Instant,
    }
    impl Drop for Done {
        fn drop(&mut self) {
            let m = &self.state.metrics;
            let labels: [&str; 3] = [&self.labels[0], &self.labels[1], &self.labels[2]];
            m.requests.with_label_values(&labels).inc();
            m.latency
                .with_label_values(&labels)
                .observe(self.start.elapsed().as_secs_f64());
            m.in_flight.dec();
        }
    }
    state.metrics.in_flight.inc();
    // Made before awaiting: if the client goes away first, this future is dropped mid-await
    // and the guard still takes the request out of the gauge.
    let mut done = Done {
        state: state.clone(),
        labels: [route, String::new(), CLIENT_CLOSED.to_string()],
        start: Instant::now(),
    };
    let resp = next.run(req).await;
    done.labels[2] = resp
        .extensions()
        .get::<crate::error::EffectiveStatus>()
        .map_or(resp.status(), |s| s.0)
        .as_u16()
        .to_string();
    done.labels[1] = resp
        .extensions()
        .get::<ModelLabel>()
        .map(|m| m.0.clone())
        .unwrap_or_default();
    guard_body(resp, done)
}

/// `server.max_in_flight` (503 past it) and `server.request_timeout_secs` (504). Probes sit
/// beside this layer (`crate::app::http_router`), so a saturated server still reports its
/// health.
///
/// Not tower's `ConcurrencyLimit` + `LoadShed`: those free the slot when the response head
/// is ready, so a long SSE stream would stop counting; here the slot lives until the body ends.
pub async fn limits(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let server = &state.config.server;
    let prev = state.in_flight.fetch_add(1, Ordering::SeqCst);
    struct Slot(Arc<AppState>);
    impl Drop for Slot {
        fn drop(&mut self) {
            self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let slot = Slot(state.clone());
    if prev >= server.max_in_flight {
        return ApiError::ServerOverloaded.into_response();
    }
    match tokio::time::timeout(server.request_timeout, next.run(req)).await {
        Ok(resp) => guard_body(resp, slot),
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// The root span of a request: a child of the client's `traceparent`, if it sent one.
pub fn request_span(req: &axum::http::Request<Body>) -> tracing::Span {
    let method = req.method();
    let path = req.uri().path();
    let span = tracing::info_span!(
        crate::telemetry::REQUEST_SPAN,
        otel.name = %format!("{method} {path}"),
        otel.kind = "server",
        http.request.method = %method,
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        request_id = req
            .headers()
            .get(super::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    );
    crate::telemetry::set_remote_parent(&span, req.headers());
    span
}

/// Records the status on the request's span.
pub fn record_status<B>(
    resp: &axum::http::Response<B>,
    _latency: std::time::Duration,
    span: &tracing::Span,
) {
    // i64: OpenTelemetry attributes have no unsigned integers (u64 become strings).
    span.record(
        "http.response.status_code",
        i64::from(resp.status().as_u16()),
    );
    if resp.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// The 500 answered when a handler panics.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::Internal.into_response()
}
