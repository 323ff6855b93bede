//! Backends that generate answers: in-process mistral.rs models and remote upstreams.

pub mod embedding;
pub mod local;
pub mod pool;
pub mod remote;
pub mod sse;

use axum::http::StatusCode;

use futures::stream::BoxStream;

use crate::domain::{ChatEvent, ChatRequest};

/// A backend's answer as a stream; dropping it cancels generation.
pub type BackendStream = BoxStream<'static, Result<ChatEvent, BackendError>>;

/// Errors of the backends area.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The local engine failed.
    #[error("engine: {0}")]
    Engine(#[from] engine::EngineError),
    /// The upstream answered with an error status or an error event.
    #[error("upstream answered {status}: {message}")]
    Upstream {
        /// HTTP status of the upstream answer (200 for an error event inside a stream).
        status: u16,
        /// The upstream's message.
        message: String,
    },
    /// The upstream could not be reached.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The upstream did not answer in time.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// The upstream's answer could not be understood.
    #[error("upstream sent an invalid response: {0}")]
    Protocol(String),
    /// The model does not do what the route asks (chat on an embedding model, or the reverse).
    #[error("{0}")]
    WrongKind(String),
    /// No backend can be chosen (routing needs Redis under `fail_closed`).
    #[error("{0}")]
    Unavailable(String),
}

impl BackendError {
    /// HTTP status, OpenAI `type`, stable `code`.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            BackendError::Engine(e) if e.is_client_error() => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_parameter",
            ),
            BackendError::Engine(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "engine_error",
            ),
            BackendError::Upstream { status, .. } if (400..500).contains(status) => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
                "invalid_request_error",
                "upstream_rejected",
            ),
            BackendError::Upstream { .. } => {
                (StatusCode::BAD_GATEWAY, "server_error", "upstream_error")
            }
            BackendError::Unreachable(_) => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_unreachable",
            ),
            BackendError::UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "upstream_timeout",
            ),
            BackendError::Protocol(_) => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_protocol_error",
            ),
            BackendError::WrongKind(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "wrong_model_kind",
            ),
            BackendError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "routing_unavailable",
            ),
        }
    }
}

/// A ready backend for one model.
pub enum Backend {
    /// In-process model.
    Local(local::LocalBackend),
    /// OpenAI-compatible upstream.
    Remote(remote::RemoteBackend),
    /// In-process sentence-embedding model.
    Embedding(embedding::EmbeddingBackend),
    /// Several backends of one model, routed by prompt prefix.
    Pool(pool::Pool),
}

impl Backend {
    /// `local`, `remote`, `embedding` or `pool`, for spans.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Local(_) => "local",
            Backend::Remote(_) => "remote",
            Backend::Embedding(_) => "embedding",
            Backend::Pool(_) => "pool",
        }
    }

    /// Starts answering `req`; the stream yields text deltas then `Done`.
    pub async fn chat(&self, req: &ChatRequest) -> Result<BackendStream, BackendError> {
        match self {
            Backend::Local(b) => b.chat(req),
            Backend::Remote(b) => b.chat(req).await,
            // Boxed: the pool's members are backends themselves.
            Backend::Pool(p) => Box::pin(p.chat(req)).await,
            Backend::Embedding(b) => Err(BackendError::WrongKind(format!(
                "the model `{}` is an embedding model: use POST /v1/embeddings",
                b.model().id()
            ))),
        }
    }
}
