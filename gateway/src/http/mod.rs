//! The HTTP stack: transport concerns around the domain service (DESIGN.md, request flow).

pub(crate) mod admin;
pub mod audit;
pub mod auth;
pub mod connections;
pub(crate) mod embeddings;
pub(crate) mod handlers;
pub(crate) mod middleware;
pub(crate) mod rag;
pub mod routes;
pub(crate) mod templates;

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use crate::config::Config;
use crate::layers::Domain;
use crate::metrics::Metrics;
use crate::models::ModelRegistry;
use crate::policy::PolicyStore;
use crate::prompts::TemplateStore;

/// The request id header, set on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// Shared state of the HTTP handlers.
pub struct AppState {
    /// The validated config.
    pub config: Arc<Config>,
    /// Served models.
    pub models: Arc<ModelRegistry>,
    /// Prometheus metrics, shared with the domain stack.
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
    /// The review page's sign-in sessions and sign-in throttle.
    pub sessions: crate::auth::sessions::Sessions,
    /// The audit log, when configured.
    pub audit: Option<Arc<crate::audit::Auditor>>,
    /// The drift monitor, when configured.
    pub drift: Option<Arc<crate::drift::Monitor>>,
}
