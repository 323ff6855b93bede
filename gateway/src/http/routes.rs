//! Every HTTP route with the methods it serves and who may call it. [`crate::app::http_router`]
//! builds the router from these tables and nothing else, and the route scan
//! (`gateway/tests/route_scan.rs`) walks the same tables, so a new route cannot escape it.

use std::sync::Arc;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::MethodRouter;

use super::admin::{self, audit_page, session};
use super::{embeddings, handlers, rag, templates, AppState};

/// Who may call a route (docs/security.md, route table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key: the probes.
    Public,
    /// Anyone, without a key: the sign-in form, which checks the key it is given.
    SignIn,
    /// Any valid key, scoped to its tenant.
    Key,
    /// An admin key, or a review-page session (`auth: none`: only with `open_admin`).
    Admin,
}

/// One path: its methods, its access and its handlers.
pub struct Route {
    /// The path, with `{param}` segments.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The methods it serves (HEAD comes with GET).
    pub methods: Vec<Method>,
    router: MethodRouter<Arc<AppState>>,
}

impl Route {
    fn new(path: &'static str, access: Access) -> Self {
        Self {
            path,
            access,
            methods: Vec::new(),
            router: MethodRouter::new(),
        }
    }

    fn get<H: Handler<T, Arc<AppState>>, T: 'static>(mut self, h: H) -> Self {
        self.methods.push(Method::GET);
        self.router = self.router.get(h);
        self
    }

    fn post<H: Handler<T, Arc<AppState>>, T: 'static>(mut self, h: H) -> Self {
        self.methods.push(Method::POST);
        self.router = self.router.post(h);
        self
    }

    fn delete<H: Handler<T, Arc<AppState>>, T: 'static>(mut self, h: H) -> Self {
        self.methods.push(Method::DELETE);
        self.router = self.router.delete(h);
        self
    }

    /// Adds this route to `router`.
    pub(crate) fn add_to(self, router: axum::Router<Arc<AppState>>) -> axum::Router<Arc<AppState>> {
        router.route(self.path, self.router)
    }
}

/// The API: behind keys, rate limits and the audit record.
pub fn api() -> Vec<Route> {
    use Access::*;
    vec![
        Route::new("/v1/chat/completions", Key).post(handlers::chat_completions),
        Route::new("/v1/embeddings", Key).post(embeddings::embeddings),
        Route::new("/v1/models", Key).get(handlers::list_models),
        Route::new("/v1/policies", Admin).get(admin::list_policies),
        Route::new("/v1/templates", Key).get(templates::list_templates),
        Route::new("/v1/rag/collections", Admin).get(rag::collections),
        Route::new("/v1/rag/{collection}/documents", Key)
            .post(rag::ingest)
            .delete(rag::delete),
        Route::new("/v1/rag/{collection}/search", Key).post(rag::search),
        Route::new("/admin/audit", Admin).get(audit_page::index),
        Route::new("/admin/drift", Admin).get(admin::drift),
        Route::new("/admin/audit/records/{sequence}", Admin).get(audit_page::record),
        Route::new(session::LOGIN_PATH, SignIn)
            .get(session::login_form)
            .post(session::login),
        // Any key passes; only a session has something to end.
        Route::new(session::LOGOUT_PATH, Key).post(session::logout),
    ]
}

/// The probes: beside the API, without keys or limits.
pub fn probes() -> Vec<Route> {
    use Access::*;
    vec![
        Route::new("/healthz", Public).get(handlers::healthz),
        Route::new("/readyz", Public).get(handlers::readyz),
        Route::new("/metrics", Public).get(handlers::metrics),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_and_every_route_serves_a_method() {
        let all: Vec<Route> = api().into_iter().chain(probes()).collect();
        let mut paths: Vec<&str> = all.iter().map(|r| r.path).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), all.len());
        assert!(all.iter().all(|r| !r.methods.is_empty()));
        // Keyless routes are the probes and the sign-in form, nothing else.
        let keyless: Vec<&str> = all
            .iter()
            .filter(|r| matches!(r.access, Access::Public | Access::SignIn))
            .map(|r| r.path)
            .collect();
        assert_eq!(keyless, ["/admin/login", "/healthz", "/readyz", "/metrics"]);
    }
}
