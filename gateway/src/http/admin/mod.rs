//! Admin endpoints: they need an `admin` key. Under `auth: none` they are closed unless
//! `auth.none.open_admin` opens them.

pub mod audit_page;
mod pages;
pub mod session;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::http::auth::Authenticated;
use crate::http::AppState;

/// Refuses `req` unless its key is an admin key, or the admin endpoints are open to all.
pub fn require_admin(req: &Request) -> Result<(), ApiError> {
    if req
        .extensions()
        .get::<crate::http::auth::AdminOpen>()
        .is_some()
    {
        return Ok(());
    }
    // The auth middleware runs before every route; without its mark, refuse.
    req.extensions()
        .get::<Authenticated>()
        .ok_or(ApiError::AdminRequired)?
        .require_admin()
}

/// `GET /v1/policies` (admin): the version in force, its policies and rules, and the error
/// of the last rejected reload.
pub async fn list_policies(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if let Err(e) = require_admin(&req) {
        return e.into_response();
    }
    let Some(store) = &state.policies else {
        return Json(json!({ "enabled": false, "policies": [] })).into_response();
    };
    let set = store.current();
    let loaded_at = set
        .loaded_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let policies: Vec<_> = set
        .policies
        .iter()
        .map(|p| {
            let rules: Vec<_> = p
                .rules
                .iter()
                .map(|r| {
                    json!({
                        "id": &*r.id,
                        "kind": r.kind,
                        "stages": r.stages,
                        "action": r.action,
                        "severity": r.severity,
                    })
                })
                .collect();
            json!({
                "id": &*p.id,
                "file": p.file.file_name().map(|f| f.to_string_lossy().into_owned()),
                "default": p.default,
                "priority": p.priority,
                "applies_to": p.applies_to,
                "rules": rules,
            })
        })
        .collect();
    Json(json!({
        "enabled": true,
        "version": set.version,
        "loaded_at": loaded_at,
        "dir": set.dir.display().to_string(),
        "policies": policies,
        "last_reload_error": store.last_error(),
    }))
    .into_response()
}

/// `GET /admin/drift` (admin): the drift page, every model and template's windows compared
/// now; `?format=json` answers the same figures as JSON.
pub async fn drift(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if let Err(e) = require_admin(&req) {
        return e.into_response();
    }
    let Some(monitor) = &state.drift else {
        return ApiError::NotFound(
            "/admin/drift (drift monitoring is off: add a `drift:` section to the config)".into(),
        )
        .into_response();
    };
    let reports = monitor.report();
    if req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "format=json"))
    {
        return Json(json!({ "psi_threshold": monitor.threshold(), "models": reports }))
            .into_response();
    }
    let subtitle = format!(
        "Recent requests against the reference window, per model and template; as of {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    );
    axum::response::Html(crate::drift::page::render(
        "Drift",
        &subtitle,
        &reports,
        monitor.threshold(),
    ))
    .into_response()
}
