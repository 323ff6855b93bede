//! Route handlers: parse once into a `ChatRequest`, call the domain service, render.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::json;
use tower::ServiceExt;

use super::auth::{Authenticated, TokenMeter};
use super::middleware::ModelLabel;
use super::{AppState, REQUEST_ID};
use crate::api::parse;
use crate::api::render::{self, Meta};
use crate::backends::Backend;
use crate::domain::{ChatEvent, ChatRequest, GuardContext};
use crate::error::ApiError;
use crate::layers::ChatStream;
use crate::models::ModelState;
use crate::policy::Action;

/// Reads the body up to the configured limit: 413 past it, by header or by counting.
/// (tower-http's `RequestBodyLimitLayer` answers a bare 413; this one is `ApiError`'s
/// OpenAI-shaped `body_too_large`.)
pub(super) async fn read_body(req: Request, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::BodyTooLarge { limit }
            } else {
                ApiError::InvalidJson(format!("could not read the body: {e}"))
            }
        })
}

/// What a transport knows of a chat call before its body is parsed: the caller (from the
/// auth middleware), its audit slot and token meter, cache directives. Built the same way
/// from an HTTP request and from a gRPC call, whose metadata are HTTP/2 headers.
pub(crate) struct CallContext {
    request_id: String,
    route: &'static str,
    api_key: Option<String>,
    principal: Option<Arc<crate::auth::Principal>>,
    meter: Option<TokenMeter>,
    audit_slot: crate::audit::SlotCell,
    cache_control: crate::domain::CacheControl,
}

