//! `/v1/rag/...`: ingestion, deletion and search over HTTP for automation (admin endpoints
//! until API keys carry tenants: the body names the tenant).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::admin::require_admin;
use super::handlers::read_body;
use super::AppState;
use crate::api::rag;
use crate::error::ApiError;
use crate::rag::Rag;

async fn body_of(state: &AppState, req: Request) -> Result<(bytes::Bytes, &Arc<Rag>), ApiError> {
    require_admin(state, &req)?;
    let rag = state.rag.as_ref().ok_or(ApiError::RagDisabled)?;
    let body = read_body(req, state.config.server.body_limit_bytes).await?;
    Ok((body, rag))
}

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/rag/{collection}/documents`: ingests documents given as text.
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    Path(collection): Path<String>,
    req: Request,
) -> Response {
    respond(
        async {
            let (body, rag) = body_of(&state, req).await?;
            let r = rag::ingest(&body)?;
            let report = rag
                .ingest_documents(&collection, &r.tenant, &r.documents)
                .await?;
            let mut v = serde_json::to_value(&report).map_err(|_| ApiError::Internal)?;
            v["collection"] = json!(collection);
            v["tenant"] = json!(r.tenant);
            Ok(Json(v).into_response())
        }
        .await,
    )
}

/// `DELETE /v1/rag/{collection}/documents`: deletes every chunk of the named sources.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(collection): Path<String>,
    req: Request,
) -> Response {
    respond(
        async {
            let (body, rag) = body_of(&state, req).await?;
            let r = rag::delete(&body)?;
            let mut deleted = 0;
            for s in &r.sources {
                deleted += rag
                    .store()
                    .delete_source(&collection, &r.tenant, s)
                    .await
                    .map_err(crate::rag::RagError::from)?;
            }
            Ok(
                Json(json!({ "collection": collection, "tenant": r.tenant, "deleted": deleted }))
                    .into_response(),
            )
        }
        .await,
    )
}

/// `POST /v1/rag/{collection}/search`: the chunks nearest to a query.
pub async fn search(
    State(state): State<Arc<AppState>>,
    Path(collection): Path<String>,
    req: Request,
) -> Response {
    respond(
        async {
            let (body, rag) = body_of(&state, req).await?;
            let r = rag::search(&body)?;
            let hits = rag
                .search(&collection, &r.tenant, &r.query, r.top_k, r.score_threshold)
                .await?;
            Ok(Json(rag::search_response(&collection, &r.tenant, &hits)).into_response())
        }
        .await,
    )
}

/// `GET /v1/rag/collections`: every collection with its dimension and point count.
pub async fn collections(State(state): State<Arc<AppState>>, req: Request) -> Response {
    // Checked outside the future: a borrowed `Request` would make it `!Send`.
    if let Err(e) = require_admin(&state, &req) {
        return e.into_response();
    }
    respond(
        async {
            let rag = state.rag.as_ref().ok_or(ApiError::RagDisabled)?;
            let list = rag
                .store()
                .collections()
                .await
                .map_err(crate::rag::RagError::from)?;
            let data: Vec<_> = list
                .iter()
                .map(|c| json!({ "name": c.name, "dimension": c.dim, "points": c.points }))
                .collect();
            Ok(Json(json!({ "object": "list", "data": data })).into_response())
        }
        .await,
    )
}
