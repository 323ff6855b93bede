//! Picks the request's policy from the version in force and pins it on the request.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{ready, Either, Ready};

use crate::domain::ChatRequest;
use crate::error::ApiError;
use crate::policy::{PolicyStore, Subject};

/// Layer of [`PolicyResolve`]; `None` turns guardrails off.
#[derive(Clone)]
pub struct PolicyResolveLayer {
    store: Option<Arc<PolicyStore>>,
}

impl PolicyResolveLayer {
    /// Resolves from `store`.
    pub fn new(store: Option<Arc<PolicyStore>>) -> Self {
        Self { store }
    }
}

impl<S> tower::Layer<S> for PolicyResolveLayer {
    type Service = PolicyResolve<S>;

    fn layer(&self, inner: S) -> PolicyResolve<S> {
        PolicyResolve {
            inner,
            store: self.store.clone(),
        }
    }
}

/// Sets [`crate::domain::GuardContext::set_policy`]; the request keeps that version to its
/// end, whatever reloads happen meanwhile.
#[derive(Clone)]
pub struct PolicyResolve<S> {
    inner: S,
    store: Option<Arc<PolicyStore>>,
}

impl<S> tower::Service<ChatRequest> for PolicyResolve<S>
where
    S: tower::Service<ChatRequest, Error = ApiError>,
{
    type Response = S::Response;
    type Error = ApiError;
    type Future = Either<Ready<Result<S::Response, ApiError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        if let Some(store) = &self.store {
            let set = store.current();
            // A tenant pinned to a policy runs under it, whatever `applies_to` says.
            if let Some(p) = &req.caller.principal {
                if let Some(id) = &p.settings.policy {
                    match set.policies.iter().find(|x| &*x.id == id.as_str()) {
                        Some(policy) => req.guard.set_policy(policy.clone(), set.version.clone()),
                        None => {
                            return Either::Left(ready(Err(ApiError::PolicyNotFound {
                                policy: id.clone(),
                                tenant: p.tenant.clone(),
                            })))
                        }
                    }
                    return Either::Right(self.inner.call(req));
                }
            }
            let subject = Subject {
                tenant: req.caller.tenant.as_deref(),
                api_key: req.caller.api_key.as_deref(),
                route: &req.caller.route,
                model: &req.model,
            };
            if let Some(p) = set.select(&subject) {
                req.guard.set_policy(p, set.version.clone());
            }
        }
        Either::Right(self.inner.call(req))
    }
}
