//! The HTTP stack: transport concerns around the domain service (DESIGN.md, request flow).

mod admin;
pub mod audit;
mod audit_page;
pub mod auth;
mod embeddings;
mod handlers;
mod middleware;
mod rag;
mod templates;

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::domain::router::Router as DomainRouter;
use crate::domain::{ChatRequest, ChatStream};
use crate::error::ApiError;
use crate::layers::audit::AuditLayer;
use crate::layers::cache::CacheLayer;
use crate::layers::guard::{InputGuardLayer, OutputGuardLayer, PolicyResolveLayer};
use crate::layers::rag::RetrievalLayer;
use crate::layers::structured::StructuredOutputLayer;
use crate::layers::template::TemplateLayer;
use crate::layers::tools::ToolLayer;
use crate::layers::trace::SpanLayer;
use crate::metrics::Metrics;
use crate::models::ModelRegistry;
use crate::policy::PolicyStore;
use crate::prompts::TemplateStore;
use crate::server::Stores;

/// The domain stack (DESIGN.md, request flow), boxed: each layer in its tracing span.
pub type Domain = tower::util::BoxCloneSyncService<ChatRequest, ChatStream, ApiError>;

/// The request id header, set on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// Shared state of the HTTP handlers.
pub struct AppState {
    /// The validated config.
    pub config: Arc<Config>,
    /// Served models.
    pub models: Arc<ModelRegistry>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The domain service.
    pub domain: Domain,
    /// Guardrail policies; `None` when the config has no `policies:`.
    pub policies: Option<Arc<PolicyStore>>,
    /// Prompt templates; `None` when the config has no `prompts:`.
    pub templates: Option<Arc<TemplateStore>>,
    /// Retrieval; `None` when the config has no `rag:` (or the store was not opened).
    pub rag: Option<Arc<crate::rag::Rag>>,
    /// Set on shutdown: `/readyz` answers 503 and new chat requests are refused.
    pub draining: AtomicBool,
    /// Requests in flight, for the `max_in_flight` limit.
    pub in_flight: AtomicUsize,
    /// API keys.
    pub auth: crate::auth::Authenticator,
    /// Rate limits and quotas.
    pub limiter: crate::limits::RateLimiter,
    /// The shared Redis, when configured.
    pub kv: Option<crate::kv::Kv>,
    /// The audit log, when configured.
    pub audit: Option<Arc<crate::audit::Auditor>>,
}

impl AppState {
    /// State for `config` with models not yet loaded, enforcing `stores`.
    pub fn new(config: Arc<Config>, stores: Stores) -> Arc<Self> {
        let server_tools = stores.tools.clone();
        let Stores {
            policies,
            templates,
            audit,
            ..
        } = stores;
        let metrics = Arc::new(match &audit {
            Some(a) => Metrics::with_audit(a.metrics().clone()),
            None => Metrics::new(),
        });
        let kv = config.redis.as_ref().and_then(|rc| {
            crate::kv::Kv::new(rc, Some(metrics.clone()))
                .map_err(|e| tracing::error!(error = %e, "redis: cannot create the client"))
                .ok()
        });
        let on_error = config.redis.as_ref().map(|r| r.on_error);
        let models = Arc::new(ModelRegistry::new(
            &config,
            kv.clone().zip(on_error.map(|e| e.routing)),
            metrics.clone(),
        ));
        let rag = match (&config.rag, stores.vectors.clone()) {
            (Some(rc), Some(store)) => Some(Arc::new(crate::rag::Rag::with_registry(
                rc.clone(),
                store,
                models.clone(),
            ))),
            _ => None,
        };
        let auth = crate::auth::Authenticator::new(&config, kv.clone());
        let limiter = crate::limits::RateLimiter::new(
            kv.clone().zip(on_error.map(|e| e.rate_limits)),
            metrics.clone(),
        );
        let cache = config.cache.clone().map(|cc| {
            let mode = on_error.map_or(crate::config::FailMode::Open, |e| e.cache);
            crate::cache::ResponseCache::new(cc, kv.clone(), mode)
        });
        if let Some(store) = &policies {
            metrics.policy.set_version(&store.current().version);
        }
        let domain = ServiceBuilder::new()
            .layer(SpanLayer("audit"))
            .layer(AuditLayer::new(audit.clone()))
            .layer(SpanLayer("template"))
            .layer(TemplateLayer::new(templates.clone(), metrics.clone()))
            .layer(SpanLayer("policy"))
            .layer(PolicyResolveLayer::new(policies.clone()))
            .layer(SpanLayer("guard.input"))
            .layer(InputGuardLayer::new(metrics.clone()))
            .layer(SpanLayer("cache"))
            .layer(CacheLayer::new(cache.clone(), metrics.clone()))
            .layer(SpanLayer("retrieval"))
            .layer(RetrievalLayer::new(
                rag.clone(),
                templates.clone(),
                metrics.clone(),
            ))
            .layer(SpanLayer("tools"))
            .layer(ToolLayer::new(server_tools, metrics.clone()))
            .layer(SpanLayer("structured_output"))
            .layer(StructuredOutputLayer::new(metrics.clone()))
            .layer(SpanLayer("guard.output"))
            .layer(OutputGuardLayer::new(metrics.clone()))
            .layer(SpanLayer("router"))
            .service(DomainRouter::new(models.clone(), metrics.clone()));
        let domain = Domain::new(domain);
        Arc::new(Self {
            config,
            models,
            metrics,
            domain,
            policies,
            templates,
            rag,
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            auth,
            limiter,
            kv,
            audit,
        })
    }
}

/// The axum app with the whole HTTP stack.
pub fn app(state: Arc<AppState>) -> axum::Router {
    let header = axum::http::HeaderName::from_static(REQUEST_ID);
    axum::Router::new()
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/models", get(handlers::list_models))
        .route("/v1/policies", get(admin::list_policies))
        .route("/v1/templates", get(templates::list_templates))
        .route("/v1/rag/collections", get(rag::collections))
        .route(
            "/v1/rag/{collection}/documents",
            post(rag::ingest).delete(rag::delete),
        )
        .route("/v1/rag/{collection}/search", post(rag::search))
        .route("/admin/audit", get(audit_page::index))
        .route("/admin/audit/records/{sequence}", get(audit_page::record))
        .route(
            audit_page::LOGIN_PATH,
            get(audit_page::login_form).post(audit_page::login),
        )
        .route("/admin/logout", post(audit_page::logout))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        // Innermost first: auth runs before the rate limit, both inside the timeout.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::limits,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::audit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::metrics,
        ))
        .layer(
            // Request ids go outside catch-panic so that even a panic's 500 carries one.
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(header.clone(), MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(header))
                .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                    middleware::panic_response,
                ))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(middleware::request_span)
                        .on_response(middleware::record_status),
                ),
        )
        .with_state(state)
}
