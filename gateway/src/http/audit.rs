//! The HTTP side of the audit log: a record for every API request the domain stack did not
//! record itself (embeddings, RAG, listings, admin pages, and chat requests refused before
//! they were parsed: bad keys, rate limits, malformed bodies). Probes are not recorded.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::middleware::is_probe;
use super::AppState;
use crate::audit::record::{
    now_ms, Activity, Actor, Api, ApiRequest, ApiResponse, Class, HttpRequest, Org, Record,
    Service, Url, User,
};
use crate::audit::{Slot, SlotCell};
use crate::error::{ApiError, ErrorCode};

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Response mark of a request whose record the domain stack writes.
#[derive(Debug, Clone, Copy)]
pub struct DomainAudited;

/// Writes the HTTP record of each request after its response headers.
pub async fn audit(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let Some(auditor) = state.audit.clone() else {
        return next.run(req).await;
    };
    if is_probe(req.uri().path()) {
        return next.run(req).await;
    }
    let Ok(slot) = auditor.admit() else {
        return ApiError::AuditUnavailable.into_response();
    };
    // Handed on to the chat handler: a chat request holds this one slot, not two.
    let cell = SlotCell::new(slot);
    req.extensions_mut().insert(cell.clone());
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    // The route's pattern; for an unknown route the path itself (probing is worth seeing).
    let operation = match req.extensions().get::<MatchedPath>() {
        Some(p) => format!("{method} {}", p.as_str()),
        None => format!("{method} {}", truncate(&path, 256)),
    };
    let request_id = req
        .headers()
        .get(super::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let trace = crate::telemetry::current_trace();
    let (start_ms, started) = (now_ms(), Instant::now());
    let resp = next.run(req).await;
    if resp.extensions().get::<DomainAudited>().is_some() {
        return resp; // the domain layer took the slot for its record
    }
    let slot = cell.take().unwrap_or_else(Slot::unreserved);
    let status = resp.status();
    let code = resp.extensions().get::<ErrorCode>().map(|c| c.0);
    let outcome = if status.is_success() || status.is_redirection() {
        "ok"
    } else if status.is_server_error() {
        "failed"
    } else {
        "refused"
    };
    let end_ms = now_ms();
    let mut r = Record::new(Class::ApiActivity, Activity::of_method(&method), end_ms);
    r.set_outcome(outcome);
    r.start_time = Some(start_ms);
    r.end_time = Some(end_ms);
    r.duration = Some(started.elapsed().as_millis() as u64);
    r.metadata.correlation_uid = Some(request_id.clone());
    r.status_code = Some(code.map_or_else(|| status.as_u16().to_string(), str::to_string));
    r.api = Some(Api {
        operation: operation.clone(),
        request: ApiRequest { uid: request_id },
        response: ApiResponse {
            code: status.as_u16(),
            error: code.map(str::to_string),
            message: None,
        },
        service: Service {
            name: "gatehouse".into(),
        },
    });
    r.http_request = Some(HttpRequest {
        http_method: method,
        url: Url { path },
    });
    if let Some(Caller(Some(p))) = resp.extensions().get::<Caller>() {
        r.actor = Some(Actor {
            user: User {
                uid: Some(p.key_id.clone()),
                kind: Some("api_key".into()),
                org: Some(Org {
                    uid: p.tenant.clone(),
                }),
            },
        });
    }
    r.trace = trace;
    r.unmapped.kind = "http".into();
    r.message = match code {
        Some(c) => format!("{operation}: {outcome} ({c})"),
        None => format!("{operation}: {outcome}"),
    };
    auditor.write(slot, r);
    resp
}
