//! Admin endpoints: behind `server.admin_token_env` when it is set.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::handlers::bearer;
use super::AppState;
use crate::error::ApiError;

/// Refuses `req` unless it carries the admin token (when one is configured).
pub fn require_admin(state: &AppState, req: &Request) -> Result<(), ApiError> {
    if let Some(token) = &state.config.server.admin_token {
        let ok = bearer(req).is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
        if !ok {
            return Err(ApiError::AdminUnauthorized);
        }
    }
    Ok(())
}

/// `GET /v1/policies` (admin): the version in force, its policies and rules, and the error
/// of the last rejected reload.
pub async fn list_policies(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if let Err(e) = require_admin(&state, &req) {
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

/// Compares without an early exit, so timing does not reveal the matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
