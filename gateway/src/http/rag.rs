//! `/v1/rag/...`: ingestion, deletion and search over HTTP for automation. A `user` key acts
//! for its own tenant only; an admin key may name any tenant in the body (else its own).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::Authenticated;
use super::handlers::read_body;
use super::AppState;
use crate::api::rag;
use crate::config::KeyRole;
use crate::error::ApiError;
use crate::rag::{Rag, DEFAULT_TENANT};

/// The body, the retrieval service and who is asking.
async fn body_of(
    state: &AppState,
    req: Request,
) -> Result<(bytes::Bytes, &Arc<Rag>, Authenticated), ApiError> {
    let caller = Authenticated::of(req.extensions());
    let rag = state.rag.as_ref().ok_or(ApiError::RagDisabled)?;
    let body = read_body(req, state.config.server.body_limit_bytes).await?;
    Ok((body, rag, caller))
}

/// The tenant a request acts for: `asked` if the caller may act for it, else its own.
fn tenant_for(caller: &Authenticated, asked: Option<String>) -> Result<String, ApiError> {
    match (&caller.0, asked) {
        (None, asked) => Ok(asked.unwrap_or_else(|| DEFAULT_TENANT.to_string())),
        (Some(p), None) => Ok(p.tenant.clone()),
        (Some(p), Some(a)) if a == p.tenant || p.role == KeyRole::Admin => Ok(a),
        (Some(p), Some(a)) => Err(ApiError::TenantMismatch {
            own: p.tenant.clone(),
            asked: a,
        }),
    }
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
            let (body, rag, caller) = body_of(&state, req).await?;
            let r = rag::ingest(&body)?;
            let tenant = tenant_for(&caller, r.tenant)?;
            let report = rag
                .ingest_documents(&collection, &tenant, &r.documents)
                .await?;
            let mut v = serde_json::to_value(&report).map_err(|_| ApiError::Internal)?;
            v["collection"] = json!(collection);
            v["tenant"] = json!(tenant);
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
            let (body, rag, caller) = body_of(&state, req).await?;
            let r = rag::delete(&body)?;
            let tenant = tenant_for(&caller, r.tenant)?;
            let mut deleted = 0;
            for s in &r.sources {
                deleted += rag
                    .store()
                    .delete_source(&collection, &tenant, s)
                    .await
                    .map_err(crate::rag::RagError::from)?;
            }
            Ok(
                Json(json!({ "collection": collection, "tenant": tenant, "deleted": deleted }))
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
            let (body, rag, caller) = body_of(&state, req).await?;
            let r = rag::search(&body)?;
            let tenant = tenant_for(&caller, r.tenant)?;
            let hits = rag
                .search(
                    &collection,
                    &tenant,
                    &r.query,
                    r.mode,
                    r.top_k,
                    r.score_threshold,
                )
                .await?;
            Ok(Json(rag::search_response(&collection, &tenant, r.mode, &hits)).into_response())
        }
        .await,
    )
}

/// `GET /v1/rag/collections` (admin): every collection with its dimension and point count
/// (counts span tenants).
pub async fn collections(State(state): State<Arc<AppState>>, req: Request) -> Response {
    // Checked outside the future: a borrowed `Request` would make it `!Send`.
    if let Err(e) = super::admin::require_admin(&req) {
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
                .map(|c| {
                    json!({
                        "name": c.name,
                        "dimension": c.dim,
                        "points": c.points,
                        "indexed_vectors": c.indexed,
                    })
                })
                .collect();
            Ok(Json(json!({ "object": "list", "data": data })).into_response())
        }
        .await,
    )
}
