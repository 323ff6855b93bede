//! Assembles Gatehouse from a config: the shared services, the domain stack and the HTTP
//! stack, each built here and nowhere else (DESIGN.md, request flow). `server` binds and
//! serves what this builds; `batch` runs records through the same domain stack.

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::cache::ResponseCache;
use crate::config::{Config, FailMode};
use crate::http::{audit, auth, handlers, middleware, routes, AppState, REQUEST_ID};
use crate::kv::Kv;
use crate::layers::audit::Audit;
use crate::layers::cache::Cache;
use crate::layers::drift::DriftNote;
use crate::layers::guard::{InputGuard, OutputGuard, PolicyResolve};
use crate::layers::rag::Retrieve;
use crate::layers::router::Router;
use crate::layers::step::step;
use crate::layers::structured::StructuredOutput;
use crate::layers::template::TemplateRender;
use crate::layers::tools::ToolLoop;
use crate::layers::Domain;
use crate::metrics::Metrics;
use crate::models::ModelRegistry;
use crate::policy::PolicyStore;
use crate::prompts::TemplateStore;
use crate::rag::Rag;
use crate::reload::one_per_line;
use crate::tools::ServerTools;

/// The reloadable directories a server enforces, loaded once at start.
#[derive(Clone, Default)]
pub struct Stores {
    /// Guardrail policies; `None` when the config has no `policies:`.
    pub policies: Option<Arc<PolicyStore>>,
    /// Prompt templates; `None` when the config has no `prompts:`.
    pub templates: Option<Arc<TemplateStore>>,
    /// Server-side tools (`tools:`).
    pub tools: Arc<ServerTools>,
    /// The vector store of `rag:`, opened by [`open_vectors`]; `None` turns retrieval off.
    pub vectors: Option<Arc<dyn crate::rag::store::VectorStore>>,
    /// The audit log of `audit:`, opened by [`open_audit`]; `None` writes no records.
    pub audit: Option<Arc<crate::audit::Auditor>>,
}

