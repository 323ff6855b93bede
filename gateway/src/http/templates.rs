//! `GET /v1/templates`: what clients may name, with the variables each one takes.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::domain::ResponseFormat;

/// The templates in force, every version, without their bodies; and the error of the last
/// rejected reload.
pub async fn list_templates(State(state): State<Arc<AppState>>) -> Json<Value> {
    let Some(store) = &state.templates else {
        return Json(json!({ "enabled": false, "templates": [] }));
    };
    let set = store.current();
    let templates: Vec<Value> = set
        .templates
        .values()
        .flat_map(|versions| versions.values())
        .map(|t| {
            let latest = set
                .get(&t.name, None)
                .is_some_and(|l| l.version == t.version);
            let response_format = match &t.response_format {
                ResponseFormat::Text => json!({ "type": "text" }),
                ResponseFormat::JsonObject => json!({ "type": "json_object" }),
                ResponseFormat::JsonSchema { name, schema } => json!({
                    "type": "json_schema",
                    "json_schema": { "name": name, "schema": schema },
                }),
            };
            json!({
                "name": t.name,
                "version": t.version,
                "id": t.id(),
                "latest": latest,
                "description": t.description,
                "model": t.model,
                "variables": t.variables,
                "response_format": response_format,
                "file": t.file.file_name().map(|f| f.to_string_lossy().into_owned()),
            })
        })
        .collect();
    Json(json!({
        "enabled": true,
        "version": set.version,
        "templates": templates,
        "last_reload_error": store.last_error(),
    }))
}
