//! The one place where errors become HTTP statuses and OpenAI-shaped error bodies.
//!
//! `type` and `code` are stable: clients may branch on them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::backends::BackendError;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON or not a chat request.
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    /// The body is not UTF-8.
    #[error("request body is not valid UTF-8 (invalid byte at offset {0})")]
    InvalidUtf8(usize),
    /// The body is larger than `server.body_limit_bytes`.
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The request is well-formed JSON but a parameter is invalid.
    #[error("{message}")]
    InvalidRequest {
        /// The offending parameter.
        param: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The client set a parameter Gatehouse does not implement; ignoring it would change the
    /// answer the client expects.
    #[error("{message}")]
    UnsupportedParameter {
        /// The parameter.
        param: &'static str,
        /// What is not supported, and what to do instead.
        message: String,
    },
    /// No model has this id.
    #[error("the model `{0}` does not exist")]
    ModelNotFound(String),
    /// The model is still loading.
    #[error("the model `{0}` is still loading; retry when /readyz answers 200")]
    ModelLoading(String),
    /// The model failed to load.
    #[error("the model `{model}` failed to load: {reason}")]
    ModelUnavailable {
        /// Model id.
        model: String,
        /// Why it failed.
        reason: String,
    },
    /// The model's queue is full.
    #[error("the model `{0}` is overloaded; retry later")]
    ModelOverloaded(String),
    /// Too many requests in flight.
    #[error("the server is overloaded; retry later")]
    ServerOverloaded,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The request took longer than `server.request_timeout_secs`.
    #[error("the request timed out")]
    Timeout,
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// No such route.
    #[error("no route for {0}")]
    NotFound(String),
    /// Route exists, method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A guardrail policy refused the request or the answer.
    #[error("{0}")]
    PolicyViolation(Box<crate::policy::Blocked>),
    /// A prompt template could not be found or rendered.
    #[error(transparent)]
    Template(#[from] crate::prompts::TemplateError),
    /// A tool definition, choice or call could not be served.
    #[error(transparent)]
    Tool(#[from] crate::tools::ToolError),
    /// The answer does not have the requested `response_format`.
    #[error("structured output failed: {0}")]
    StructuredOutput(String),
    /// Retrieval or ingestion failed.
    #[error(transparent)]
    Rag(#[from] crate::rag::RagError),
    /// Retrieval found nothing usable and the policy says refuse (`on_empty: refuse`).
    #[error("no relevant documents in collection `{0}` for this question")]
    NoRelevantContext(String),
    /// Retrieval failed and the policy says refuse (`on_error: refuse`).
    #[error("retrieval is unavailable: {0}")]
    RetrievalUnavailable(String),
    /// Retrieval is off (no `rag:` in the config).
    #[error("retrieval is off: the configuration has no `rag:` section")]
    RagDisabled,
    /// No `Authorization: Bearer` key.
    #[error("missing API key: send it as `Authorization: Bearer <key>`")]
    MissingApiKey,
    /// The key is unknown or revoked.
    #[error("invalid API key")]
    InvalidApiKey,
    /// Keys cannot be checked (Redis down, `redis.on_error.auth: fail_closed`).
    #[error("{0}")]
    AuthUnavailable(String),
    /// The key's tenant is not configured on this gateway.
    #[error("tenant `{0}` is not configured on this gateway")]
    TenantNotConfigured(String),
    /// An admin endpoint called with a `user` key.
    #[error("this endpoint needs an admin key")]
    AdminRequired,
    /// A state-changing admin form without its session's CSRF token.
    #[error("this form did not come from a page of this session (CSRF token missing or wrong); reload the page and try again")]
    CsrfFailed,
    /// An admin endpoint called under `auth: none` without `open_admin: true`.
    #[error("the admin endpoints are closed: this gateway has no API keys (`auth: none`); configure an admin key, or open them explicitly with `auth: {{none: {{open_admin: true}}}}`")]
    AdminClosed,
    /// The tenant may not use the model.
    #[error("the model `{model}` is not available to tenant `{tenant}`")]
    ModelNotAllowed {
        /// Model id.
        model: String,
        /// Tenant id.
        tenant: String,
    },
    /// A user key naming another tenant's data.
    #[error("a key of tenant `{own}` cannot act for tenant `{asked}`")]
    TenantMismatch {
        /// The key's tenant.
        own: String,
        /// The tenant the request named.
        asked: String,
    },
    /// Over a rate limit or quota.
    #[error("rate limit reached for {} of this {}: {value} {}; retry after {:.1}s", limit.as_str(), scope.as_str(), limit_unit(*limit), retry_after.as_secs_f64())]
    RateLimited {
        /// Tenant or key.
        scope: crate::limits::ScopeKind,
        /// Which limit.
        limit: crate::limits::LimitKind,
        /// Its configured value.
        value: u64,
        /// When a retry can succeed.
        retry_after: std::time::Duration,
    },
    /// Rate limits cannot be checked (Redis down, `redis.on_error.rate_limits: fail_closed`).
    #[error("{0}")]
    RateLimiterUnavailable(String),
    /// The response cache failed (Redis down, `redis.on_error.cache: fail_closed`).
    #[error("the response cache is unavailable: {0}")]
    CacheUnavailable(String),
    /// The policy the tenant is pinned to is not in the policies in force.
    #[error("policy `{policy}` of tenant `{tenant}` is not loaded")]
    PolicyNotFound {
        /// Policy id.
        policy: String,
        /// Tenant id.
        tenant: String,
    },
    /// The audit log's queue is full (`audit.on_full: fail_closed`).
    #[error("the audit log cannot keep up; retry shortly")]
    AuditUnavailable,
    /// A bug: a handler panicked.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// HTTP status, OpenAI `type`, stable `code`.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            InvalidJson(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_json",
            ),
            InvalidUtf8(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_utf8",
            ),
            BodyTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
            ),
            InvalidRequest { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_parameter",
            ),
            UnsupportedParameter { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "unsupported_parameter",
            ),
            ModelNotFound(_) => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
            ),
            ModelLoading(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "model_loading",
            ),
            ModelUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "model_unavailable",
            ),
            ModelOverloaded(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "model_overloaded",
            ),
            ServerOverloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "server_overloaded",
            ),
            ShuttingDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "shutting_down",
            ),
            Timeout => (StatusCode::GATEWAY_TIMEOUT, "server_error", "timeout"),
            Backend(e) => e.parts(),
            NotFound(_) => (StatusCode::NOT_FOUND, "invalid_request_error", "not_found"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
            ),
            PolicyViolation(b) if b.is_limit => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "policy_violation",
            ),
            PolicyViolation(_) => (
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                "policy_violation",
            ),
            Template(t) => {
                use crate::prompts::TemplateError as T;
                match t {
                    T::NotFound(_) => (
                        StatusCode::NOT_FOUND,
                        "invalid_request_error",
                        "template_not_found",
                    ),
                    T::Variables { .. } => (
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "invalid_template_variables",
                    ),
                    T::Render { .. } => (
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "template_render_error",
                    ),
                    T::Unusable { .. } => (
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "invalid_parameter",
                    ),
                }
            }
            Tool(crate::tools::ToolError::InvalidCall(_)) => {
                (StatusCode::BAD_GATEWAY, "server_error", "tool_call_invalid")
            }
            Tool(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_parameter",
            ),
            StructuredOutput(_) => (
                StatusCode::BAD_GATEWAY,
                "server_error",
                "structured_output_invalid",
            ),
            Rag(e) => {
                use crate::rag::store::StoreError as S;
                use crate::rag::RagError as R;
                match e {
                    R::Store(S::NoSuchCollection(_)) => (
                        StatusCode::NOT_FOUND,
                        "invalid_request_error",
                        "collection_not_found",
                    ),
                    R::Store(S::InvalidName(_)) => (
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "invalid_collection_name",
                    ),
                    R::Store(S::DimensionMismatch { .. }) => (
                        StatusCode::CONFLICT,
                        "invalid_request_error",
                        "dimension_mismatch",
                    ),
                    R::Store(S::Unavailable(_)) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "server_error",
                        "vector_store_unavailable",
                    ),
                    R::Store(S::Backend(_)) => (
                        StatusCode::BAD_GATEWAY,
                        "server_error",
                        "vector_store_error",
                    ),
                    R::Source(_) => (
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "invalid_parameter",
                    ),
                    R::EmbedderLoading(_) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "server_error",
                        "model_loading",
                    ),
                    R::EmbedderUnavailable { .. } => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "server_error",
                        "model_unavailable",
                    ),
                    R::EmbedderOverloaded(_) => (
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_error",
                        "model_overloaded",
                    ),
                    R::Embedding(_) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "embedding_failed",
                    ),
                }
            }
            NoRelevantContext(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request_error",
                "no_relevant_context",
            ),
            RetrievalUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "retrieval_unavailable",
            ),
            RagDisabled => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "rag_disabled",
            ),
            MissingApiKey => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "missing_api_key",
            ),
            InvalidApiKey => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
            ),
            AuthUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "auth_unavailable",
            ),
            TenantNotConfigured(_) => (
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                "tenant_not_configured",
            ),
            AdminRequired => (
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                "admin_required",
            ),
            CsrfFailed => (
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                "csrf_failed",
            ),
            AdminClosed => (
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                "admin_closed",
            ),
            ModelNotAllowed { .. } => (
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                "model_not_allowed",
            ),
            TenantMismatch { .. } => (
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                "tenant_mismatch",
            ),
            RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            RateLimiterUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "rate_limiter_unavailable",
            ),
            CacheUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "cache_unavailable",
            ),
            PolicyNotFound { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "policy_unavailable",
            ),
            AuditUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "audit_unavailable",
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal_error",
            ),
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            ApiError::InvalidRequest { param, .. }
            | ApiError::UnsupportedParameter { param, .. } => Some(param),
            ApiError::ModelNotFound(_) | ApiError::ModelNotAllowed { .. } => Some("model"),
            ApiError::TenantMismatch { .. } => Some("tenant"),
            ApiError::Template(crate::prompts::TemplateError::Variables { .. }) => {
                Some("variables")
            }
            ApiError::Template(_) => Some("template"),
            ApiError::Tool(crate::tools::ToolError::UnknownServerTool { .. }) => Some("tools"),
            ApiError::Tool(crate::tools::ToolError::Unsupported(_)) => Some("tool_choice"),
            _ => None,
        }
    }

    /// Whole seconds a client should wait before retrying (`Retry-After`): the rate limit's
    /// window, rounded up since retrying earlier would be refused again; 1 for other 429s
    /// and 503s; `None` when retrying would not help.
    pub fn retry_after_secs(&self) -> Option<u64> {
        if let ApiError::RateLimited { retry_after, .. } = self {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            return Some(secs.max(1));
        }
        matches!(
            self.parts().0,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
        .then_some(1)
    }

    /// The OpenAI error object, `{"error": {...}}`. Policy blocks add `policy`, `rule`,
    /// `stage` and `entity`; never the text that matched.
    pub fn body(&self) -> serde_json::Value {
        let (_, kind, code) = self.parts();
        let mut body = json!({ "error": { "message": self.to_string(), "type": kind, "param": self.param(), "code": code } });
        if let ApiError::PolicyViolation(b) = self {
            let d = &b.decision;
            body["error"]["policy"] = json!(&*d.policy);
            body["error"]["rule"] = json!(&*d.rule);
            body["error"]["stage"] = json!(d.stage.as_str());
            body["error"]["entity"] = json!(d.entity);
        }
        if let ApiError::Template(crate::prompts::TemplateError::Variables { errors, .. }) = self {
            body["error"]["errors"] = json!(errors);
        }
        body
    }
}