/// Why the stores of a config cannot be opened; `Display` says which and why.
#[derive(Debug, thiserror::Error)]
pub enum StoresError {
    /// The policy files do not load (every error, one per line).
    #[error("invalid policies:\n{}", one_per_line(.0))]
    Policies(Vec<crate::policy::PolicyError>),
    /// The template files do not load (every error, one per line).
    #[error("invalid templates:\n{}", one_per_line(.0))]
    Templates(Vec<crate::policy::PolicyError>),
    /// A server-side tool is misconfigured.
    #[error("invalid tools: {0}")]
    Tools(#[from] crate::tools::SetupError),
    /// The audit log cannot be opened.
    #[error("cannot open the audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The vector store cannot be opened.
    #[error("cannot open the vector store: {0}")]
    Vectors(#[from] crate::rag::store::StoreError),
}

/// Opens the audit log of `config.audit`, if any (its directory stays locked until the
/// log is closed).
pub fn open_audit(config: &Config) -> Result<Option<Arc<crate::audit::Auditor>>, StoresError> {
    let Some(ac) = &config.audit else {
        return Ok(None);
    };
    let auditor = crate::audit::Auditor::open(ac, crate::metrics::AuditMetrics::new())?;
    Ok(Some(auditor))
}

/// Opens the vector store of `config.rag`, if any (the edge data directory stays locked
/// until the store is dropped).
pub fn open_vectors(
    config: &Config,
) -> Result<Option<Arc<dyn crate::rag::store::VectorStore>>, StoresError> {
    let Some(rc) = &config.rag else {
        return Ok(None);
    };
    Ok(Some(crate::rag::open_store(rc)?))
}

/// Policies, templates and tools; the error says which failed, then every error one per
/// line. The vector store is opened separately ([`open_vectors`]): checking a config must not
/// take the data directory from a running server.
pub fn load_stores(config: &Config) -> Result<Stores, StoresError> {
    let policies = match &config.policies {
        None => None,
        Some(pc) => {
            let set = crate::policy::load::load_dir(&pc.dir).map_err(StoresError::Policies)?;
            Some(Arc::new(PolicyStore::new(set)))
        }
    };
    let templates = match &config.prompts {
        None => None,
        Some(pc) => {
            let set = crate::prompts::load_dir(&pc.dir).map_err(StoresError::Templates)?;
            Some(Arc::new(TemplateStore::new(set)))
        }
    };
    Ok(Stores {
        policies,
        templates,
        tools: Arc::new(ServerTools::new(&config.tools)?),
        vectors: None,
        audit: None,
    })
}

/// The services a configured gateway runs on, each built once and shared.
pub struct Services {
    /// The validated config.
    pub config: Arc<Config>,
    /// Metrics of every area.
    pub metrics: Arc<Metrics>,
    /// The shared Redis, when configured and its client could be made.
    pub kv: Option<Kv>,
    /// Served models (local ones not yet loaded).
    pub models: Arc<ModelRegistry>,
    /// Retrieval; `None` when the config has no `rag:` or the store was not opened.
    pub rag: Option<Arc<Rag>>,
    /// The response cache of `cache:`.
    pub cache: Option<Arc<ResponseCache>>,
    /// Policies, templates, tools, vectors, audit log.
    pub stores: Stores,
    /// The drift monitor of `drift:`.
    pub drift: Option<Arc<crate::drift::Monitor>>,
}

impl Services {
    /// Builds the services of `config` over `stores`.
    pub fn new(config: Arc<Config>, stores: Stores) -> Self {
        let metrics = Arc::new(match &stores.audit {
            Some(a) => Metrics::with_audit(a.metrics().clone()),
            None => Metrics::new(),
        });
        let kv = config.redis.as_ref().and_then(|rc| {
            Kv::new(rc, Some(metrics.clone()))
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
            (Some(rc), Some(store)) => Some(Arc::new(Rag::with_registry(
                rc.clone(),
                store,
                models.clone(),
            ))),
            _ => None,
        };
        let cache = config.cache.clone().map(|cc| {
            let mode = on_error.map_or(FailMode::Open, |e| e.cache);
            ResponseCache::new(cc, kv.clone(), mode)
        });
        if let Some(store) = &stores.policies {
            metrics.policy.set_version(&store.current().version);
        }
        let drift = config
            .drift
            .clone()
            .map(|dc| crate::drift::Monitor::start(dc, models.clone(), metrics.drift.clone()));
        Self {
            config,
            metrics,
            kv,
            models,
            rag,
            cache,
            stores,
            drift,
        }
    }

    /// The domain stack: chat requests in, answer streams out, whichever door they came in
    /// by (HTTP or batch). Each step runs in its own span, named for it.
    pub fn domain(&self) -> Domain {
        let s = &self.stores;
        let m = &self.metrics;
        let stack = ServiceBuilder::new()
            // Outermost: every request that got this far gets a record, whatever an inner
            // step decides, and the record sees what every inner step noted.
            .layer(step(Audit::new(s.audit.clone(), self.drift.clone())))
            // First to touch the request: a template may choose the model and the messages
            // that everything below judges.
            .layer(step(TemplateRender::new(s.templates.clone(), m.clone())))
            // The policy depends on the (rendered) model and the caller.
            .layer(step(PolicyResolve::new(s.policies.clone())))
            // Before the cache: a blocked prompt must not be answered from it, and redactions
            // shape the key.
            .layer(step(InputGuard::new(m.clone())))
            // After redaction: the drift monitor's embedding sample holds no redacted text.
            .layer(step(DriftNote::new(self.drift.clone())))
            // Before retrieval and tools: a hit replays their recorded effect for free.
            .layer(step(Cache::new(self.cache.clone(), m.clone())))
            // Inserts context that the tool loop's later steps keep.
            .layer(step(Retrieve::new(
                self.rag.clone(),
                s.templates.clone(),
                m.clone(),
            )))
            // May call everything below several times, one call per tool step.
            .layer(step(ToolLoop::new(s.tools.clone(), m.clone())))
            // Below the tool loop, so each model call gets the grammar (unless a tool call
            // is forced) and each answer is checked as the client will receive it.
            .layer(step(StructuredOutput::new(m.clone())))
            // Innermost: redacts or blocks the model's text before anything above sees it.
            .layer(step(OutputGuard::new(m.clone())))
            .service(Router::new(self.models.clone(), m.clone()));
        Domain::new(stack)
    }
}

/// The HTTP state over `services`, with its domain stack, API keys and rate limits.
pub fn http_state(services: Services) -> Arc<AppState> {
    let domain = services.domain();
    let Services {
        config,
        metrics,
        kv,
        models,
        rag,
        cache: _,
        stores,
        drift,
    } = services;
    let on_error = config.redis.as_ref().map(|r| r.on_error);
    let auth = crate::auth::Authenticator::new(&config, kv.clone());
    let limiter = crate::limits::RateLimiter::new(
        kv.clone().zip(on_error.map(|e| e.rate_limits)),
        metrics.clone(),
    );
    Arc::new(AppState {
        config,
        models,
        metrics,
        domain,
        policies: stores.policies,
        templates: stores.templates,
        rag,
        draining: Default::default(),
        in_flight: Default::default(),
        auth,
        limiter,
        sessions: crate::auth::sessions::Sessions::new(kv.clone()),
        kv,
        audit: stores.audit,
        drift,
    })
}

/// The HTTP stack over `state`: the API routes behind keys, limits and audit; the probes
/// beside them; request ids, tracing, panics and metrics around both.
pub fn http_router(state: Arc<AppState>) -> axum::Router {
    // Only from the route tables: the route scan test walks the same tables.
    let api = routes::api()
        .into_iter()
        .fold(axum::Router::new(), |r, route| route.add_to(r))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        // Innermost first. Rate limits count per key, so after authentication.
        .layer(from_fn_with_state(state.clone(), auth::rate_limit))
        // Inside the limits: a slow key store counts against the request's timeout.
        .layer(from_fn_with_state(state.clone(), auth::authenticate))
        // `max_in_flight` and the request timeout, for everything behind a key.
        .layer(from_fn_with_state(state.clone(), middleware::limits))
        // Outside auth and limits, so refused requests (401, 429, 503) are recorded too.
        .layer(from_fn_with_state(state.clone(), audit::audit));
    // Probes answer whatever the load and without a key: beside the API, not behind it.
    let probes = routes::probes()
        .into_iter()
        .fold(axum::Router::new(), |r, route| route.add_to(r))
        .method_not_allowed_fallback(handlers::method_not_allowed);
    let header = axum::http::HeaderName::from_static(REQUEST_ID);
    api.merge(probes)
        // Counts every request by route and status, probes included.
        .layer(from_fn_with_state(state.clone(), middleware::metrics))
        .layer(
            ServiceBuilder::new()
                // Request ids go outside catch-panic so that even a panic's 500 carries one.
                .layer(SetRequestIdLayer::new(header.clone(), MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(header))
                .layer(CatchPanicLayer::custom(middleware::panic_response))
                // The request's root span, parent of every span above.
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(middleware::request_span)
                        .on_response(middleware::record_status),
                ),
        )
        .with_state(state)
}
