//! Authentication (API key → tenant) and rate limits, as HTTP middleware in front of every
//! route but the probes (DESIGN.md: auth → rate limit → parse).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::handlers::bearer;
use super::middleware::guard_body;
use super::AppState;
use crate::auth::{AuthError, Principal};
use crate::config::KeyRole;
use crate::error::ApiError;
use crate::limits::{Grant, LimitError, Scope, ScopeKind, Window};

/// The authenticated caller, in request extensions; `None` inside under `auth: none`.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Option<Arc<Principal>>);

impl Authenticated {
    /// The caller [`authenticate`] marked in a request's `extensions`; nobody (as under
    /// `auth: none`) without a mark.
    pub fn of(extensions: &axum::http::Extensions) -> Self {
        extensions
            .get::<Authenticated>()
            .cloned()
            .unwrap_or(Authenticated(None))
    }

    /// Refuses unless the caller holds an admin key. Under `auth: none` there is no key:
    /// [`AdminOpen`] in the request decides.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match &self.0 {
            Some(p) if p.role == KeyRole::Admin => Ok(()),
            Some(_) => Err(ApiError::AdminRequired),
            None => Err(ApiError::AdminClosed),
        }
    }

    /// Refuses unless the caller's tenant may use `model`.
    pub fn require_model(&self, model: &str) -> Result<(), ApiError> {
        crate::domain::Caller {
            principal: self.0.clone(),
            ..Default::default()
        }
        .require_model(model)
        .map_err(ApiError::from)
    }
}

/// In a request's extensions when `auth.none.open_admin` lets anyone use the admin
/// endpoints.
#[derive(Debug, Clone, Copy)]
pub struct AdminOpen;

/// Tokens a request used, filled in by the handler as the answer ends and charged against
/// `tokens_per_minute` when the response body is done.
#[derive(Debug, Clone, Default)]
pub struct TokenMeter(Arc<AtomicU64>);

impl TokenMeter {
    /// Adds `n` tokens.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Resolves the bearer key to an [`Authenticated`]; 401 for a missing or unknown key.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path == super::admin::session::LOGIN_PATH {
        return next.run(req).await;
    }
    let browser_page = path.starts_with("/admin/") && req.method() == axum::http::Method::GET;
    // Owned before awaiting: a borrowed `Request` would make the future `!Send`.
    let key = bearer(&req).map(str::to_string);
    let session_id = super::admin::session::session_id(&req);
    let result = async {
        if let Some(key) = key {
            return state.auth.authenticate(Some(&key)).await;
        }
        // The review page's browser holds a session id from the login form, never a key.
        let Some(id) = session_id else {
            return state.auth.authenticate(None).await;
        };
        match super::admin::session::resolve(&state, id).await? {
            Some((p, session)) => {
                req.extensions_mut().insert(session);
                Ok(Some(p))
            }
            None => state.auth.authenticate(None).await,
        }
    }
    .instrument(tracing::info_span!("auth"))
    .await;
    match result {
        Ok(p) => {
            if p.is_none() && state.config.auth.admin_open_to_all() {
                req.extensions_mut().insert(AdminOpen);
            }
            let caller = Authenticated(p.map(Arc::new));
            req.extensions_mut().insert(caller.clone());
            let mut resp = next.run(req).await;
            // For the HTTP audit record, which runs outside this middleware.
            resp.extensions_mut().insert(caller);
            resp
        }
        Err(AuthError::Missing) if browser_page => super::admin::session::login_redirect(),
        Err(e) => {
            state
                .metrics
                .fleet
                .auth_failures
                .with_label_values(&[e.reason()])
                .inc();
            let err = match e {
                AuthError::Missing => ApiError::MissingApiKey,
                AuthError::Invalid => ApiError::InvalidApiKey,
                AuthError::TenantNotConfigured(t) => ApiError::TenantNotConfigured(t),
                e @ AuthError::Unavailable(_) => ApiError::AuthUnavailable(e.to_string()),
            };
            err.into_response()
        }
    }
}

/// The scopes a caller's requests count against.
fn scopes(p: &Principal) -> Vec<Scope> {
    vec![
        Scope {
            kind: ScopeKind::Tenant,
            tenant: p.tenant.clone(),
            key: None,
            limits: p.settings.limits,
        },
        Scope {
            kind: ScopeKind::Key,
            tenant: p.tenant.clone(),
            key: Some(p.key_id.clone()),
            limits: p.key_limits,
        },
    ]
}

/// Admits the request against its tenant's and key's limits; 429 with `Retry-After` past
/// them. Tokens are charged and the concurrency slot freed when the response body ends.
pub async fn rate_limit(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(Authenticated(Some(p))) = req.extensions().get::<Authenticated>().cloned() else {
        return next.run(req).await;
    };
    let scopes = scopes(&p);
    if scopes.iter().all(|s| s.limits.is_unlimited()) {
        return next.run(req).await;
    }
    let admitted = state
        .limiter
        .admit(&scopes)
        .instrument(tracing::info_span!("rate_limit"))
        .await;
    let admission = match admitted {
        Ok(a) => a,
        Err(LimitError::Refused(r)) => {
            return ApiError::RateLimited {
                scope: r.scope,
                limit: r.limit,
                value: r.value,
                retry_after: r.retry_after,
            }
            .into_response()
        }
        Err(e @ LimitError::Unavailable(_)) => {
            return ApiError::RateLimiterUnavailable(e.to_string()).into_response()
        }
    };
    let meter = TokenMeter::default();
    req.extensions_mut().insert(meter.clone());
    let Grant {
        requests,
        tokens,
        lease,
    } = admission;
    let mut resp = next.run(req).await;
    window_headers(resp.headers_mut(), "requests", requests);
    window_headers(resp.headers_mut(), "tokens", tokens);
    struct Settle(Option<crate::limits::Lease>, TokenMeter);
    impl Drop for Settle {
        fn drop(&mut self) {
            if let Some(lease) = self.0.take() {
                let tokens = self.1.get();
                // Drop cannot await; the settlement is one Redis call, bounded by its timeout.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(lease.settle(tokens));
                }
            }
        }
    }
    guard_body(resp, Settle(Some(lease), meter))
}

/// `x-ratelimit-limit-<what>`, `-remaining-` and `-reset-` (OpenAI's names).
fn window_headers(h: &mut HeaderMap, what: &str, w: Option<(u64, Window)>) {
    let Some((limit, w)) = w else { return };
    let mut set = |name: String, v: String| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(v)) {
            h.insert(n, v);
        }
    };
    set(format!("x-ratelimit-limit-{what}"), limit.to_string());
    set(
        format!("x-ratelimit-remaining-{what}"),
        w.remaining.to_string(),
    );
    set(format!("x-ratelimit-reset-{what}"), reset(w.reset));
}

/// A duration as OpenAI writes it in `x-ratelimit-reset-*`: `1s`, `6m0s`, `120ms`.
pub fn reset(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs_f64();
    let (m, s) = ((s / 60.0).floor() as u64, s % 60.0);
    let s = format!("{s:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_are_written_like_openai() {
        assert_eq!(reset(Duration::from_millis(120)), "120ms");
        assert_eq!(reset(Duration::from_secs(1)), "1s");
        assert_eq!(reset(Duration::from_millis(1500)), "1.5s");
        assert_eq!(reset(Duration::from_secs(360)), "6m0s");
        assert_eq!(reset(Duration::from_millis(61_250)), "1m1.25s");
    }
}