fn limit_unit(l: crate::limits::LimitKind) -> &'static str {
    match l {
        crate::limits::LimitKind::Requests => "requests per minute",
        crate::limits::LimitKind::Tokens => "tokens per minute",
        crate::limits::LimitKind::Concurrent => "requests at once",
    }
}

/// The stable error code of an error response, as a response extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCode(pub std::borrow::Cow<'static, str>);

/// The HTTP status an error answered over gRPC stands for (gRPC answers 200 and puts the
/// error in `grpc-status`), as a response extension: audit records and request metrics use
/// it in place of the 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveStatus(pub StatusCode);

impl From<crate::domain::ModelNotAllowed> for ApiError {
    fn from(e: crate::domain::ModelNotAllowed) -> Self {
        ApiError::ModelNotAllowed {
            model: e.model,
            tenant: e.tenant,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.parts();
        let mut resp = (status, axum::Json(self.body())).into_response();
        // For the HTTP audit record of requests refused before the domain stack.
        resp.extensions_mut()
            .insert(ErrorCode(self.parts().2.into()));
        if let Some(secs) = self.retry_after_secs() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, ApiError::BodyTooLarge { .. }) {
            // The unread rest of the body is still on the wire: the connection cannot be reused.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_shape() {
        let b = ApiError::ModelNotFound("x".into()).body();
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert_eq!(b["error"]["code"], "model_not_found");
        assert_eq!(b["error"]["param"], "model");
        assert_eq!(b["error"]["message"], "the model `x` does not exist");
    }

    #[test]
    fn rate_limits_say_when_to_retry() {
        let e = ApiError::RateLimited {
            scope: crate::limits::ScopeKind::Tenant,
            limit: crate::limits::LimitKind::Requests,
            value: 60,
            retry_after: std::time::Duration::from_millis(1200),
        };
        assert_eq!(
            e.to_string(),
            "rate limit reached for requests of this tenant: 60 requests per minute; retry after 1.2s"
        );
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = ApiError::MissingApiKey.into_response();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn overload_sets_retry_after() {
        let r = ApiError::ModelOverloaded("m".into()).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
