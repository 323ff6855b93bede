//! `POST /v1/embeddings`: OpenAI's embeddings API over the in-process embedding models.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::{Authenticated, TokenMeter};
use super::handlers::read_body;
use super::middleware::ModelLabel;
use super::AppState;
use crate::api::embeddings::{parse, response, EmbeddingsRequest};
use crate::backends::{Backend, BackendError};
use crate::error::ApiError;
use crate::models::ModelState;

/// `POST /v1/embeddings`.
pub async fn embeddings(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let caller = Authenticated::of(req.extensions());
    let meter = req.extensions().get::<TokenMeter>().cloned();
    let mut label = None;
    let result = async {
        if state.draining.load(Ordering::SeqCst) {
            return Err(ApiError::ShuttingDown);
        }
        let body = read_body(req, state.config.server.body_limit_bytes).await?;
        let r = parse(&body)?;
        if state.models.get(&r.model).is_some() {
            label = Some(r.model.clone());
        }
        let out = embed(&state, &caller, meter.as_ref(), &r).await?;
        Ok(Json(response(&r.model, &out.vectors, out.tokens, r.encoding)).into_response())
    }
    .await;
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(model) = label {
        resp.extensions_mut().insert(ModelLabel(model));
    }
    resp
}

/// Embeds a validated request for `caller` (HTTP and gRPC): the model must be one the
/// caller's tenant may use, an embedding model, ready, with room in its queue. The tokens
/// are charged to `meter`.
pub(crate) async fn embed(
    state: &AppState,
    caller: &Authenticated,
    meter: Option<&TokenMeter>,
    r: &EmbeddingsRequest,
) -> Result<engine::Embeddings, ApiError> {
    if state.draining.load(Ordering::SeqCst) {
        return Err(ApiError::ShuttingDown);
    }
    caller.require_model(&r.model)?;
    let slot = state
        .models
        .get(&r.model)
        .ok_or_else(|| ApiError::ModelNotFound(r.model.clone()))?;
    let backend = match slot.state() {
        ModelState::Ready(b) => b,
        ModelState::Loading => return Err(ApiError::ModelLoading(r.model.clone())),
        ModelState::Failed(reason) => {
            return Err(ApiError::ModelUnavailable {
                model: r.model.clone(),
                reason,
            })
        }
    };
    let Backend::Embedding(model) = backend.as_ref() else {
        return Err(ApiError::Backend(BackendError::WrongKind(format!(
            "the model `{}` is not an embedding model: use chat completions",
            r.model
        ))));
    };
    let dim = model.model().dim();
    if r.dimensions.is_some_and(|d| d != dim) {
        return Err(ApiError::InvalidRequest {
            param: "dimensions",
            message: format!(
                "`{}` makes {dim}-dimensional vectors and cannot shorten them",
                r.model
            ),
        });
    }
    let _permit = slot
        .admission
        .admit()
        .await
        .map_err(|_| ApiError::ModelOverloaded(r.model.clone()))?;
    let out = model.embed(r.input.clone()).await?;
    if let Some(m) = meter {
        m.add(out.tokens as u64);
    }
    Ok(out)
}