impl CallContext {
    /// The context of a call to `route` with these headers and request extensions.
    pub(crate) fn new(
        route: &'static str,
        headers: &header::HeaderMap,
        extensions: &axum::http::Extensions,
    ) -> Self {
        Self {
            request_id: headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            route,
            api_key: bearer_token(headers).map(|t| format!("sha256:{}", crate::auth::hash_key(t))),
            principal: Authenticated::of(extensions).0,
            meter: extensions.get::<TokenMeter>().cloned(),
            audit_slot: extensions
                .get::<crate::audit::SlotCell>()
                .cloned()
                .unwrap_or_default(),
            cache_control: headers
                .get(header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .map(crate::domain::CacheControl::parse)
                .unwrap_or_default(),
        }
    }

    /// The request id (`x-request-id`).
    pub(crate) fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Runs `chat` (parsed from this call's body) through the domain stack with this call's
    /// caller, audit slot and cache directives; the answer's tokens are charged to the
    /// caller's meter as it ends.
    pub(crate) async fn answer(
        self,
        state: &AppState,
        mut chat: ChatRequest,
    ) -> Result<ChatStream, ApiError> {
        chat.cache_control = self.cache_control;
        chat.audit_slot = self.audit_slot;
        chat.caller.route = self.route.into();
        chat.caller.api_key = self.api_key;
        chat.caller.tenant = self.principal.as_ref().map(|p| p.tenant.clone());
        chat.caller.principal = self.principal;
        let answer = state.domain.clone().oneshot(chat).await?;
        Ok(match self.meter {
            Some(meter) => answer
                .inspect(move |e| {
                    if let Ok(ChatEvent::Done { usage, .. }) = e {
                        meter.add(usage.prompt_tokens + usage.completion_tokens);
                    }
                })
                .boxed(),
            None => answer,
        })
    }
}

/// Chunks retrieval gave the model, known once the answer has started.
pub(crate) fn citations(trail: &crate::domain::Trail) -> Option<Vec<crate::domain::Citation>> {
    trail
        .snapshot()
        .retrieval
        .filter(|r| !r.citations.is_empty())
        .map(|r| r.citations)
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let call = CallContext::new("/v1/chat/completions", req.headers(), req.extensions());
    let mut label = None;
    let mut guard = None;
    let mut trail = None;
    let result = async {
        if state.draining.load(Ordering::SeqCst) {
            return Err(ApiError::ShuttingDown);
        }
        let body = read_body(req, state.config.server.body_limit_bytes).await?;
        let chat = parse::chat_request(&body, call.request_id())?;
        guard = Some(chat.guard.clone());
        trail = Some(chat.trail.clone());
        if state.models.get(&chat.model).is_some() {
            label = Some(chat.model.clone());
        }
        let mut meta = Meta::new(&chat.model);
        let (streamed, include_usage) = (chat.stream, chat.include_usage);
        let chat_trail = chat.trail.clone();
        let mut answer = call.answer(&state, chat).await?;
        // Retrieval runs before the answer starts, so its citations are known here.
        meta.citations = citations(&chat_trail);
        if streamed {
            // Wait for the first event before sending headers, so that a request the backend
            // refuses outright (e.g. a prompt longer than the context) gets a real HTTP error.
            let first = match answer.next().await {
                Some(Err(e)) => return Err(e),
                first => first,
            };
            let answer = futures::stream::iter(first).chain(answer).boxed();
            Ok(Sse::new(render::sse(meta, answer, include_usage))
                .keep_alive(KeepAlive::default())
                .into_response())
        } else {
            Ok(Json(render::collect(meta, answer).await?).into_response())
        }
    }
    .await;
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    if let (Some(g), Some(trail)) = (guard, trail) {
        answer_headers(&g, &trail.snapshot(), resp.headers_mut());
    }
    if let Some(model) = label {
        resp.extensions_mut().insert(ModelLabel(model));
    }
    resp
}

/// The bearer token of `Authorization`, if any.
pub(super) fn bearer(req: &Request) -> Option<&str> {
    bearer_token(req.headers())
}

/// The bearer token of an `Authorization` header (or gRPC `authorization` metadata).
pub(crate) fn bearer_token(headers: &header::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The policy and trail headers of an answer (also gRPC response metadata).
pub(crate) fn answer_headers(
    guard: &GuardContext,
    trail: &crate::domain::TrailState,
    headers: &mut axum::http::HeaderMap,
) {
    policy_headers(guard, headers);
    trail_headers(trail, headers);
}

/// Response header naming the template (`name@version`) a request was rendered from.
pub const TEMPLATE_HEADER: &str = "x-gatehouse-template";
/// Response header listing server-side tool runs as `name:status`, comma-separated.
pub const TOOLS_HEADER: &str = "x-gatehouse-tools";

/// Response header summarising retrieval: `collection; status=ok; cited=2; dropped=1`.
pub const RETRIEVAL_HEADER: &str = "x-gatehouse-retrieval";

/// Template, tool-run and retrieval headers. For a stream, what happened before the headers were sent
/// (the template, and every tool run: the loop finishes before the answer streams).
fn trail_headers(t: &crate::domain::TrailState, headers: &mut axum::http::HeaderMap) {
    if let Some(v) = t
        .template
        .as_deref()
        .and_then(|s| header::HeaderValue::from_str(s).ok())
    {
        headers.insert(TEMPLATE_HEADER, v);
    }
    if let Some(r) = &t.retrieval {
        let v = format!(
            "{}; status={}; cited={}; dropped={}",
            r.collection,
            r.status,
            r.citations.len(),
            r.dropped.len()
        );
        if let Ok(v) = header::HeaderValue::from_str(&v) {
            headers.insert(RETRIEVAL_HEADER, v);
        }
    }
    let runs: Vec<String> = t
        .tool_runs
        .iter()
        .map(|r| format!("{}:{}", r.name, r.status))
        .collect();
    if let Ok(v) = header::HeaderValue::from_str(&runs.join(",")) {
        if !runs.is_empty() {
            headers.insert(TOOLS_HEADER, v);
        }
    }
    if let Some(b) = t.backend.as_deref() {
        if let Ok(v) = header::HeaderValue::from_str(b) {
            headers.insert(BACKEND_HEADER, v);
        }
    }
    if let Some(c) = t.cache {
        headers.insert(
            CACHE_HEADER,
            header::HeaderValue::from_static(match c {
                "hit" => "HIT",
                "miss" => "MISS",
                _ => "BYPASS",
            }),
        );
    }
}

/// Response header naming the backend of a pooled model that served the request.
pub const BACKEND_HEADER: &str = "x-gatehouse-backend";

/// Response header saying what the response cache did: `HIT`, `MISS` or `BYPASS`.
pub const CACHE_HEADER: &str = "x-cache";

/// Response header naming the policy and version a request ran under.
pub const POLICY_HEADER: &str = "x-gatehouse-policy";
/// Response header listing `warn` decisions as `rule:stage:entity`, comma-separated.
pub const WARNINGS_HEADER: &str = "x-gatehouse-policy-warnings";
/// Response header counting redacted spans.
pub const REDACTIONS_HEADER: &str = "x-gatehouse-policy-redactions";

/// Policy headers from the decisions made before the headers are sent: all of them for
/// a complete answer, the input's for a stream (its output decisions go to metrics and the
/// audit log).
fn policy_headers(g: &GuardContext, headers: &mut axum::http::HeaderMap) {
    let (Some(policy), Some(version)) = (g.policy(), g.version()) else {
        return;
    };
    let short = version.trim_start_matches("sha256:");
    let value = format!("{}; version={}", policy.id, &short[..short.len().min(12)]);
    if let Ok(v) = header::HeaderValue::from_str(&value) {
        headers.insert(POLICY_HEADER, v);
    }
    let decisions = g.decisions();
    let mut seen = std::collections::HashSet::new();
    let warnings: Vec<String> = decisions
        .iter()
        .filter(|d| d.action == Action::Warn)
        .map(|d| format!("{}:{}:{}", d.rule, d.stage.as_str(), d.entity))
        .filter(|w| seen.insert(w.clone()))
        .collect();
    if !warnings.is_empty() {
        if let Ok(v) = header::HeaderValue::from_str(&warnings.join(",")) {
            headers.insert(WARNINGS_HEADER, v);
        }
    }
    let redactions = decisions
        .iter()
        .filter(|d| d.action == Action::Redact)
        .count();
    if redactions > 0 {
        headers.insert(REDACTIONS_HEADER, header::HeaderValue::from(redactions));
    }
}

/// The models `caller`'s tenant may use, in config order.
pub(crate) fn visible_models<'a>(
    state: &'a AppState,
    caller: &'a Authenticated,
) -> impl Iterator<Item = &'a Arc<crate::models::ModelSlot>> {
    state
        .models
        .all()
        .iter()
        .filter(|s| caller.require_model(&s.config.id).is_ok())
}

/// A model's backend (`local`, `remote`) and kind (`chat`, `embedding`).
pub(crate) fn backend_and_kind(s: &crate::models::ModelSlot) -> (&'static str, &'static str) {
    match &s.config.backend {
        crate::config::BackendConfig::Local(_) => ("local", "chat"),
        crate::config::BackendConfig::LocalEmbedding(_) => ("local", "embedding"),
        crate::config::BackendConfig::Remote(_) => ("remote", "chat"),
    }
}

/// `GET /v1/models`: OpenAI's list of the models the caller's tenant may use, with
/// Gatehouse's backend and state per model.
pub async fn list_models(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> Json<serde_json::Value> {
    let caller = Authenticated::of(req.extensions());
    let data: Vec<_> = visible_models(&state, &caller)
        .map(|s| {
            let (backend, kind) = backend_and_kind(s);
            let mut gatehouse =
                json!({ "backend": backend, "kind": kind, "state": s.state().label() });
            if let ModelState::Ready(b) = s.state() {
                match b.as_ref() {
                    Backend::Local(local) => {
                        if let Some(info) = local.model().speculative() {
                            gatehouse["speculative"] = json!(info);
                        }
                    }
                    Backend::Pool(pool) => {
                        let ids: Vec<&str> = pool.members().iter().map(|m| m.id.as_str()).collect();
                        gatehouse["backends"] = json!(ids);
                        gatehouse["routing"] = json!(s.config.routing.as_str());
                    }
                    _ => {}
                }
            }
            json!({
                "id": s.config.id,
                "object": "model",
                "created": 0,
                "owned_by": "gatehouse",
                "gatehouse": gatehouse,
            })
        })
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 once every model is loaded, 503 while loading, failed or draining.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let models: serde_json::Map<String, serde_json::Value> = state
        .models
        .all()
        .iter()
        .map(|s| {
            let st = s.state();
            let v = match &st {
                ModelState::Failed(reason) => json!({ "state": "failed", "error": reason }),
                other => json!({ "state": other.label() }),
            };
            (s.config.id.clone(), v)
        })
        .collect();
    let (code, status) = if state.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if state.models.all_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    (code, Json(json!({ "status": status, "models": models }))).into_response()
}

/// `GET /metrics`: Prometheus text format; gauges of model state are read at scrape time.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    for slot in state.models.all() {
        state
            .metrics
            .queue_depth
            .with_label_values(&[&slot.config.id])
            .set(slot.admission.queue_depth() as i64);
        if let ModelState::Ready(b) = slot.state() {
            let id = [slot.config.id.as_str()];
            if let Some(bytes) = crate::models::weights_bytes(&slot.config.backend) {
                state
                    .metrics
                    .weights_bytes
                    .with_label_values(&id)
                    .set(bytes as i64);
            }
            if let Backend::Local(local) = b.as_ref() {
                let m = local.model();
                let capacity = m.max_seq_len() * slot.config.max_concurrent;
                state
                    .metrics
                    .kv_capacity_tokens
                    .with_label_values(&id)
                    .set(capacity as i64);
                state
                    .metrics
                    .kv_tokens
                    .with_label_values(&id)
                    .set(m.kv_cache_tokens() as i64);
                state
                    .metrics
                    .engine_sequences
                    .with_label_values(&id)
                    .set(m.active_sequences() as i64);
                if let Some(info) = local.model().speculative() {
                    state.metrics.speculative.publish(&slot.config.id, info);
                }
            }
        }
    }
    state.metrics.gpu.refresh();
    let mut resp = Response::new(Body::from(state.metrics.render()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// Unknown route.
pub async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!("{} {}", req.method(), req.uri().path()))
}

/// Known route, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
