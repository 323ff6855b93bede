//! The HTTP side of the audit log: a record for every API request the domain stack did not
//! record itself (embeddings, RAG, listings, admin pages, and chat requests refused before
//! they were parsed: bad keys, rate limits, malformed bodies). Probes are not recorded.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Authenticated;
use super::AppState;
use crate::audit::record::{now_ms, Activity, Class, Exchange, HttpRequest, Record, Url};
use crate::audit::{Auditor, SlotCell};
use crate::auth::Principal;
use crate::error::{ApiError, EffectiveStatus, ErrorCode};

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Writes the HTTP record of each request after its response headers, or when the client
/// goes away before them.
pub async fn audit(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let Some(auditor) = state.audit.clone() else {
        return next.run(req).await;
    };
    let Ok(slot) = auditor.admit() else {
        return ApiError::AuditUnavailable.into_response();
    };
    // Handed on to the chat handler: a chat request holds this one slot, not two. Whoever
    // takes it writes the record; the domain layer does so for every chat request it sees.
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
    let mut pending = Unanswered(Some(Started {
        auditor,
        cell,
        method,
        path,
        operation,
        request_id,
        trace: crate::telemetry::current_trace(),
        start_ms: now_ms(),
        started: Instant::now(),
    }));
    let resp = next.run(req).await;
    if let Some(started) = pending.0.take() {
        let principal = match resp.extensions().get::<Authenticated>() {
            Some(Authenticated(Some(p))) => Some(p.clone()),
            _ => None,
        };
        let code = resp.extensions().get::<ErrorCode>().map(|c| c.0.as_ref());
        let status = resp
            .extensions()
            .get::<EffectiveStatus>()
            .map_or(resp.status(), |s| s.0);
        started.write(Some(status), code, principal.as_deref());
    }
    resp
}

/// What is known of a request before its response.
struct Started {
    auditor: Arc<Auditor>,
    cell: SlotCell,
    method: String,
    path: String,
    operation: String,
    request_id: String,
    trace: Option<crate::audit::record::Trace>,
    start_ms: i64,
    started: Instant,
}

/// A request whose response has not come yet: dropped with it (the client went away), it
/// records the request as cancelled.
struct Unanswered(Option<Started>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.write(None, None, None);
        }
    }
}

impl Started {
    /// Writes the record: `status` `None` means cancelled. Nothing when the domain layer
    /// took the slot (it writes the chat record).
    fn write(self, status: Option<StatusCode>, code: Option<&str>, principal: Option<&Principal>) {
        let Some(slot) = self.cell.take() else {
            return;
        };
        let outcome = match status {
            None => "cancelled",
            Some(s) if s.is_success() || s.is_redirection() => "ok",
            Some(s) if s.is_server_error() => "failed",
            Some(_) => "refused",
        };
        // 499: the client-closed-request code of proxies.
        let http_status = status.map_or(499, |s| s.as_u16());
        let mut r = Record::new(
            Class::ApiActivity,
            Activity::of_method(&self.method),
            now_ms(),
        );
        r.set_outcome(outcome);
        r.set_exchange(Exchange {
            operation: self.operation.clone(),
            request_id: self.request_id,
            start_ms: self.start_ms,
            duration_ms: self.started.elapsed().as_millis() as u64,
            http_status,
            error: code.map(|c| (c.to_string(), None)),
            key_id: principal.map(|p| p.key_id.clone()),
            tenant: principal.map(|p| p.tenant.clone()),
        });
        r.http_request = Some(HttpRequest {
            http_method: self.method,
            url: Url { path: self.path },
        });
        r.trace = self.trace;
        r.unmapped.kind = "http".into();
        r.message = match code {
            Some(c) => format!("{}: {outcome} ({c})", self.operation),
            None => format!("{}: {outcome}", self.operation),
        };
        self.auditor.write(slot, r);
    }
}
